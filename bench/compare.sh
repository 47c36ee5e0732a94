#!/usr/bin/env bash
# Old binary against new, in one run: a speed check for refactors that must not change speed.
#
#   bash bench/compare.sh OLD_BIN NEW_BIN
#
# On the full-size Phi-1.5-shaped checkpoint that bench/run.sh builds (random float16 weights,
# the real config and tokenizer) and on SmolLM2-135M-Instruct Q4_1 GGUF (scripts/fetch_smollm2.sh),
# it alternates OLD and NEW, run by run, with the weights in the page cache:
#   phi-9      the tutorial's 9-token prompt (--bos), table + heatmap PNG
#   phi-512    a 512-token prompt (--bos), table only
#   smollm2    the 8-token fox prompt, JSON
# and prints, per case, the median wall time of each binary, the ratio new/old, and the medians
# of the `timing:` breakdown (load / forward / lens) that LOGITLENS_TIMING=1 prints.
#
# Environment: COMPARE_RUNS (default 5) rounds of the short cases, COMPARE_LONG_RUNS (default 3)
# rounds of phi-512; LOGITLENS_CACHE and LOGITLENS_VENV as for bench/run.sh.
# Not part of `cargo test` or CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OLD="$(realpath "${1:?usage: bench/compare.sh OLD_BIN NEW_BIN}")"
NEW="$(realpath "${2:?usage: bench/compare.sh OLD_BIN NEW_BIN}")"
CACHE="${LOGITLENS_CACHE:-$HOME/.cache/logitlens}"
export LOGITLENS_VENV="${LOGITLENS_VENV:-$CACHE/venv}"
MODEL="$CACHE/phi-1_5-random"
GGUF="$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
RUNS="${COMPARE_RUNS:-5}"
LONG_RUNS="${COMPARE_LONG_RUNS:-3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { echo "compare: $*" >&2; }

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
ensure_venv
log "checkpoint: $MODEL"
"$PY" "$ROOT/scripts/make_phi_fullsize.py" "$MODEL" >/dev/null
bash "$ROOT/scripts/fetch_smollm2.sh" >/dev/null
"$PY" "$ROOT/bench/make_prompts.py" "$MODEL" "$WORK/prompts" >/dev/null
FOX="$(cat "$WORK/prompts/fox.txt")"
LONG512="$(cat "$WORK/prompts/long512.txt")"
export LOGITLENS_TIMING=1

# one LABEL WHICH BIN ARGS...: one timed run; appends "wall load forward lens" to LABEL.WHICH.
one() {
  local label="$1" which="$2" bin="$3"
  shift 3
  local start end
  start=$(date +%s.%N)
  "$bin" "$@" >/dev/null 2>"$WORK/err"
  end=$(date +%s.%N)
  local load forward lens
  load=$(sed -n 's/^timing: load \([0-9.]*\)s.*/\1/p' "$WORK/err" | head -1)
  forward=$(sed -n 's/.* forward \([0-9.]*\)s.*/\1/p' "$WORK/err" | head -1)
  lens=$(sed -n 's/.* lens \([0-9.]*\)s.*/\1/p' "$WORK/err" | head -1)
  echo "$(awk "BEGIN{print $end - $start}") ${load:-nan} ${forward:-nan} ${lens:-nan}" >>"$WORK/$label.$which"
}

# pair LABEL ARGS...: one run of each binary, the order alternating by round.
pair() {
  local label="$1" round="$2"
  shift 2
  if [ $((round % 2)) = 1 ]; then
    one "$label" old "$OLD" "$@"
    one "$label" new "$NEW" "$@"
  else
    one "$label" new "$NEW" "$@"
    one "$label" old "$OLD" "$@"
  fi
}

cat "$MODEL/model.safetensors" "$GGUF" >/dev/null
# One untimed run of each warms everything else (binary pages, fonts).
"$OLD" -m "$MODEL" --bos -p "$FOX" >/dev/null 2>&1
"$NEW" -m "$MODEL" --bos -p "$FOX" >/dev/null 2>&1
for i in $(seq 1 "$RUNS"); do
  log "round $i of $RUNS (phi-9, smollm2)"
  pair phi-9 "$i" -m "$MODEL" --bos -p "$FOX" --out "$WORK/heatmap.png"
  pair smollm2 "$i" -m "$GGUF" -p "The quick brown fox jumps over the lazy" -f json
done
for i in $(seq 1 "$LONG_RUNS"); do
  log "round $i of $LONG_RUNS (phi-512)"
  pair phi-512 "$i" -m "$MODEL" --bos -p "$LONG512"
done

"$PY" - "$WORK" "$RUNS" "$LONG_RUNS" <<'EOF'
import statistics, sys
work, runs, long_runs = sys.argv[1], sys.argv[2], sys.argv[3]
def med(label, which, col):
    rows = [l.split() for l in open(f"{work}/{label}.{which}")]
    vals = [float(r[col]) for r in rows if r[col] != "nan"]
    return statistics.median(vals) if vals else float("nan")
print("| case | runs | old wall | new wall | new/old | old load/forward/lens | new load/forward/lens |")
print("|---|---|---|---|---|---|---|")
for label, n in (("phi-9", runs), ("phi-512", long_runs), ("smollm2", runs)):
    o, w = med(label, "old", 0), med(label, "new", 0)
    br = lambda which: "/".join(f"{med(label, which, c):.3f}" for c in (1, 2, 3))
    print(f"| {label} | {n} | {o:.3f} s | {w:.3f} s | {w / o:.3f} | {br('old')} | {br('new')} |")
EOF
