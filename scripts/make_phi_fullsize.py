"""Builds a full-size Phi-1.5-shaped checkpoint with random weights, stored like the Hub's.

The real microsoft/phi-1_5 config.json values, float16 safetensors (2.84 GB), and the real
phi-1_5 tokenizer.json (derived by make_phi_tokenizer.py), plus the files the Hub ships
next to it for the slow / class-based loading path (vocab.json, merges.txt, added_tokens.json,
special_tokens_map.json, tokenizer_config.json with tokenizer_class CodeGenTokenizer), all
derived from that tokenizer.json. Used for timing and memory figures only (bench/run.sh);
never committed.

The embedding and lm_head have 51,200 rows but the tokenizer only 50,295 tokens. A trained
Phi-1.5 never predicts the ids without a string; random weights would, about once in 57
argmaxes, and the tutorial's code then crashes on the None that convert_ids_to_tokens returns.
So lm_head.bias is set to -10000 for ids 50295..51199 (patched in place, 1.8 KB, into an
existing checkpoint that lacks it).

Idempotent and cheap when everything exists (torch is imported only to create the weights):
missing files are created, config.json rewritten only if it differs.
Usage: python make_phi_fullsize.py OUT_DIR
"""

import json
import os
import struct
import subprocess
import sys

PHI_1_5 = {
    "architectures": ["PhiForCausalLM"],
    "model_type": "phi",
    "attention_dropout": 0.0,
    "bos_token_id": None,
    "eos_token_id": None,
    "embd_pdrop": 0.0,
    "hidden_act": "gelu_new",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048,
    "num_attention_heads": 32,
    "num_hidden_layers": 24,
    "num_key_value_heads": None,
    "partial_rotary_factor": 0.5,
    "qk_layernorm": False,
    "resid_pdrop": 0.0,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "vocab_size": 51200,
}


ENDOFTEXT = "<|endoftext|>"


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def write_tokenizer_sidecars(out):
    """Writes the Hub's other tokenizer files for phi-1_5, derived from out/tokenizer.json.

    AutoTokenizer.from_pretrained(dir, use_fast=False) (as the tutorial calls it) resolves
    the class from tokenizer_config.json; the slow CodeGenTokenizer reads vocab.json and
    merges.txt (GPT-2 format), with the added whitespace tokens from added_tokens.json.
    Existing files are left alone.
    """
    with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    model = tok["model"]
    added = tok["added_tokens"]

    path = os.path.join(out, "vocab.json")
    if not os.path.exists(path):
        # GPT-2's vocab.json includes <|endoftext|> (an added token in tokenizer.json).
        vocab = dict(model["vocab"])
        for a in added:
            if a["content"] == ENDOFTEXT:
                vocab[ENDOFTEXT] = a["id"]
        write_json(path, vocab)

    path = os.path.join(out, "merges.txt")
    if not os.path.exists(path):
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.write("\n".join(merges))
            f.write("\n")
        os.replace(tmp, path)

    path = os.path.join(out, "added_tokens.json")
    if not os.path.exists(path):
        write_json(path, {a["content"]: a["id"] for a in added if a["content"] != ENDOFTEXT})

    path = os.path.join(out, "special_tokens_map.json")
    if not os.path.exists(path):
        write_json(path, {"bos_token": ENDOFTEXT, "eos_token": ENDOFTEXT, "unk_token": ENDOFTEXT})

    path = os.path.join(out, "tokenizer_config.json")
    if not os.path.exists(path):
        decoder = {
            str(a["id"]): {
                "content": a["content"],
                "lstrip": a["lstrip"],
                "normalized": a["normalized"],
                "rstrip": a["rstrip"],
                "single_word": a["single_word"],
                "special": a["special"],
            }
            for a in added
        }
        write_json(
            path,
            {
                "add_prefix_space": False,
                "added_tokens_decoder": decoder,
                "bos_token": ENDOFTEXT,
                "clean_up_tokenization_spaces": True,
                "eos_token": ENDOFTEXT,
                "model_max_length": 2048,
                "tokenizer_class": "CodeGenTokenizer",
                "unk_token": ENDOFTEXT,
            },
        )


TOKENIZER_SIZE = 50295  # ids >= this have no string in phi-1_5's tokenizer
UNUSED_BIAS = -10000.0


def mask_unused_vocab(path):
    """Sets lm_head.bias[TOKENIZER_SIZE:] to UNUSED_BIAS in the float16 safetensors, in place."""
    import numpy as np

    with open(path, "r+b") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        info = header["lm_head.bias"]
        assert info["dtype"] == "F16" and info["shape"] == [PHI_1_5["vocab_size"]], info
        start = 8 + header_len + info["data_offsets"][0]
        f.seek(start + 2 * TOKENIZER_SIZE)
        n = PHI_1_5["vocab_size"] - TOKENIZER_SIZE
        want = np.full(n, UNUSED_BIAS, dtype="<f2").tobytes()
        if f.read(2 * n) != want:
            f.seek(start + 2 * TOKENIZER_SIZE)
            f.write(want)
            print(f"{path}: lm_head.bias[{TOKENIZER_SIZE}:] set to {UNUSED_BIAS}", file=sys.stderr)


def main(out):
    os.makedirs(out, exist_ok=True)
    weights = os.path.join(out, "model.safetensors")
    if not os.path.exists(weights):
        import torch
        from transformers import PhiConfig, PhiForCausalLM

        torch.manual_seed(0)
        model = PhiForCausalLM(PhiConfig(**PHI_1_5)).half()
        model.save_pretrained(out, safe_serialization=True, max_shard_size="10GB")
    mask_unused_vocab(weights)
    config = os.path.join(out, "config.json")
    try:
        with open(config) as f:
            same = json.load(f) == PHI_1_5
    except (OSError, ValueError):
        same = False
    if not same:
        write_json(config, PHI_1_5)
    tok = os.path.join(out, "tokenizer.json")
    if not os.path.exists(tok):
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, os.path.join(here, "make_phi_tokenizer.py"), tok], check=True)
    write_tokenizer_sidecars(out)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1])
