#!/usr/bin/env bash
# Time per prompt for N prompts (default 100) run in one process against N separate runs of
# the binary, for each model given (default: the tiny phi fixture and the full-size
# Phi-1.5-shaped checkpoint that bench/run.sh builds).
#
#   bash bench/batch100.sh [MODEL...]
#
# Prompts are short sentences (8–12 tokens) with --bos, printed as JSONL to /dev/null; each run
# timed by bench/lib.sh. Environment: N (default 100), LOGITLENS_BIN (default: built here with
# `cargo build --release`), LOGITLENS_CACHE.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init batch100
N="${N:-100}"
[ $# -gt 0 ] || set -- "$ROOT/tests/fixtures/phi-tiny" "$CACHE/phi-1_5-random"

bench_binary
bench_work
prompts="$BENCH_WORK/prompts.txt"
subjects=(fox cat river city model layer token window garden engine)
for i in $(seq 1 "$N"); do
  echo "Sentence $i: the ${subjects[$((i % 10))]} jumps over the lazy dog"
done > "$prompts"

for model in "$@"; do
  [ -e "$model" ] || { log "missing $model (run bench/run.sh to build the full-size checkpoint)"; continue; }
  bench_warm "$model"/*.safetensors 2>/dev/null || true
  bench_run "$model" one "$BIN" --model "$model" --prompts "$prompts" --bos -f jsonl -q
  while IFS= read -r p; do
    bench_run "$model" separate "$BIN" --model "$model" --prompt "$p" --bos -f jsonl -q
  done < "$prompts"
done

bench_py - "$BENCH_WORK" "$N" <<'PY'
import os, sys
import harness
work, n = sys.argv[1], int(sys.argv[2])
runs = harness.runs(work)
print(f"| model | prompts | one process | per prompt | {n} separate runs | per prompt | ratio |")
print("|---|---|---|---|---|---|---|")
for model in harness.labels(runs):
    one = sum(r["wall"] for r in harness.select(runs, model, "one"))
    sep = sum(r["wall"] for r in harness.select(runs, model, "separate"))
    print(f"| {os.path.basename(model)} | {n} | {one:.2f} s | {one / n:.3f} s | {sep:.2f} s | {sep / n:.3f} s | {sep / one:.1f}× |")
PY
