#!/usr/bin/env bash
# The performance benchmark of issue 5: the tutorial's Python against logitlens, on a
# full-size Phi-1.5-shaped checkpoint (random float16 weights, the real config and tokenizer).
#
#   bash bench/run.sh
#
# Steps:
#   1. a pinned Python venv outside the repo (scripts/venv.sh, plus the plotting packages the
#      tutorial imports); the checkpoint, built with transformers by scripts/make_phi_fullsize.py
#      into the cache if missing; `cargo build --release`;
#   2. prompts cut to exact token counts with the real tokenizer (bench/make_prompts.py);
#   3. with the weights in the page cache, alternately: the tutorial's code (bench/tutorial.py)
#      in bfloat16 as written and in float32, `import torch, transformers` alone, and
#      logitlens on the tutorial's 9-token prompt (table and heatmap PNG); then logitlens on
#      512- and 2048-token prompts (table only) and on a batch of 32 prompts (tables and one
#      PNG each); each under /usr/bin/time -v;
#   4. a Markdown report of medians, ratios and the targets (bench/report.py).
#
# Not part of `cargo test` or CI. Environment:
#   BENCH_RUNS=3        rounds of the four 9-token runs
#   BENCH_LONG_RUNS=3   runs of each long prompt (512 and 2048 tokens)
#   BENCH_BATCH_RUNS=3  runs of the 32-prompt batch
#   BENCH_WORK=DIR      prompts, logs, images and report.md (default: $LOGITLENS_CACHE/bench)
#   LOGITLENS_CACHE     default $HOME/.cache/logitlens; the checkpoint is phi-1_5-random in it
#   LOGITLENS_VENV      the venv (default $LOGITLENS_CACHE/venv; see scripts/venv.sh)
# logitlens runs with LOGITLENS_TIMING=1; its `timing: ...` lines on stderr, when it prints
# them, give the load / forward / lens breakdown.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LOGITLENS_CACHE:-$HOME/.cache/logitlens}"
export LOGITLENS_VENV="${LOGITLENS_VENV:-$CACHE/venv}"
MODEL="$CACHE/phi-1_5-random"
WORK="${BENCH_WORK:-$CACHE/bench}"
RUNS="${BENCH_RUNS:-3}"
LONG_RUNS="${BENCH_LONG_RUNS:-3}"
BATCH_RUNS="${BENCH_BATCH_RUNS:-3}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/logitlens"

# What the tutorial imports beyond scripts/venv.sh's pins (seaborn needs pandas).
PLOT_PINS=("matplotlib==3.10.8" "seaborn==0.13.2" "pandas==2.3.3")

log() { echo "bench: $*" >&2; }

# ---- 1. environment, checkpoint, binary ------------------------------------------------------

setup_python() {
  # shellcheck source=scripts/venv.sh
  source "$ROOT/scripts/venv.sh"
  ensure_venv "${PLOT_PINS[@]}"   # sets PY
}

build_checkpoint() {
  # Idempotent and quick when the checkpoint exists (creates only what is missing).
  log "checkpoint: $MODEL"
  "$PY" "$ROOT/scripts/make_phi_fullsize.py" "$MODEL" >/dev/null
}

build_logitlens() {
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet)
  [ -x "$BIN" ] || { log "no binary at $BIN"; exit 1; }
}

# ---- 2. prompts ------------------------------------------------------------------------------

make_prompts() {
  "$PY" "$ROOT/bench/make_prompts.py" "$MODEL" "$WORK/prompts"
  FOX="$(cat "$WORK/prompts/fox.txt")"
  LONG512="$(cat "$WORK/prompts/long512.txt")"
  LONG2048="$(cat "$WORK/prompts/long2048.txt")"
  BATCH="$WORK/prompts/batch32.txt"
}

# ---- 3. measurements -------------------------------------------------------------------------

