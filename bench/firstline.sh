#!/usr/bin/env bash
# When a batch's first result arrives: N prompts (default 100) as JSONL through one process,
# the time of its first stdout line and of its end, for each binary given (default: the one
# built here), alternated over ROUNDS rounds (default 2); medians.
#
#   bash bench/firstline.sh [BIN...]
#
# Environment: MODEL (default: SmolLM2's GGUF from scripts/fetch_smollm2.sh), N, ROUNDS,
# LOGITLENS_BIN, LOGITLENS_CACHE. Issue 29 asks that the first line arrive well before half
# of the run.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init firstline
N="${N:-100}"
ROUNDS="${ROUNDS:-2}"
MODEL="${MODEL:-$(ls "$CACHE"/smollm2/*.gguf 2>/dev/null | head -1)}"
[ -e "$MODEL" ] || { log "no model: give MODEL=PATH or run scripts/fetch_smollm2.sh"; exit 1; }
if [ $# -eq 0 ]; then
  bench_binary
  set -- "$BIN"
fi
bench_work
subjects=(fox cat river city model layer token window garden engine)
for i in $(seq 1 "$N"); do
  printf '{"id": "p%d", "prompt": "Sentence %d: the %s jumps over the lazy dog"}\n' \
    "$i" "$i" "${subjects[$((i % 10))]}"
done > "$BENCH_WORK/prompts.jsonl"
bench_warm "$MODEL"

bench_py - "$ROUNDS" "$MODEL" "$BENCH_WORK/prompts.jsonl" "$@" <<'PY'
import subprocess, sys, time
import harness
rounds, model, prompts, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
seen = {b: [] for b in bins}
for r in range(rounds):
    for b in (bins if r % 2 == 0 else bins[::-1]):
        t0 = time.monotonic()
        p = subprocess.Popen([b, "-m", model, "--prompts", prompts, "-f", "jsonl", "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        first, lines = None, 0
        for _ in p.stdout:
            first = first if first is not None else time.monotonic() - t0
            lines += 1
        p.wait()
        total = time.monotonic() - t0
        if p.returncode != 0 or first is None:
            sys.exit(f"{b}: exit {p.returncode}, {lines} lines")
        seen[b].append((first, total))
print(f"| binary | prompts | first line | total | first / total |")
print("|---|---|---|---|---|")
for b, runs in seen.items():
    first = harness.median([f for f, _ in runs])
    total = harness.median([t for _, t in runs])
    print(f"| {b} | {lines} | {first:.2f} s | {total:.2f} s | {first / total:.0%} |")
PY
