"""Compares two logitlens JSONL outputs of the same prompts (a CPU run and a GPU run).

    python3 bench/gpu/compare.py CPU.jsonl GPU.jsonl LABEL

Run with `--top-k 2` so that every cell carries its top-2 probabilities. Prints one
Markdown table row:

    | LABEL | cells | max |Δ entropy| | max |Δ prob| | max |Δ kl| | clear cells | argmax flips | verdict |

A cell is clear when the CPU's top-2 margin (log p1 − log p2, the difference of the two
largest logits) exceeds 1e-3; the argmax must agree on every clear cell and entropies within
1e-3 nats (issue 13's parity targets). Exits 1 when a target is missed. Standard library only.
"""

import json
import math
import sys

MARGIN = 1e-3
ENTROPY = 1e-3


def cells(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            for row in doc["layers"]:
                for t, c in enumerate(row["positions"]):
                    yield (doc["prompt_index"], row["layer"], row["site"], t), c


def main(cpu, gpu, label):
    a, b = dict(cells(cpu)), dict(cells(gpu))
    if a.keys() != b.keys():
        print(f"| {label} | cells differ: {len(a)} vs {len(b)} | | | | | | FAIL |")
        return 1
    worst = {"entropy": 0.0, "prob": 0.0, "kl": 0.0}
    clear = flips = 0
    for key, x in a.items():
        y = b[key]
        for k in worst:
            worst[k] = max(worst[k], abs(x[k] - y[k]))
        top = x["topk"]
        if len(top) < 2:
            raise SystemExit(f"{cpu}: run with --top-k 2")
        p1, p2 = top[0]["prob"], top[1]["prob"]
        margin = math.inf if p2 == 0 else math.log(p1) - math.log(p2)
        if margin > MARGIN:
            clear += 1
            flips += x["id"] != y["id"]
    ok = flips == 0 and worst["entropy"] <= ENTROPY
    print(
        f"| {label} | {len(a)} | {worst['entropy']:.2e} | {worst['prob']:.2e} | {worst['kl']:.2e} "
        f"| {clear} | {flips} | {'ok' if ok else 'FAIL'} |"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