# Before every round: the float32 tutorial run alone takes ~9 GiB, which can push the weights
# out of the page cache; re-reading them when cached costs about a second.
warm_page_cache() {
  cat "$MODEL/model.safetensors" >/dev/null
}

# measure LABEL RUN CMD...: runs CMD under /usr/bin/time -v, stdout discarded, stderr and the
# time report kept in $WORK/logs/LABEL.RUN.{err,time}. A failed run is marked LABEL.RUN.failed
# (the report counts it as failed) and the benchmark goes on.
measure() {
  local label="$1" run="$2"
  shift 2
  local base="$WORK/logs/$label.$run" status=0
  log "$label, run $run"
  /usr/bin/time -v -o "$base.time" "$@" >/dev/null 2>"$base.err" || status=$?
  if [ "$status" != 0 ]; then
    echo "$status" >"$base.failed"
    log "$label failed (exit $status); the end of its stderr ($base.err):"
    tail -n 5 "$base.err" >&2
  fi
}

# The commands measured (arrays: /usr/bin/time runs programs, not shell functions).
set_commands() {
  TUTORIAL=("$PY" "$ROOT/bench/tutorial.py" "$MODEL" "$FOX")   # + --dtype D --out FILE
  IMPORT_ONLY=("$PY" -c "import torch, transformers")
  LOGITLENS=("$BIN" --model "$MODEL" --bos)                    # + prompts, --out / --out-dir
  export LOGITLENS_TIMING=1  # logitlens prints `timing: ...` lines on stderr (if it supports it)
}

run_short_rounds() {
  local i
  for i in $(seq 1 "$RUNS"); do
    warm_page_cache
    measure tutorial-bf16 "$i" "${TUTORIAL[@]}" --dtype bfloat16 --out "$WORK/out/tutorial-bf16.png"
    measure tutorial-f32 "$i" "${TUTORIAL[@]}" --dtype float32 --out "$WORK/out/tutorial-f32.png"
    measure import "$i" "${IMPORT_ONLY[@]}"
    measure logitlens-9 "$i" "${LOGITLENS[@]}" --prompt "$FOX" --out "$WORK/out/logitlens-9.png"
  done
}

run_long_prompts() {
  local i
  for i in $(seq 1 "$LONG_RUNS"); do
    warm_page_cache
    # Table only: a heatmap this wide is refused (over logitlens's image size limit).
    measure logitlens-512 "$i" "${LOGITLENS[@]}" --prompt "$LONG512"
    measure logitlens-2048 "$i" "${LOGITLENS[@]}" --prompt "$LONG2048"
  done
}

run_batch() {
  local i
  for i in $(seq 1 "$BATCH_RUNS"); do
    warm_page_cache
    rm -rf "$WORK/out/batch"
    mkdir -p "$WORK/out/batch"
    measure logitlens-batch32 "$i" "${LOGITLENS[@]}" --prompts "$BATCH" --out-dir "$WORK/out/batch"
  done
}

# ---- 4. report -------------------------------------------------------------------------------

report() {
  "$PY" "$ROOT/bench/report.py" \
    --logs "$WORK/logs" \
    --weights "$MODEL/model.safetensors" \
    --runs "$RUNS" --long-runs "$LONG_RUNS" --batch-runs "$BATCH_RUNS" \
    --commit "$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
}

main() {
  command -v /usr/bin/time >/dev/null || { log "needs GNU time: apt-get install time"; exit 1; }
  setup_python
  build_checkpoint
  build_logitlens
  rm -rf "$WORK/logs" "$WORK/out"
  mkdir -p "$WORK/logs" "$WORK/out"
  make_prompts
  set_commands
  log "weights: $(du -h "$MODEL/model.safetensors" | cut -f1); page cache warmed before each round"
  run_short_rounds
  run_long_prompts
  run_batch
  report | tee "$WORK/report.md"
  log "report also in $WORK/report.md; logs in $WORK/logs"
}

main "$@"
