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
# The line "timing: load ... --fast: bf16 head, <path>" names the kernel path this CPU took.
# Not part of `cargo test` or CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$ROOT/target/release/logitlens}")"
CACHE="${LOGITLENS_CACHE:-$HOME/.cache/logitlens}"
export LOGITLENS_VENV="${LOGITLENS_VENV:-$CACHE/venv}"
PHI="$CACHE/phi-1_5-random"
SMOL="$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
RUNS="${FAST_RUNS:-5}"
LONG="${FAST_LONG:-1}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
log() { echo "fast-bench: $*" >&2; }

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
ensure_venv
"$PY" "$ROOT/scripts/make_phi_fullsize.py" "$PHI" >/dev/null
[ -f "$SMOL" ] || bash "$ROOT/scripts/fetch_smollm2.sh" >/dev/null
"$PY" "$ROOT/bench/make_prompts.py" "$PHI" "$WORK/prompts" >/dev/null
P="$WORK/prompts"

one() { # CASE MODE ARGS...: one run; appends its wall and lens seconds to $WORK/CASE.MODE
  local case="$1" mode="$2" start end flag=()
  shift 2
  [ "$mode" = fast ] && flag=(--fast)
  start=$(date +%s.%N)
  LOGITLENS_TIMING=1 "$BIN" "$@" "${flag[@]}" -f jsonl --top-k 5 >"$WORK/$case.$mode.jsonl" \
    2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  end=$(date +%s.%N)
  grep -m1 '^timing: load' "$WORK/err" >"$WORK/$case.$mode.path" || true
  local lens
  lens=$(sed -n 's/^timing: tokens .* lens \([0-9.]*\)s$/\1/p' "$WORK/err" | awk '{s+=$1} END{print s+0}')
  echo "$(awk "BEGIN{print $end - $start}") $lens" >>"$WORK/$case.$mode"
}

pair() { # CASE ROUNDS ARGS...: exact and --fast, alternating
  local case="$1" rounds="$2" i
  shift 2
  log "$case ($rounds round(s))"
  for i in $(seq 1 "$rounds"); do
    if [ $((i % 2)) = 1 ]; then one "$case" exact "$@"; one "$case" fast "$@"
    else one "$case" fast "$@"; one "$case" exact "$@"; fi
  done
  "$PY" "$ROOT/bench/fast_compare.py" "$WORK/$case.exact.jsonl" "$WORK/$case.fast.jsonl" >"$WORK/$case.cmp"
  echo "$case" >>"$WORK/cases"
}

cat "$PHI/model.safetensors" "$SMOL" >/dev/null
"$BIN" -m "$SMOL" -p warm >/dev/null 2>&1
pair "SmolLM2-135M, 32 prompts" "$RUNS" -m "$SMOL" --prompts "$P/batch32.txt"
"$BIN" -m "$PHI" -p warm >/dev/null 2>&1
pair "Phi-1.5 shape, 9 tokens" "$RUNS" -m "$PHI" --bos -p "$(cat "$P/fox.txt")"
pair "Phi-1.5 shape, 32 x 9 tokens" 1 -m "$PHI" --bos --prompts "$P/batch32.txt"
pair "Phi-1.5 shape, 512 tokens" 1 -m "$PHI" --bos -p "$(cat "$P/long512.txt")"
[ "$LONG" = 1 ] && pair "Phi-1.5 shape, 2048 tokens" 1 -m "$PHI" --bos -p "$(cat "$P/long2048.txt")"

"$PY" - "$WORK" <<'PY'
import json, statistics, sys
work = sys.argv[1]
cases = [l.rstrip("\n") for l in open(f"{work}/cases")]
def runs(case, mode):
    rows = [l.split() for l in open(f"{work}/{case}.{mode}")]
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows]
path = open(f"{work}/{cases[0]}.fast.path").read().strip()
print(f"fast path: {path.split('--fast: ')[-1]}")
print("| case | runs | exact wall | --fast wall | speed-up | exact lens | --fast lens | lens speed-up | max abs d entropy | max abs d KL | argmax flips | flips where margin > 0.01 | output-row flips |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for case in cases:
    (we, le), (wf, lf) = runs(case, "exact"), runs(case, "fast")
    we, wf, le, lf = (statistics.median(v) for v in (we, wf, le, lf))
    c = json.load(open(f"{work}/{case}.cmp"))
    print(f"| {case} | {len(runs(case, 'exact')[0])} | {we:.2f} s | {wf:.2f} s | {we / wf:.2f}x | {le:.2f} s | {lf:.2f} s | {le / lf:.2f}x "
          f"| {c['max_abs_d_entropy']:.2e} | {c['max_abs_d_kl']:.2e} "
          f"| {c['argmax_flips']}/{c['cells']} ({100 * c['flip_fraction']:.2f} %) | {c['clear_flips']}/{c['clear_cells']} | {c['output_flips']}/{c['output_cells']} |")
PY
