"""Builds a random float16 checkpoint of about 400M parameters for one block type.

    python bench/make_random_checkpoint.py NAME OUT_DIR

NAME is one of: llama, gpt_neox, gemma2, olmo2, phi3. The shapes (CONFIGS below) are chosen so
every model has about 0.36-0.41 B parameters: llama is the reference (hidden 1024, 24 layers,
16 heads, intermediate 2816), gpt_neox has Pythia-410m's real shape, and the others use the
same hidden size, depth and heads (gemma2's intermediate is larger because its head is tied).
All use vocab 50304 and the tokenizer of tests/fixtures/phi-tiny (ids 0..1266, all < 50304;
checked). Weights come from transformers' own init (`from_config`, seed 0), stored as float16
safetensors with `save_pretrained`. Used by bench/arch.sh for timing only; never committed.
Skips the work when OUT_DIR/config.json and OUT_DIR/model.safetensors exist.
"""

import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "phi-tiny", "tokenizer.json")
VOCAB = 50304
BOS = 1256  # the phi-tiny tokenizer's <|endoftext|>

COMMON = dict(vocab_size=VOCAB, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
              max_position_embeddings=2048, bos_token_id=BOS, eos_token_id=BOS)

CONFIGS = {
    "llama": dict(COMMON, model_type="llama", intermediate_size=2816, num_key_value_heads=16,
                  tie_word_embeddings=False),
    # EleutherAI/pythia-410m's config (parallel residual, rotary_pct 0.25, untied embed_out).
    "gpt_neox": dict(COMMON, model_type="gpt_neox", intermediate_size=4096, rotary_pct=0.25,
                     rotary_emb_base=10000, use_parallel_residual=True, hidden_act="gelu",
                     layer_norm_eps=1e-5, tie_word_embeddings=False),
    # Sandwich norms, attention and final-logit soft-caps, alternating sliding windows.
    "gemma2": dict(COMMON, model_type="gemma2", intermediate_size=3584, num_key_value_heads=8,
                   head_dim=64, query_pre_attn_scalar=64, sliding_window=4096,
                   attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                   tie_word_embeddings=True, pad_token_id=0),
    # Post-norm blocks with q/k norm over the full projections.
    "olmo2": dict(COMMON, model_type="olmo2", intermediate_size=2816, num_key_value_heads=16,
                  tie_word_embeddings=False, pad_token_id=1),
    # Fused qkv_proj and gate_up_proj.
    "phi3": dict(COMMON, model_type="phi3", intermediate_size=2816, num_key_value_heads=16,
                 tie_word_embeddings=False, pad_token_id=BOS + 1),
}


def check_tokenizer():
    with open(TOKENIZER) as f:
        tok = json.load(f)
    ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in tok.get("added_tokens", [])]
    assert max(ids) < VOCAB, f"tokenizer id {max(ids)} does not fit vocab {VOCAB}"


def main(name, out_dir):
    check_tokenizer()
    if os.path.exists(os.path.join(out_dir, "config.json")) and \
            os.path.exists(os.path.join(out_dir, "model.safetensors")):
        print(f"{name}: exists at {out_dir}", file=sys.stderr)
        return
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(CONFIGS[name])
    model_type = spec.pop("model_type")
    config = AutoConfig.for_model(model_type, **spec)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = model.to(torch.float16).eval()
    params = sum(p.numel() for p in model.parameters())
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    shutil.copyfile(TOKENIZER, os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "params.txt"), "w") as f:
        f.write(f"{params}\n")
    print(f"{name}: {params / 1e6:.1f}M parameters at {out_dir}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in CONFIGS:
        sys.exit(f"usage: make_random_checkpoint.py {{{','.join(CONFIGS)}}} OUT_DIR")
    main(sys.argv[1], sys.argv[2])
