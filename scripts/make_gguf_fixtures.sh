#!/usr/bin/env bash
# Converts the tiny Hugging Face fixtures qwen2-tiny and qwen3-tiny to f32 GGUF files
# (tests/fixtures/<name>/model-f32.gguf) with llama.cpp's own converter, as shipped in the
# llama-cpp-python 0.3.36 source distribution on PyPI.
#
#   PYTHON=~/.cache/logitlens/venv/bin/python scripts/make_gguf_fixtures.sh
#
# scripts/fixtures.sh runs it after scripts/make_fixtures.py, which recreates the
# directories.
#
# The venv needs torch, transformers and numpy (scripts/venv.sh's); sentencepiece 0.2.3,
# which the converter imports even for BPE models, is installed if missing. Two adjustments, both outside
# the converter's tensor code:
# - The tiny fixture tokenizer is not one llama.cpp knows by hash, so get_vocab_base_pre is
#   overridden to "qwen2"; tests/gguf_qwen.rs checks that the tokenizer logitlens rebuilds
#   from that metadata gives the fixture tokenizer.json's ids on the (digit-free) golden prompts.
# - transformers 5 drops legacy keys from the config dict (e.g. rope_theta); config.json's own
#   keys are merged back into the hyperparameters the converter reads.
set -euo pipefail
PYTHON=${PYTHON:-$HOME/.cache/logitlens/venv/bin/python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$PYTHON" -c "import sentencepiece" 2>/dev/null || "$PYTHON" -m pip install -q sentencepiece==0.2.3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m pip download -q --no-deps llama-cpp-python==0.3.36 -d "$WORK"
tar xzf "$WORK"/llama_cpp_python-0.3.36.tar.gz -C "$WORK" \
    llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py \
    llama_cpp_python-0.3.36/vendor/llama.cpp/conversion \
    llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py
LCPP="$WORK/llama_cpp_python-0.3.36/vendor/llama.cpp"
for name in qwen2-tiny qwen3-tiny; do
    (cd "$LCPP" && PYTHONPATH=gguf-py:. "$PYTHON" - "$ROOT/tests/fixtures/$name" <<'PY'
import json, sys
from pathlib import Path
import convert_hf_to_gguf as convert
from conversion import base

model_dir = Path(sys.argv[1])
own = json.loads((model_dir / "config.json").read_text())
load_hparams = base.ModelBase.load_hparams

def merged_hparams(dir_model, is_mistral_format):
    hparams = load_hparams(dir_model, is_mistral_format)
    for key, value in own.items():
        hparams.setdefault(key, value)
    return hparams

base.ModelBase.load_hparams = staticmethod(merged_hparams)
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outtype", "f32",
            "--outfile", str(model_dir / "model-f32.gguf")]
convert.main()
PY
    )
done
