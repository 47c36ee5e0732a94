#!/usr/bin/env bash
# The performance benchmark of issue 5: the tutorial's Python against logitlens, on a
# full-size Phi-1.5-shaped checkpoint (random float16 weights, the real config and tokenizer).
#
#   bash bench/run.sh
#
# Steps:
#   1. a pinned Python venv outside the repo (scripts/venv.sh, plus the plotting packages the
#      tutorial imports); the checkpoint, built with transformers by scripts/make_phi_fullsize.py
#      into the cache if missing; `cargo build --release` (or LOGITLENS_BIN);
#   2. prompts cut to exact token counts with the real tokenizer (bench/make_prompts.py);
#   3. with the weights in the page cache, alternately: the tutorial's code (bench/tutorial.py)
#      in bfloat16 as written and in float32, `import torch, transformers` alone, and
#      logitlens on the tutorial's 9-token prompt (table and heatmap PNG); then logitlens on
#      512- and 2048-token prompts (table only) and on a batch of 32 prompts (tables and one
#      PNG each); each timed by the bench harness (bench/lib.sh: wall time, peak RSS by GNU
#      time, LOGITLENS_TIMING=json's load / forward / lens);
#   4. a Markdown report of medians, ratios and the targets (bench/report.py).
#
# Not part of `cargo test` or CI. Environment:
#   BENCH_RUNS=3        rounds of the four 9-token runs
#   BENCH_LONG_RUNS=3   runs of each long prompt (512 and 2048 tokens)
#   BENCH_BATCH_RUNS=3  runs of the 32-prompt batch
#   BENCH_WORK=DIR      prompts, logs, images and report.md (default: $LOGITLENS_CACHE/bench)
#   LOGITLENS_CACHE     default $HOME/.cache/logitlens; the checkpoint is phi-1_5-random in it
#   LOGITLENS_VENV      the venv (default $LOGITLENS_CACHE/venv; see scripts/venv.sh)
#   LOGITLENS_BIN       the binary to measure (default: built here)
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init bench
WORK="${BENCH_WORK:-$CACHE/bench}"
RUNS="${BENCH_RUNS:-3}"
LONG_RUNS="${BENCH_LONG_RUNS:-3}"
BATCH_RUNS="${BENCH_BATCH_RUNS:-3}"

# What the tutorial imports beyond scripts/venv.sh's pins (seaborn needs pandas).
PLOT_PINS=("matplotlib==3.10.8" "seaborn==0.13.2" "pandas==2.3.3")

# ---- 3. measurements -------------------------------------------------------------------------

# Before every round: the float32 tutorial run alone takes ~9 GiB, which can push the weights
# out of the page cache; re-reading them when cached costs about a second.
warm_page_cache() {
  bench_warm "$PHI/model.safetensors"
}

# The commands measured.
set_commands() {
  TUTORIAL=("$PY" "$ROOT/bench/tutorial.py" "$PHI" "$FOX")   # + --dtype D --out FILE
  IMPORT_ONLY=("$PY" -c "import torch, transformers")
  LOGITLENS=("$BIN" --model "$PHI" --bos)                    # + prompts, --out / --out-dir
}

run_short_rounds() {
  local i
  for i in $(seq 1 "$RUNS"); do
    warm_page_cache
    log "round $i of $RUNS (9 tokens)"
    bench_run tutorial-bf16 run "${TUTORIAL[@]}" --dtype bfloat16 --out "$WORK/out/tutorial-bf16.png"
    bench_run tutorial-f32 run "${TUTORIAL[@]}" --dtype float32 --out "$WORK/out/tutorial-f32.png"
    bench_run import run "${IMPORT_ONLY[@]}"
    bench_run logitlens-9 run "${LOGITLENS[@]}" --prompt "$FOX" --out "$WORK/out/logitlens-9.png"
  done
}

run_long_prompts() {
  local i
  for i in $(seq 1 "$LONG_RUNS"); do
    warm_page_cache
    log "round $i of $LONG_RUNS (512 and 2048 tokens)"
    # Table only: a heatmap this wide is refused (over logitlens's image size limit).
    bench_run logitlens-512 run "${LOGITLENS[@]}" --prompt "$LONG512"
    bench_run logitlens-2048 run "${LOGITLENS[@]}" --prompt "$LONG2048"
  done
}

empty_batch_dir() { rm -rf "$WORK/out/batch" && mkdir -p "$WORK/out/batch"; }

run_batch() {
  local i
  for i in $(seq 1 "$BATCH_RUNS"); do
    warm_page_cache
    log "round $i of $BATCH_RUNS (batch of 32)"
    BENCH_BEFORE=empty_batch_dir bench_run logitlens-batch32 run "${LOGITLENS[@]}" --prompts "$BATCH32" --out-dir "$WORK/out/batch"
  done
}

# ---- 4. report -------------------------------------------------------------------------------

report() {
  bench_py "$ROOT/bench/report.py" \
    --work "$WORK" \
    --weights "$PHI/model.safetensors" \
    --runs "$RUNS" --long-runs "$LONG_RUNS" --batch-runs "$BATCH_RUNS" \
    --commit "$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
}

main() {
  command -v /usr/bin/time >/dev/null || { log "needs GNU time (peak RSS): apt-get install time"; exit 1; }
  # 1. environment, checkpoint, binary; 2. prompts
  bench_python "${PLOT_PINS[@]}"
  bench_phi
  bench_binary
  bench_work "$WORK"
  rm -rf "$WORK/out"
  mkdir -p "$WORK/out"
  bench_prompts "$WORK/prompts"
  set_commands
  log "weights: $(du -h "$PHI/model.safetensors" | cut -f1); page cache warmed before each round"
  run_short_rounds
  run_long_prompts
  run_batch
  report | tee "$WORK/report.md"
  log "report also in $WORK/report.md; logs in $WORK/logs"
}

main "$@"
