#!/usr/bin/env bash
# Issue 8's cost checks, printed as figures (not a timed test):
#
#   bash bench/stats.sh [BIN]        # BIN defaults to target/release/logitlens
#
# On the full-size Phi-1.5-shaped checkpoint that bench/run.sh builds (random float16 weights,
# the real config and tokenizer; $LOGITLENS_CACHE/phi-1_5-random), with the weights in the page
# cache:
#   1. overhead: the tutorial's 9-token prompt (--bos), JSON, with the default top-k (5) and one
#      target (--target " dog") against the same run without them (--top-k 0, no target),
#      alternating, STATS_RUNS rounds (default 7); prints both medians and the ratio. The
#      statistics every cell always has (KL, next-token log-prob and rank) are in both.
#   2. memory: one 2048-token prompt (--bos; Phi-1.5's whole context) with the default top-k and
#      one target, JSONL to /dev/null; prints the peak RSS (GNU time's %M) against the model
#      file's size + 1 GiB.
# Not part of `cargo test` or CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$ROOT/target/release/logitlens}")"
CACHE="${LOGITLENS_CACHE:-$HOME/.cache/logitlens}"
export LOGITLENS_VENV="${LOGITLENS_VENV:-$CACHE/venv}"
MODEL="$CACHE/phi-1_5-random"
RUNS="${STATS_RUNS:-7}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
log() { echo "stats-bench: $*" >&2; }

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
ensure_venv
"$PY" "$ROOT/scripts/make_phi_fullsize.py" "$MODEL" >/dev/null
"$PY" "$ROOT/bench/make_prompts.py" "$MODEL" "$WORK/prompts" >/dev/null
FOX="$(cat "$WORK/prompts/fox.txt")"
LONG="$(cat "$WORK/prompts/long2048.txt")"

one() { # LABEL ARGS...: appends the wall time of one run to $WORK/LABEL
  local label="$1" start end
  shift
  start=$(date +%s.%N)
  "$BIN" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  end=$(date +%s.%N)
  awk "BEGIN{print $end - $start}" >>"$WORK/$label"
}

cat "$MODEL/model.safetensors" >/dev/null
BASE=(-m "$MODEL" --bos -p "$FOX" -f json)
"$BIN" "${BASE[@]}" >/dev/null 2>&1
for i in $(seq 1 "$RUNS"); do
  log "round $i of $RUNS (9 tokens)"
  if [ $((i % 2)) = 1 ]; then
    one plain "${BASE[@]}" --top-k 0
    one stats "${BASE[@]}" --target " dog"
  else
    one stats "${BASE[@]}" --target " dog"
    one plain "${BASE[@]}" --top-k 0
  fi
done

log "2048 tokens, peak RSS"
/usr/bin/time -f "%M %e" -o "$WORK/rss" "$BIN" -m "$MODEL" --bos -p "$LONG" -f jsonl \
  --target " dog" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
FILE_BYTES=$(stat -c %s "$MODEL/model.safetensors")

"$PY" - "$WORK" "$RUNS" "$FILE_BYTES" <<'PY'
import statistics, sys
work, runs, file_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = lambda name: statistics.median(float(l) for l in open(f"{work}/{name}"))
plain, stats = med("plain"), med("stats")
print(f"| case | runs | median wall |")
print(f"|---|---|---|")
print(f"| 9 tokens, JSON, --top-k 0, no target | {runs} | {plain:.3f} s |")
print(f"| 9 tokens, JSON, top-k 5 + --target | {runs} | {stats:.3f} s |")
print(f"overhead of top-k 5 + one target: {stats / plain:.3f}x (goal: at most 1.10x)")
kib, wall = open(f"{work}/rss").read().split()
rss = int(kib) * 1024
limit = file_bytes + (1 << 30)
print(f"2048 tokens, top-k 5 + one target: peak RSS {rss / 2**30:.2f} GiB, wall {float(wall):.1f} s; "
      f"model file {file_bytes / 2**30:.2f} GiB + 1 GiB = {limit / 2**30:.2f} GiB "
      f"({'within' if rss <= limit else 'OVER'} the goal)")
PY
