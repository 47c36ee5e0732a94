#!/usr/bin/env bash
# Issue 13's GPU check: a CUDA build of logitlens (scripts/build_cuda.sh) on a machine with an
# NVIDIA GPU, in one short run (a few minutes), printing one Markdown table.
#
#   bash bench/gpu_check.sh [BIN]
#
# BIN defaults to target-cuda/release/logitlens, else .gpu/logitlens.xz (what
# scripts/build_cuda.sh leaves for the device tool to carry); a BIN ending in .xz is unpacked
# into $GPU_CHECK_WORK first (xz, or python3's lzma where xz is missing).
#
# 1. CUDA libraries: LD_LIBRARY_PATH gets every nvidia/*/lib folder of python3's
#    site-packages (NVIDIA's CUDA wheels, as torch installs them); the driver's libcuda.so.1
#    comes from the system. Prints the GPU, the driver and the binary's CUDA libraries.
# 2. A full-size Phi-1.5-shaped checkpoint with random float16 weights, made there with torch
#    alone (bench/gpu/make_checkpoint.py; 2.84 GB, into $GPU_CHECK_WORK).
# 3. Parity, `--device cuda` against `--device cpu` of the same binary (bench/gpu/compare.py,
#    --top-k 2): every tiny fixture (safetensors and f32 GGUF, tests/fixtures) on three
#    prompts, and the full-size checkpoint at 9 and 512 tokens. Targets: argmax equal wherever
#    the CPU's top-2 margin exceeds 1e-3, entropies within 1e-3 nats.
# 4. Speed on the GPU, f32, load included (wall time of the whole process, median of
#    $GPU_CHECK_RUNS): 9, 512 and 2048 tokens (bench/gpu/prompts, made by
#    bench/gpu/make_prompts.py), and one process over 100 prompts of 9 tokens; with the
#    medians of LOGITLENS_TIMING's load / forward / lens (forward and lens summed over the
#    prompts of a run). The CPU's 9-token time on the same machine is printed beside it. The
#    runs are timed by the bench harness (bench/lib.sh, bench/harness.py).
#
# Environment: GPU_CHECK_DEVICE (default cuda), GPU_CHECK_WORK (default
# /tmp/logitlens-gpu-check), GPU_CHECK_RUNS (default 3), PYTHON (default python3), and
# GPU_CHECK_LAYERS (fewer blocks, for a quick rehearsal of the script on a CPU machine).
# With GPU_CHECK_DEVICE=cpu the "device" side runs the generic path on the CPU
# (LOGITLENS_GENERIC_PATH=1), so a rehearsal compares the two paths, as the GPU run will.
# Exits 1 when a parity target is missed.
set -uo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init gpu_check
BIN="${1:-${LOGITLENS_BIN:-}}"
if [ -z "$BIN" ]; then
  BIN="$ROOT/target-cuda/release/logitlens"
  [ -x "$BIN" ] || BIN="$ROOT/.gpu/logitlens.xz"
fi
BIN="$(realpath "$BIN")"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
LABEL="$DEVICE"
GENERIC=()
if [ "$DEVICE" = cpu ]; then
  GENERIC=(LOGITLENS_GENERIC_PATH=1)
  LABEL="cpu (generic path)"
fi
WORK="${GPU_CHECK_WORK:-/tmp/logitlens-gpu-check}"
RUNS="${GPU_CHECK_RUNS:-3}"
PY="${PYTHON:-python3}"
PROMPTS="$ROOT/bench/gpu/prompts"
mkdir -p "$WORK"

case "$BIN" in
  *.xz)
    if command -v xz > /dev/null; then
      xz -dc "$BIN" > "$WORK/logitlens"
    else
      "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$BIN" "$WORK/logitlens"
    fi || { log "cannot unpack $BIN"; exit 1; }
    chmod +x "$WORK/logitlens"
    log "unpacked $BIN"
    BIN="$WORK/logitlens"
    ;;
esac
[ -x "$BIN" ] || { log "no binary at $BIN: build it with scripts/build_cuda.sh"; exit 1; }

# ---- 1. libraries -------------------------------------------------------------------------
libs="$("$PY" - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = {d for r in roots for d in glob.glob(os.path.join(r, "nvidia", "**", "lib"), recursive=True)}
print(":".join(sorted(dirs)))
EOF
)"
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
log "GPU: ${gpu:-none found by nvidia-smi}"
log "binary: $BIN"
ldd "$BIN" | grep -E 'libcuda|libcublas|libcurand|libnvrtc|libcudart|not found' | sed 's/^/gpu_check:   /' >&2
if ldd "$BIN" | grep -q 'not found'; then
  log "a library of the binary is missing: see above"
  exit 1
fi

