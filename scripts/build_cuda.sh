#!/usr/bin/env bash
# Build logitlens with candle's CUDA back end on a machine WITHOUT a GPU or a CUDA install.
# nvcc and the CUDA libraries come from NVIDIA's PyPI wheels (CUDA 13.0.x), installed into a
# venv outside the repo; the driver library libcuda.so is replaced at link time by a stub
# generated from cudarc's symbol list. See docs/GPU.md.
#
# Usage: scripts/build_cuda.sh            (env: CUDA_COMPUTE_CAP, default 90 = Hopper/H200)
#        scripts/build_cuda.sh test       the whole test suite against the CUDA build
#                                         (release profile), here without a GPU or a driver:
#                                         the stub stands in for libcuda.so.1, so every CUDA
#                                         device is "no usable CUDA device"
# Output: target-cuda/release/logitlens, and .gpu/logitlens.xz: the same binary stripped and
# xz-compressed (about 9.5 MB instead of 71 MB stripped), small enough to travel to a GPU
# machine with the working tree (the device tool's limit is 64 MiB for both together).
# bench/gpu_check.sh takes either.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${LOGITLENS_CUDA_CACHE:-$HOME/.cache/logitlens}"
VENV="$CACHE/cuda-venv"
SHIM="$CACHE/cuda-link-shim"
PY="${PYTHON:-python3}"

# 1. nvcc + CUDA 13.0 libraries from PyPI (versions verified 2026-12-05).
#    nvidia-cuda-crt and nvidia-nvvm must be pinned too: unpinned, pip pulls 13.5.x, which
#    does not match nvcc 13.0.88.
if [ ! -x "$VENV/bin/pip" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q \
  "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" "nvidia-nvvm==13.0.88" \
  "nvidia-cuda-nvrtc==13.0.88" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85" \
  "nvidia-cublas==13.0.2.14" "nvidia-curand==10.4.0.35"

CU="$("$VENV/bin/python" -c 'import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
[ -x "$CU/bin/nvcc" ] || { echo "nvcc not found under $CU" >&2; exit 1; }

# 2. Link shim: the wheels ship only versioned sonames (libcublas.so.13, ...), but cudarc's
#    dynamic-linking emits -lcublas etc., which needs unversioned libX.so. And libcuda (the
#    driver) is in no wheel: build a stub with the right SONAME (libcuda.so.1) that defines
#    every cu* driver function cudarc 0.19 declares. At run time the real driver is used.
mkdir -p "$SHIM"
for l in cublas cublasLt nvrtc curand cudart; do
  f="$(ls "$CU"/lib/lib$l.so.* 2>/dev/null | grep -v alt | head -1)"
  [ -n "$f" ] || { echo "lib$l.so.* not found in $CU/lib" >&2; exit 1; }
  ln -sf "$f" "$SHIM/lib$l.so"
done
CUDARC="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* 2>/dev/null | sort -V | tail -1 || true)"
if [ ! -f "$SHIM/libcuda.so" ]; then
  if [ -z "$CUDARC" ]; then (cd "$REPO" && cargo fetch --locked); CUDARC="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* | sort -V | tail -1)"; fi
  grep -oE '\bfn cu[A-Za-z0-9_]+\(' "$CUDARC/src/driver/sys/mod.rs" | sed 's/^fn //; s/($//' | sort -u \
    | awk '{print "int " $1 "(void) { return 999; /* CUDA_ERROR_UNKNOWN: stub */ }"}' > "$SHIM/libcuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$SHIM/libcuda.so" "$SHIM/libcuda_stub.c"
fi

# 3. Environment for cudarc (version from `nvcc --version`, link search via CUDA_ROOT) and
#    candle-kernels / bindgen_cuda (nvcc on PATH, CUDA_COMPUTE_CAP so it does not call nvidia-smi).
export PATH="$CU/bin:$PATH"
export CUDA_ROOT="$CU" CUDA_PATH="$CU" CUDA_HOME="$CU"
export NVCC="$CU/bin/nvcc"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export LIBRARY_PATH="$SHIM:$CU/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$SHIM -L native=$CU/lib"
# build scripts that run nvcc need its own libs (nvvm) at run time
export LD_LIBRARY_PATH="$CU/lib:$CU/nvvm/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# 4. Build, or with `test` run the test suite against the same build.
cd "$REPO"
echo "nvcc: $(nvcc --version | tail -1); CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
CARGO_ARGS=(--release --locked --features cuda --target-dir "$REPO/target-cuda")
if [ "${1:-}" = test ]; then
  shift
  # Run time without a driver: libcuda.so.1 is the stub, whose every call fails.
  mkdir -p "$SHIM/run"
  ln -sf "$SHIM/libcuda.so" "$SHIM/run/libcuda.so.1"
  export LD_LIBRARY_PATH="$SHIM/run:$LD_LIBRARY_PATH"
  exec cargo test "${CARGO_ARGS[@]}" "$@"
fi
time cargo build "${CARGO_ARGS[@]}" "$@"
readelf -d "$REPO/target-cuda/release/logitlens" | grep NEEDED

# 5. The carried form: stripped, then xz-compressed into .gpu/ (ignored by git).
mkdir -p "$REPO/.gpu"
strip -o "$REPO/.gpu/logitlens" "$REPO/target-cuda/release/logitlens"
xz -T0 -6 -f "$REPO/.gpu/logitlens"
echo "carry: .gpu/logitlens.xz, $(stat -c %s "$REPO/.gpu/logitlens.xz") bytes" \
  "(stripped: $(xz -l --robot "$REPO/.gpu/logitlens.xz" | awk '/^totals/ {print $5}') bytes)" >&2
