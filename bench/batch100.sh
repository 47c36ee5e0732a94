#!/usr/bin/env bash
# Time per prompt for N prompts (default 100) run in one process against N separate runs of
# the binary, for each model given (default: the tiny phi fixture and the full-size
# Phi-1.5-shaped checkpoint that bench/run.sh builds).
#
#   bash bench/batch100.sh [MODEL...]
#
# Prompts are short sentences (8–12 tokens) with --bos, printed as JSONL to /dev/null.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/logitlens"
N="${N:-100}"
CACHE="${LOGITLENS_CACHE:-$HOME/.cache/logitlens}"
[ $# -gt 0 ] || set -- "$ROOT/tests/fixtures/phi-tiny" "$CACHE/phi-1_5-random"

(cd "$ROOT" && cargo build --release --quiet)
prompts="$(mktemp)"
trap 'rm -f "$prompts"' EXIT
subjects=(fox cat river city model layer token window garden engine)
for i in $(seq 1 "$N"); do
  echo "Sentence $i: the ${subjects[$((i % 10))]} jumps over the lazy dog"
done > "$prompts"

seconds() { date +%s.%N; }

printf '| model | prompts | one process | per prompt | %s separate runs | per prompt | ratio |\n' "$N"
printf '|---|---|---|---|---|---|---|\n'
for model in "$@"; do
  [ -e "$model" ] || { echo "missing $model (run bench/run.sh to build the full-size checkpoint)" >&2; continue; }
  cat "$model"/*.safetensors > /dev/null 2>&1 || true
  t0=$(seconds)
  "$BIN" --model "$model" --prompts "$prompts" --bos -f jsonl -q > /dev/null
  t1=$(seconds)
  while IFS= read -r p; do
    "$BIN" --model "$model" --prompt "$p" --bos -f jsonl -q > /dev/null
  done < "$prompts"
  t2=$(seconds)
  awk -v m="$(basename "$model")" -v n="$N" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
    one = b - a; sep = c - b;
    printf "| %s | %d | %.2f s | %.3f s | %.2f s | %.3f s | %.1f× |\n", m, n, one, one / n, sep, sep / n, sep / one }'
done
