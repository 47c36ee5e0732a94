"""Turns bench/run.sh's runs into the Markdown report: medians, ratios, targets (issue 5).

    python bench/report.py --work DIR --weights FILE [--runs N --long-runs N --batch-runs N]

DIR is the bench harness's work folder (bench/lib.sh's runs.tsv and logs): each run's wall
time, peak RSS and LOGITLENS_TIMING's load / forward / lens, read by bench/harness.py.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import GIB, fmt_s  # noqa: E402

FOX_POSITIONS = 9  # "The quick brown fox jumps over the lazy" + BOS
BATCH = 32

ROWS = [
    ("tutorial-bf16", "tutorial code, bfloat16 (as written)"),
    ("tutorial-f32", "tutorial code, float32"),
    ("import", "`import torch, transformers` alone"),
    ("logitlens-9", "logitlens, 9 tokens"),
    ("logitlens-512", "logitlens, 512 tokens"),
    ("logitlens-2048", "logitlens, 2048 tokens"),
    ("logitlens-batch32", f"logitlens, batch of {BATCH} × 9 tokens"),
]
POSITIONS = {"logitlens-9": 9, "logitlens-512": 512, "logitlens-2048": 2048}


def summarize(runs, label):
    """Medians over the label's successful runs (harness.summary); None when there are none."""
    s = harness.summary(harness.select(runs, label))
    return s if s["n"] else None


def fmt_rate(x):
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def fmt_gib(b):
    return "—" if b is None else f"{b / GIB:.2f} GiB"


