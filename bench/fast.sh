#!/usr/bin/env bash
# Issue 12's fast mode, measured against exact f32 in one run (figures, not a timed test):
#
#   bash bench/fast.sh [BIN]        # BIN defaults to target/release/logitlens
#
# For each case, logitlens runs the same prompts without and with --fast (JSONL, --top-k 5,
# alternating when repeated), with the weights in the page cache, and prints: the median
# wall of each, the speed-up, the lens stage's seconds (LOGITLENS_TIMING), and what --fast
# changed (bench/fast_compare.py: max |Δ entropy|, max |Δ KL|, argmax flips over every
# cell, over the cells whose exact top-2 margin exceeds 0.01 nats, and on the output row).
#   1. SmolLM2-135M-Instruct, real weights ($LOGITLENS_CACHE/smollm2, scripts/fetch_smollm2.sh):
#      the 32 prompts of bench/make_prompts.py's batch, FAST_RUNS rounds;
#   2. the full-size Phi-1.5-shaped checkpoint (random float16 weights, bench/run.sh's):
#      the tutorial's 9-token prompt (--bos, FAST_RUNS rounds), 512 and 2048 tokens (one run
#      each; FAST_LONG=0 skips 2048) and the 32-prompt batch (one run each).
# The first line names the kernel path this CPU took (LOGITLENS_TIMING=json's "fast").
# Not part of `cargo test` or CI.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init fast-bench
LOGITLENS_BIN="${1:-${LOGITLENS_BIN:-$ROOT/target/release/logitlens}}"
SMOL="$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
RUNS="${FAST_RUNS:-5}"
LONG="${FAST_LONG:-1}"
BENCH_ON_FAILURE=exit

bench_python
bench_phi
bench_binary
[ -f "$SMOL" ] || bash "$ROOT/scripts/fetch_smollm2.sh" >/dev/null
bench_work
bench_prompts "$BENCH_WORK/prompts"
P="$BENCH_WORK/prompts"
# shellcheck disable=SC2034 # read by bench_pair
SIDE_exact=("$BIN")
# shellcheck disable=SC2034
SIDE_fast=("$BIN" --fast)

pair() { # CASE ROUNDS ARGS...: exact and --fast, alternating; compares the last outputs
  local case="$1" rounds="$2" i n
  shift 2
  log "$case ($rounds round(s))"
  n=$(wc -l <"$BENCH_WORK/cases.tsv")
  for i in $(seq 1 "$rounds"); do
    BENCH_STDOUT="$BENCH_WORK/$n.{side}.jsonl" bench_pair "$i" "$case" exact fast "$@" -f jsonl --top-k 5
  done
  bench_py "$ROOT/bench/fast_compare.py" "$BENCH_WORK/$n.exact.jsonl" "$BENCH_WORK/$n.fast.jsonl" >"$BENCH_WORK/$n.cmp"
  printf '%s\t%s\n' "$case" "$BENCH_WORK/$n.cmp" >>"$BENCH_WORK/cases.tsv"
}

: >"$BENCH_WORK/cases.tsv"
bench_warm "$PHI/model.safetensors" "$SMOL"
"$BIN" -m "$SMOL" -p warm >/dev/null 2>&1
pair "SmolLM2-135M, 32 prompts" "$RUNS" -m "$SMOL" --prompts "$BATCH32"
"$BIN" -m "$PHI" -p warm >/dev/null 2>&1
pair "Phi-1.5 shape, 9 tokens" "$RUNS" -m "$PHI" --bos -p "$FOX"
pair "Phi-1.5 shape, 32 x 9 tokens" 1 -m "$PHI" --bos --prompts "$BATCH32"
pair "Phi-1.5 shape, 512 tokens" 1 -m "$PHI" --bos -p "$LONG512"
[ "$LONG" = 1 ] && pair "Phi-1.5 shape, 2048 tokens" 1 -m "$PHI" --bos -p "$LONG2048"

bench_py - "$BENCH_WORK" <<'PY'
import json, sys
import harness
work = sys.argv[1]
runs = harness.runs(work)
cases = [l.rstrip("\n").split("\t") for l in open(f"{work}/cases.tsv")]
fast = harness.select(runs, cases[0][0], "fast")[0]["timing"]
print(f"fast path: {fast['fast'] if fast else '?'}")
print("| case | runs | exact wall | --fast wall | speed-up | exact lens | --fast lens | lens speed-up | max abs d entropy | max abs d KL | argmax flips | flips where margin > 0.01 | output-row flips |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for case, cmp in cases:
    e, f = (harness.summary(harness.select(runs, case, side)) for side in ("exact", "fast"))
    c = json.load(open(cmp))
    print(f"| {case} | {e['n']} | {e['wall']:.2f} s | {f['wall']:.2f} s | {e['wall'] / f['wall']:.2f}x | {e['lens_s']:.2f} s | {f['lens_s']:.2f} s | {e['lens_s'] / f['lens_s']:.2f}x "
          f"| {c['max_abs_d_entropy']:.2e} | {c['max_abs_d_kl']:.2e} "
          f"| {c['argmax_flips']}/{c['cells']} ({100 * c['flip_fraction']:.2f} %) | {c['clear_flips']}/{c['clear_cells']} | {c['output_flips']}/{c['output_cells']} |")
PY
