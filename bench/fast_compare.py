"""What --fast costs in accuracy: compares two logitlens JSONL outputs of the same prompts,
exact (f32) against --fast, cell by cell.

    python bench/fast_compare.py EXACT.jsonl FAST.jsonl

Prints one line of JSON: cells, max |Δ entropy| (nats), max |Δ KL| (nats), max |Δ max prob|,
argmax flips (all cells, and cells whose exact top-2 log-probability margin exceeds 0.01
nats), and the output row's flips. Needs --top-k >= 2 in both runs (the margin).
Standard library only (bench/harness.py reads the reports).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cells, reports, top2_margin  # noqa: E402


def main(exact_path, fast_path):
    exact, fast = reports(exact_path), reports(fast_path)
    if len(exact) != len(fast):
        sys.exit(f"{len(exact)} reports against {len(fast)}")
    count = flips = clear = clear_flips = out_cells = out_flips = 0
    d_entropy = d_kl = d_prob = 0.0
    for a, b in zip(exact, fast):
        if a["prompt"] != b["prompt"] or len(a["layers"]) != len(b["layers"]):
            sys.exit("the two runs are not of the same prompts")
        last = len(a["layers"]) - 1
        for (li, _, _, ca), (_, _, _, cb) in zip(cells(a), cells(b)):
            count += 1
            d_entropy = max(d_entropy, abs(ca["entropy"] - cb["entropy"]))
            d_kl = max(d_kl, abs(ca["kl"] - cb["kl"]))
            d_prob = max(d_prob, abs(ca["prob"] - cb["prob"]))
            flip = ca["id"] != cb["id"]
            flips += flip
            if top2_margin(ca) > 0.01:
                clear += 1
                clear_flips += flip
            if li == last:
                out_cells += 1
                out_flips += flip
    print(json.dumps({
        "cells": count,
        "max_abs_d_entropy": d_entropy,
        "max_abs_d_kl": d_kl,
        "max_abs_d_prob": d_prob,
        "argmax_flips": flips,
        "flip_fraction": flips / max(count, 1),
        "clear_cells": clear,
        "clear_flips": clear_flips,
        "output_cells": out_cells,
        "output_flips": out_flips,
    }))


if __name__ == "__main__":
    main(*sys.argv[1:3])
