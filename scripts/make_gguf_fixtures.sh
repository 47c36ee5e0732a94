#!/usr/bin/env bash
# Converts tiny Hugging Face fixtures to GGUF files with llama.cpp's own converter, as shipped
# in the llama-cpp-python 0.3.36 source distribution on PyPI:
# - every fixture below to f32, tests/fixtures/<name>/model-f32.gguf;
# - the new architectures' fixtures also to Q8_0 (the converter's `--outtype q8_0`),
#   model-q8_0.gguf, plus model-q8_0-dequant.gguf: the same file with every tensor
#   dequantised to f32 by gguf-py (numpy, independent of candle's kernels), the reference
#   tests/gguf_arch.rs compares the quantised file with.
#
#   PYTHON=~/.cache/logitlens/venv/bin/python scripts/make_gguf_fixtures.sh
#
# scripts/fixtures.sh runs it after scripts/make_fixtures.py, which recreates the
# directories.
#
# The venv needs torch, transformers and numpy (scripts/venv.sh's); sentencepiece 0.2.3,
# which the converter imports even for BPE models, is installed if missing. Adjustments, all
# outside the converter's tensor and hyperparameter code:
# - The tiny fixture tokenizer (byte-level BPE, GPT-2's split) is not one llama.cpp knows by
#   hash, so get_vocab_base_pre is overridden: "qwen2" for the Qwen fixtures, "gpt-2" for the
#   others; the tests check that the tokenizer logitlens rebuilds from that metadata gives
#   the fixture tokenizer.json's ids on the golden prompts.
# - Gemma, Gemma 2 and Phi-3 read a SentencePiece tokenizer.model, which the fixtures lack
#   (their tokenizer is tokenizer.json's BPE); set_vocab is the base class's GPT-2 path there,
#   as the converter's own Gemma 3 class does when tokenizer.model is absent.
# - transformers 5 drops legacy keys from the config dict (e.g. rope_theta, gpt_neox's
#   rotary_pct); config.json's own keys are merged back into the hyperparameters the
#   converter reads, and a gpt_neox config that only has transformers 5's
#   rope_parameters.partial_rotary_factor gets it as rotary_pct.
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

# convert NAME PRE OUTTYPE: tests/fixtures/NAME → tests/fixtures/NAME/model-OUTTYPE.gguf.
convert() {
    (cd "$LCPP" && PYTHONPATH=gguf-py:. "$PYTHON" - "$ROOT/tests/fixtures/$1" "$2" "$3" <<'PY'
import json, sys
from pathlib import Path
import convert_hf_to_gguf as convert
from conversion import base

model_dir, pre, outtype = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
own = json.loads((model_dir / "config.json").read_text())
load_hparams = base.ModelBase.load_hparams

def merged_hparams(dir_model, is_mistral_format):
    hparams = load_hparams(dir_model, is_mistral_format)
    for key, value in own.items():
        hparams.setdefault(key, value)
    # transformers 5 spells gpt_neox's rotary_pct as rope_parameters' partial_rotary_factor.
    fraction = (own.get("rope_parameters") or {}).get("partial_rotary_factor")
    if own.get("model_type") == "gpt_neox" and fraction is not None:
        hparams.setdefault("rotary_pct", fraction)
    return hparams

base.ModelBase.load_hparams = staticmethod(merged_hparams)
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
if not (model_dir / "tokenizer.model").exists():
    from conversion import gemma, phi
    for cls in (gemma.GemmaModel, gemma.Gemma2Model, phi.Phi3MiniModel):
        cls.set_vocab = base.TextModel._set_vocab_gpt2
sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outtype", outtype,
            "--outfile", str(model_dir / f"model-{outtype}.gguf")]
convert.main()
PY
    )
}

# dequantise DIR: DIR/model-q8_0.gguf → DIR/model-q8_0-dequant.gguf, every tensor f32.
dequantise() {
    (cd "$LCPP" && PYTHONPATH=gguf-py "$PYTHON" - "$ROOT/tests/fixtures/$1" <<'PY'
import sys
from pathlib import Path
import numpy as np
import gguf
from gguf.quants import dequantize

model_dir = Path(sys.argv[1])
reader = gguf.GGUFReader(model_dir / "model-q8_0.gguf")
arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
writer = gguf.GGUFWriter(model_dir / "model-q8_0-dequant.gguf", arch)
for field in reader.fields.values():
    if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
        continue
    kind = field.types[0]
    sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
    writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
for t in reader.tensors:
    # t.shape is ggml's order (innermost first); numpy's is the reverse.
    data = dequantize(t.data, t.tensor_type).astype(np.float32)
    writer.add_tensor(t.name, data.reshape(tuple(reversed([int(d) for d in t.shape]))))
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
PY
    )
}

for name in qwen2-tiny qwen3-tiny; do
    convert "$name" qwen2 f32
done
for name in gemma-tiny gemma2-tiny gemma3-tiny phi3-tiny phi3-longrope-tiny gpt-neox-tiny gpt-neox-seq-tiny; do
    convert "$name" gpt-2 f32
done
for name in gemma-tiny gemma2-tiny gemma3-tiny phi3-tiny gpt-neox-tiny; do
    convert "$name" gpt-2 q8_0
    dequantise "$name"
done
