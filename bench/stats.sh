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

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init stats-bench
LOGITLENS_BIN="${1:-${LOGITLENS_BIN:-$ROOT/target/release/logitlens}}"
RUNS="${STATS_RUNS:-7}"
BENCH_ON_FAILURE=exit

bench_python
bench_phi
bench_binary
bench_work
bench_prompts "$BENCH_WORK/prompts"
# shellcheck disable=SC2034 # read by bench_pair
SIDE_plain=("$BIN" --top-k 0)
# shellcheck disable=SC2034
SIDE_stats=("$BIN" --target " dog")

bench_warm "$PHI/model.safetensors"
BASE=(-m "$PHI" --bos -p "$FOX" -f json)
"$BIN" "${BASE[@]}" >/dev/null 2>&1
for i in $(seq 1 "$RUNS"); do
  log "round $i of $RUNS (9 tokens)"
  bench_pair "$i" 9-tokens plain stats "${BASE[@]}"
done

log "2048 tokens, peak RSS"
command -v /usr/bin/time >/dev/null || { log "needs GNU time (peak RSS): apt-get install time"; exit 1; }
bench_run 2048-tokens rss "$BIN" -m "$PHI" --bos -p "$LONG2048" -f jsonl --target " dog"

bench_py - "$BENCH_WORK" "$RUNS" "$(stat -c %s "$PHI/model.safetensors")" <<'PY'
import sys
import harness
work, runs, file_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
all_runs = harness.runs(work)
plain, stats = (harness.summary(harness.select(all_runs, "9-tokens", side))["wall"] for side in ("plain", "stats"))
print(f"| case | runs | median wall |")
print(f"|---|---|---|")
print(f"| 9 tokens, JSON, --top-k 0, no target | {runs} | {plain:.3f} s |")
print(f"| 9 tokens, JSON, top-k 5 + --target | {runs} | {stats:.3f} s |")
print(f"overhead of top-k 5 + one target: {stats / plain:.3f}x (goal: at most 1.10x)")
long = harness.select(all_runs, "2048-tokens")[0]
rss, wall = long["rss"], long["wall"]
limit = file_bytes + (1 << 30)
print(f"2048 tokens, top-k 5 + one target: peak RSS {rss / 2**30:.2f} GiB, wall {wall:.1f} s; "
      f"model file {file_bytes / 2**30:.2f} GiB + 1 GiB = {limit / 2**30:.2f} GiB "
      f"({'within' if rss <= limit else 'OVER'} the goal)")
PY