def verdict(ok):
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--runs", default="?")
    ap.add_argument("--long-runs", default="?")
    ap.add_argument("--batch-runs", default="?")
    ap.add_argument("--commit", default="unknown")
    a = ap.parse_args()

    runs = harness.runs(a.work)
    S = {label: summarize(runs, label) for label, _ in ROWS}
    FAILED = {label: sum(not r["ok"] for r in harness.select(runs, label)) for label, _ in ROWS}
    weights = os.path.getsize(a.weights)
    long_rss_target = weights + GIB
    base = S["tutorial-bf16"]

    out = []
    p = out.append
    p("## logitlens benchmark (issue 5)")
    p("")
    p(f"- machine: {harness.machine()}")
    p(
        f"- checkpoint: full-size Phi-1.5 shape, random float16 weights; "
        f"`model.safetensors` {weights / 1e9:.2f} GB ({weights / GIB:.2f} GiB)"
    )
    p(
        f"- medians over runs: {a.runs} of each 9-token row (the four run alternately), "
        f"{a.long_runs} of each long prompt, {a.batch_runs} of the batch; page cache warm; "
        f"wall measured outside the process, peak RSS by GNU time"
    )
    p(
        "- logitlens at its defaults (f32), with `--bos`, table to /dev/null, heatmap PNG written "
        "(not for the 512/2048-token prompts: their heatmaps exceed the image size limit)"
    )
    p(f"- logitlens commit: {a.commit}")
    p("- command: `bash bench/run.sh`")
    p("")

    # -- main table
    p("| run | runs | wall | peak RSS | speed-up vs tutorial bf16 | RSS vs tutorial bf16 |")
    p("|---|---|---|---|---|---|")
    for label, name in ROWS:
        s = S[label]
        if s is None:
            what = f"all {FAILED[label]} failed" if FAILED[label] else "0"
            p(f"| {name} | {what} | — | — | — | — |")
            continue
        # A speed-up only compares like with like: one 9-token prompt each.
        same_job = label in ("tutorial-bf16", "tutorial-f32", "import", "logitlens-9")
        speed = f"{base['wall'] / s['wall']:.1f}×" if base and same_job else "—"
        rss = f"{s['rss'] / base['rss']:.2f}×" if base else "—"
        n = f"{s['n']} ({s['failed']} failed)" if s["failed"] else f"{s['n']}"
        p(f"| {name} | {n} | {fmt_s(s['wall'])} | {fmt_gib(s['rss'])} | {speed} | {rss} |")
    p("")

    # -- logitlens breakdown
    have_timing = any(S[l] and S[l]["forward_s"] is not None for l in POSITIONS)
    p("### logitlens: throughput and where the time goes")
    p("")
    if not have_timing:
        p("(no timings on logitlens's stderr with LOGITLENS_TIMING=json: no breakdown)")
        p("")
    p("| prompt | positions | wall | tokens/s (end to end) | load | forward | lens | lens share of forward + lens | tokens/s (forward + lens) |")
    p("|---|---|---|---|---|---|---|---|---|")
    for label, n in POSITIONS.items():
        s = S[label]
        if s is None:
            continue
        n = int(s["tokens"] or n)
        fw, ln, ld = s["forward_s"], s["lens_s"], s["load_s"]
        share = f"{100 * ln / (fw + ln):.0f} %" if fw is not None and ln is not None and fw + ln > 0 else "—"
        tps_core = fmt_rate(n / (fw + ln)) if fw is not None and ln is not None and fw + ln > 0 else "—"
        p(
            f"| {label.split('-')[1]} tokens | {n} | {fmt_s(s['wall'])} | {fmt_rate(n / s['wall'])} | "
            f"{fmt_s(ld)} | {fmt_s(fw)} | {fmt_s(ln)} | {share} | {tps_core} |"
        )
    p("")

    # -- batch
    single, batch = S["logitlens-9"], S["logitlens-batch32"]
    marginal = None
    if single and batch:
        amortised = batch["wall"] / BATCH
        marginal = (batch["wall"] - single["wall"]) / (BATCH - 1)
        p(f"### logitlens: batch of {BATCH} prompts (`--prompts FILE --out-dir DIR`)")
        p("")
        p("- each prompt is 8 tokens + BOS, like the tutorial's; the 9-token single run is the reference")
        p(f"- batch wall {fmt_s(batch['wall'])}; amortised cost per prompt = batch wall / {BATCH} = **{fmt_s(amortised)}**")
        p(
            f"- marginal cost per prompt = (batch wall − single 9-token run wall) / {BATCH - 1} = "
            f"({fmt_s(batch['wall'])} − {fmt_s(single['wall'])}) / {BATCH - 1} = **{fmt_s(marginal)}**"
        )
        if batch["timing"]:
            p(
                f"- in the batch: {len(batch['timing']['prompts'])} prompts timed in one process, "
                f"load {fmt_s(batch['load_s'])}, forward {fmt_s(batch['forward_s'])}, lens {fmt_s(batch['lens_s'])} in all"
            )
        p("")

    # -- targets
    p("### targets (issue 5)")
    p("")
    p("| # | target | measured | result |")
    p("|---|---|---|---|")
    ours = S["logitlens-9"]
    if base and ours:
        speed = base["wall"] / ours["wall"]
        ratio = ours["rss"] / base["rss"]
        p(
            f"| 1 | 9-token prompt end to end at least 10× faster than the tutorial (bf16) | "
            f"{speed:.1f}× ({fmt_s(ours['wall'])} vs {fmt_s(base['wall'])}) | {verdict(speed >= 10)} |"
        )
        p(
            f"| 1 | 9-token peak RSS at most 0.5× the tutorial's (bf16) | "
            f"{ratio:.2f}× ({fmt_gib(ours['rss'])} vs {fmt_gib(base['rss'])}) | {verdict(ratio <= 0.5)} |"
        )
    else:
        p("| 1 | 9-token: ≥ 10× faster, ≤ 0.5× RSS vs the tutorial (bf16) | missing runs | n/a |")
    for label in ("logitlens-512", "logitlens-2048"):
        s = S[label]
        n = POSITIONS[label]
        if FAILED[label]:
            rss, ok = f"{FAILED[label]} run(s) failed", False
        else:
            rss = fmt_gib(s["rss"]) if s else "missing"
            ok = s["rss"] <= long_rss_target if s else None
        p(
            f"| 2 | {n}-token prompt: peak RSS at most weights file + 1 GiB = {fmt_gib(long_rss_target)} | "
            f"{rss} | {verdict(ok)} |"
        )
    if single and batch:
        load = single["load_s"]
        # One load for the whole batch: an extra prompt costs at most what a fresh process spends
        # beyond loading (10 % allowance for noise on a shared machine).
        bound = 1.1 * (single["wall"] - (load or 0.0))
        how = f"single wall − load = {fmt_s(single['wall'] - load)}" if load is not None else (
            "single wall (no load timing: weak check)"
        )
        p(
            f"| 3 | batch of {BATCH} pays the model load once: marginal cost per prompt ≤ 1.1 × ({how}) | "
            f"{fmt_s(marginal)} marginal, {fmt_s(batch['wall'] / BATCH)} amortised | {verdict(marginal <= bound)} |"
        )
    else:
        p(f"| 3 | batch of {BATCH} pays the model load once | missing runs | n/a |")
    p("| 4 | parity as in the core issue (1e-4 nats, f32) | not measured here: `cargo test` (tests/parity.rs) | n/a |")
    p("")
    p(
        f"Weights file {weights:,} bytes ({fmt_gib(weights)}); RSS target for long prompts "
        f"(file + 1 GiB): {fmt_gib(long_rss_target)}."
    )
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
