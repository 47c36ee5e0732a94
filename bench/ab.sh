#!/usr/bin/env bash
# Old binary against new, alternating, on bench/run.sh's logitlens rows: the speed check for
# changes that must not change speed (issue 28: within 3 % on the 9-token, 512-token and
# batch rows, medians, same run).
#
#   bash bench/ab.sh OLD_BIN NEW_BIN
#
# Only logitlens runs (no tutorial, no torch), on run.sh's checkpoint and prompts: the
# full-size Phi-1.5-shaped checkpoint ($LOGITLENS_CACHE/phi-1_5-random, random float16
# weights, made if missing) and bench/make_prompts.py's prompts. Cases (AB_CASES):
#   phi-9     the tutorial's 9-token prompt (--bos), table + heatmap PNG   (run.sh's 9-token row)
#   phi-512   a 512-token prompt (--bos), table only                       (its 512-token row)
#   batch32   32 prompts of 9 tokens (--bos), tables + one PNG each        (its batch row)
#   smollm2   SmolLM2-135M-Instruct Q4_1 GGUF (scripts/fetch_smollm2.sh), the 8-token fox
#             prompt, JSON (not one of run.sh's rows; bench/compare.sh runs it)
# Before each round the weights are read into the page cache; one untimed run of each binary
# comes first. Each round runs every case once with each binary, OLD first on odd rounds and
# NEW first on even ones. Wall time is measured outside the binary (bench/lib.sh), so any
# two builds compare; load / forward / lens are the medians of LOGITLENS_TIMING's (the JSON
# line, or the text lines of binaries older than it). Prints a Markdown table.
#
# Environment: AB_ROUNDS (default 5), AB_LONG_ROUNDS (rounds with phi-512, default AB_ROUNDS),
# AB_CASES (default "phi-9 phi-512 batch32"), AB_WORK (logs and outputs; default a temporary
# folder), LOGITLENS_CACHE, LOGITLENS_VENV (scripts/venv.sh). Not part of `cargo test` or CI.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init ab
OLD="$(realpath "${1:?usage: bench/ab.sh OLD_BIN NEW_BIN}")"
NEW="$(realpath "${2:?usage: bench/ab.sh OLD_BIN NEW_BIN}")"
ROUNDS="${AB_ROUNDS:-5}"
LONG_ROUNDS="${AB_LONG_ROUNDS:-$ROUNDS}"
read -r -a CASES <<<"${AB_CASES:-phi-9 phi-512 batch32}"
GGUF="$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

bench_python
bench_phi
bench_work "${AB_WORK:-}"
bench_prompts "$BENCH_WORK/prompts"
WARM=("$PHI/model.safetensors")
if [[ " ${CASES[*]} " == *" smollm2 "* ]]; then
  [ -f "$GGUF" ] || bash "$ROOT/scripts/fetch_smollm2.sh" >/dev/null
  WARM+=("$GGUF")
fi
OUT="$BENCH_WORK/out"
mkdir -p "$OUT"
# shellcheck disable=SC2034 # read by bench_pair
SIDE_old=("$OLD")
# shellcheck disable=SC2034
SIDE_new=("$NEW")

empty_batch_dir() { rm -rf "$OUT/batch" && mkdir -p "$OUT/batch"; }

# one_case ROUND CASE: both binaries on one case.
one_case() {
  local round="$1"
  case "$2" in
    phi-9) bench_pair "$round" phi-9 old new -m "$PHI" --bos -p "$FOX" --out "$OUT/phi-9.png" ;;
    phi-512) [ "$round" -gt "$LONG_ROUNDS" ] || bench_pair "$round" phi-512 old new -m "$PHI" --bos -p "$LONG512" ;;
    batch32) BENCH_BEFORE=empty_batch_dir bench_pair "$round" batch32 old new -m "$PHI" --bos --prompts "$BATCH32" --out-dir "$OUT/batch" ;;
    smollm2) bench_pair "$round" smollm2 old new -m "$GGUF" -p "The quick brown fox jumps over the lazy" -f json ;;
    *) log "unknown case $2 (AB_CASES: phi-9 phi-512 batch32 smollm2)"; exit 2 ;;
  esac
}

bench_warm "${WARM[@]}"
"$OLD" -m "$PHI" --bos -p "$FOX" >/dev/null 2>&1
"$NEW" -m "$PHI" --bos -p "$FOX" >/dev/null 2>&1
for i in $(seq 1 "$ROUNDS"); do
  log "round $i of $ROUNDS (${CASES[*]})"
  bench_warm "${WARM[@]}"
  for c in "${CASES[@]}"; do one_case "$i" "$c"; done
done

bench_py - "$BENCH_WORK" "$OLD" "$NEW" <<'PY'
import subprocess, sys
import harness
work, old, new = sys.argv[1:4]
runs = harness.runs(work)
version = lambda b: subprocess.run([b, "--version"], capture_output=True, text=True).stdout.strip()
print(f"- machine: {harness.machine()}")
print(f"- OLD: `{old}` ({version(old)}); NEW: `{new}` ({version(new)})")
print("- wall: whole process, measured outside it; load / forward / lens: LOGITLENS_TIMING; medians")
print()
print("| case | runs (old/new) | OLD wall | NEW wall | NEW/OLD | OLD load / forward / lens | NEW load / forward / lens |")
print("|---|---|---|---|---|---|---|")
for label in harness.labels(runs):
    o, n = (harness.summary(harness.select(runs, label, side)) for side in ("old", "new"))
    count = lambda s: f"{s['n']}" + (f" ({s['failed']} failed)" if s["failed"] else "")
    ratio = f"{n['wall'] / o['wall']:.3f}" if o["wall"] and n["wall"] else "—"
    print(f"| {label} | {count(o)}/{count(n)} | {harness.fmt_s(o['wall'], 3)} | {harness.fmt_s(n['wall'], 3)} "
          f"| {ratio} | {harness.split(o)} | {harness.split(n)} |")
PY
