"""Builds a full-size Phi-1.5-shaped checkpoint with random weights, stored like the Hub's.

The real microsoft/phi-1_5 config.json values, float16 safetensors (2.84 GB), and the real
phi-1_5 tokenizer.json (derived by make_phi_tokenizer.py). Used for timing and memory
figures only; never committed. Usage: python make_phi_fullsize.py OUT_DIR
"""

import json
import os
import subprocess
import sys

import torch
from transformers import PhiConfig, PhiForCausalLM

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


def main(out):
    os.makedirs(out, exist_ok=True)
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        torch.manual_seed(0)
        model = PhiForCausalLM(PhiConfig(**PHI_1_5)).half()
        model.save_pretrained(out, safe_serialization=True, max_shard_size="10GB")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(PHI_1_5, f, indent=2)
    tok = os.path.join(out, "tokenizer.json")
    if not os.path.exists(tok):
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, os.path.join(here, "make_phi_tokenizer.py"), tok], check=True)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1])
