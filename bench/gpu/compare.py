"""Compares two logitlens JSONL outputs of the same prompts (a CPU run and a GPU run).

    python3 bench/gpu/compare.py CPU.jsonl GPU.jsonl LABEL

Run with `--top-k 2` so that every cell carries its top-2 probabilities. Prints one
Markdown table row:

    | LABEL | cells | max |Δ entropy| | max |Δ prob| | max |Δ kl| | clear cells | argmax flips | verdict |

A cell is clear when the CPU's top-2 margin (log p1 − log p2, the difference of the two
largest logits) exceeds 1e-3; the argmax must agree on every clear cell and entropies within
1e-3 nats (issue 13's parity targets). Exits 1 when a target is missed. Standard library only
(bench/harness.py reads the reports).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

MARGIN = 1e-3
ENTROPY = 1e-3


def cells(path):
    for doc in harness.reports(path):
        for _, row, t, c in harness.cells(doc):
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
        if harness.top2_margin(x) > MARGIN:
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
