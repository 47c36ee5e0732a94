"""Builds a full-size Phi-1.5-shaped checkpoint with random float16 weights, with torch alone.

    python3 bench/gpu/make_checkpoint.py OUT_DIR [LAYERS]

For bench/gpu_check.sh on a GPU machine whose Python has torch but neither transformers nor
safetensors: the safetensors file is written by hand (8-byte header length, JSON header,
raw little-endian tensors). The config is microsoft/phi-1_5's (24 layers, hidden 2048, 32
heads, MLP 8192, partial rotary 0.5, vocab 51,200, untied head with bias) with the tokenizer
of tests/fixtures/phi-tiny (ids < 1,280) and its <|endoftext|> (1256) as BOS. Weights are
N(0, 0.02) (norm weights 1 + N(0, 0.02), biases N(0, 0.02)), seed 0, drawn on the GPU when
there is one. 1.42 B parameters, 2.84 GB. Skips the work when OUT_DIR/model.safetensors
exists. Timing and parity only; never committed.
"""

import ctypes
import json
import os
import shutil
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "phi-tiny", "tokenizer.json")

CONFIG = {
    "architectures": ["PhiForCausalLM"],
    "model_type": "phi",
    "hidden_act": "gelu_new",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048,
    "num_attention_heads": 32,
    "num_hidden_layers": 24,
    "partial_rotary_factor": 0.5,
    "qk_layernorm": False,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "vocab_size": 51200,
    "bos_token_id": 1256,
    "eos_token_id": 1256,
}


def shapes(c):
    d, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    yield "model.embed_tokens.weight", (v, d), "w"
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (d,), "norm"
        yield p + "input_layernorm.bias", (d,), "b"
        for proj in ("q_proj", "k_proj", "v_proj", "dense"):
            yield p + f"self_attn.{proj}.weight", (d, d), "w"
            yield p + f"self_attn.{proj}.bias", (d,), "b"
        yield p + "mlp.fc1.weight", (f, d), "w"
        yield p + "mlp.fc1.bias", (f,), "b"
        yield p + "mlp.fc2.weight", (d, f), "w"
        yield p + "mlp.fc2.bias", (d,), "b"
    yield "model.final_layernorm.weight", (d,), "norm"
    yield "model.final_layernorm.bias", (d,), "b"
    yield "lm_head.weight", (v, d), "w"
    yield "lm_head.bias", (v,), "b"


def main(out, layers=None):
    if layers is not None:  # a quick local check of the writer
        CONFIG["num_hidden_layers"] = layers
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    shutil.copyfile(TOKENIZER, os.path.join(out, "tokenizer.json"))
    path = os.path.join(out, "model.safetensors")
    if os.path.exists(path):
        print(path)
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=device).manual_seed(0)
    entries = list(shapes(CONFIG))
    header, offset = {}, 0
    for name, shape, _ in entries:
        n = 2
        for s in shape:
            n *= s
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text.encode())
        for name, shape, kind in entries:
            t = torch.randn(shape, generator=gen, device=device) * 0.02
            if kind == "norm":
                t += 1.0
            t = t.half().cpu().contiguous()
            # Raw bytes without numpy (the machine's Python may lack it).
            f.write(ctypes.string_at(t.data_ptr(), t.numel() * 2))
    os.replace(tmp, path)
    print(path)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