seconds() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(seconds)" 'BEGIN {printf "%.2f", b - a}'; }

# ---- 2. checkpoint ------------------------------------------------------------------------
MODEL="$WORK/phi-fullsize"
start="$(seconds)"
"$PY" "$ROOT/bench/gpu/make_checkpoint.py" "$MODEL" ${GPU_CHECK_LAYERS:-} >&2 || { log "cannot make the checkpoint"; exit 1; }
log "checkpoint ready in $(elapsed "$start") s"
# Into the page cache, so that every timed run loads from memory.
bench_warm "$MODEL/model.safetensors"

# ---- 3. parity ----------------------------------------------------------------------------
status=0
parity() { # LABEL MODEL ARGS... : cpu and gpu JSONL of the same run, compared
  local label="$1" model="$2"
  shift 2
  "$BIN" --model "$model" --format jsonl --top-k 2 --quiet --device cpu "$@" > "$WORK/cpu.jsonl" 2> "$WORK/cpu.err" \
    || { echo "| $label | cpu run failed: $(head -1 "$WORK/cpu.err") | | | | | | FAIL |"; status=1; return; }
  env "${GENERIC[@]}" "$BIN" --model "$model" --format jsonl --top-k 2 --quiet --device "$DEVICE" "$@" > "$WORK/gpu.jsonl" 2> "$WORK/gpu.err" \
    || { echo "| $label | $LABEL run failed: $(head -1 "$WORK/gpu.err") | | | | | | FAIL |"; status=1; return; }
  "$PY" "$ROOT/bench/gpu/compare.py" "$WORK/cpu.jsonl" "$WORK/gpu.jsonl" "$label" || status=1
}

echo
echo "GPU: ${gpu:-?}; binary: $("$BIN" --version 2>/dev/null)"
echo
echo "| parity, $LABEL vs cpu (f32) | cells | max \|Δ entropy\| | max \|Δ prob\| | max \|Δ kl\| | clear cells | argmax flips | verdict |"
echo "|---|---|---|---|---|---|---|---|"
tiny=(--prompt "The quick brown fox jumps over the lazy dog" --prompt "def add(a, b):" --prompt "Paris is the capital of")
for dir in "$ROOT"/tests/fixtures/*/; do
  name="$(basename "$dir")"
  [ -f "$dir/config.json" ] && [ -f "$dir/model.safetensors" ] && parity "$name" "$dir" "${tiny[@]}" --sublayers
  if [ -f "$dir/model-f32.gguf" ]; then
    parity "$name (GGUF f32)" "$dir/model-f32.gguf" --tokenizer "$dir/tokenizer.json" "${tiny[@]}"
  fi
done
parity "phi-1.5 shape, 9 tokens" "$MODEL" --prompts "$PROMPTS/p9.txt"
parity "phi-1.5 shape, 512 tokens" "$MODEL" --prompts "$PROMPTS/p512.txt"

# ---- 4. speed -----------------------------------------------------------------------------
timed() { # LABEL device|host PROMPTS_FILE : RUNS timed runs
  local label="$1" side="$2" file="$3" device=cpu run=()
  [ "$side" = device ] && device="$DEVICE" && run=("${GENERIC[@]}")
  for _ in $(seq "$RUNS"); do
    bench_run "$label" "$side" env "${run[@]}" "$BIN" --model "$MODEL" --device "$device" \
      --prompts "$file" --format jsonl
  done
}

bench_work "$WORK/speed"
for n in 9 512 2048; do
  timed "$n tokens" device "$PROMPTS/p$n.txt"
done
timed "100 prompts of 9 tokens, one process" device "$PROMPTS/batch100.txt"
timed "9 tokens" host "$PROMPTS/p9.txt"

echo
bench_py - "$BENCH_WORK" "$RUNS" "$LABEL" "cpu ($(nproc) cores)" <<'EOF' || status=1
import sys
import harness
work, runs, device, host = sys.argv[1:5]
all_runs = harness.runs(work)
print(f"| speed, phi-1.5 shape, f32 | device | wall (median of {runs}, load included) | load / forward / lens (medians) |")
print("|---|---|---|---|")
for key in dict.fromkeys((r["label"], r["side"]) for r in all_runs):
    s = harness.summary(harness.select(all_runs, *key))
    failed = f" ({s['failed']} failed)" if s["failed"] else ""
    print(f"| {key[0]} | {device if key[1] == 'device' else host} | {harness.fmt_s(s['wall'])}{failed} | {harness.split(s)} s |")
sys.exit(1 if any(not r["ok"] for r in all_runs) else 0)
EOF
echo
[ "$status" = 0 ] && log "every parity target met" || log "a target was missed or a run failed (see the tables)"
exit "$status"
