# Sourced by scripts/fixtures.sh and bench/run.sh: the pinned Python venv outside the repo.
#
#   source scripts/venv.sh
#   ensure_venv [EXTRA_PIN...]     # sets PY to the venv's python
#
# Creates a venv at ${LOGITLENS_VENV:-$HOME/.cache/logitlens/venv} if missing and installs the
# pinned versions below (plus any extra pins) into it; skipped when every wanted pin is already
# recorded in the venv's stamp file. torch comes from PyPI (the CUDA build, several GB; it runs
# on CPU). To use a CPU-only wheel index instead, set LOGITLENS_TORCH_INDEX_URL (e.g.
# https://download.pytorch.org/whl/cpu).

VENV="${LOGITLENS_VENV:-$HOME/.cache/logitlens/venv}"

LOGITLENS_PINS=(
  "torch==2.15.0"
  "transformers==5.24.0"
  "tokenizers==0.23.3"
  "huggingface_hub==2.4.0"
  "safetensors==0.8.0"
  "numpy==2.4.6"
  "gguf==0.19.0"
  "accelerate==1.15.0"
)
# openai-whisper only provides whisper/assets/gpt2.tiktoken (GPT-2's BPE ranks); its own
# dependencies (numba, ...) are not needed, so it is installed with --no-deps.
LOGITLENS_NODEPS_PINS=("openai-whisper==20250625")

ensure_venv() {
  local python="${PYTHON:-python3}"
  local extra=("$@")
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv at $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.logitlens-pins"
  local want missing
  want="$(printf '%s\n' "${LOGITLENS_PINS[@]}" "${LOGITLENS_NODEPS_PINS[@]}" "${extra[@]}")"
  # Pins wanted now but not recorded as installed (the stamp is a set of lines).
  missing="$(printf '%s\n' "$want" | grep -vxF -f <(cat "$stamp" 2>/dev/null || true) || true)"
  if [ -n "$missing" ]; then
    echo "installing pinned packages into $VENV" >&2
    local torch_args=()
    if [ -n "${LOGITLENS_TORCH_INDEX_URL:-}" ]; then
      torch_args=(--extra-index-url "$LOGITLENS_TORCH_INDEX_URL")
    fi
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${torch_args[@]}" \
      "${LOGITLENS_PINS[@]}" "${extra[@]}"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps \
      "${LOGITLENS_NODEPS_PINS[@]}"
    # Keep what other callers installed (their extra pins) in the stamp as well.
    { cat "$stamp" 2>/dev/null || true; printf '%s\n' "$want"; } | sort -u > "$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
  fi
  PY="$VENV/bin/python"
}
