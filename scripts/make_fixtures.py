#!/usr/bin/env python3
"""Generate the tiny random-weight test fixtures under tests/fixtures/ and their golden outputs.

Run through scripts/fixtures.sh (which creates the pinned venv), or directly with a Python that
has torch, transformers, tokenizers, safetensors, numpy and openai-whisper (--no-deps):

    python scripts/make_fixtures.py [OUT_DIR [NAME...]]  # default: tests/fixtures next to scripts/
    python scripts/make_fixtures.py --search-seeds N [NAME...]

NAMEs limit the run to those fixtures (the others are left as they are on disk); gemma3-mm-tiny
is one of them (it is made from gemma3-tiny's text weights).

Everything is deterministic: fixed seeds, CPU, float32, eager attention. Each fixture directory
gets config.json, tokenizer.json, model.safetensors and golden.json (schema in
tests/fixtures/README.md).
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_phi_tokenizer  # noqa: E402

import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Olmo2Config,
    Olmo2ForCausalLM,
    PhiConfig,
    PhiForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    SiglipVisionConfig,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
torch.use_deterministic_algorithms(True)

# ---------------------------------------------------------------- tokenizer (truncated GPT-2)
# GPT-2's 256 byte tokens and first 1000 merges (ids 0..1255), <|endoftext|> = 1256, then the
# whitespace runs (1257..1266). With so few merges most words split: the fox prompt is 16 tokens
# ("The", " qu", "ick", " b", "ro", "wn", ...), not phi-1_5's 8. EXTRA_WORDS would add, in GPT-2
# rank order, the later merges that full GPT-2 BPE needs for those words (e.g. the 9 for the fox
# prompt and " dog") so they encode as whole tokens; the committed fixtures do not use it.
NUM_MERGES = 1000
EXTRA_WORDS = []
SPACE_RUNS = range(8, 1, -1)      # runs of 8..2 spaces (phi-1_5: 31..2)
TAB_RUNS = range(4, 1, -1)        # runs of 4..2 tabs  (phi-1_5: 9..2)

# ---------------------------------------------------------------- model shapes
HIDDEN, HEADS, LAYERS, INTER, VOCAB, MAX_POS = 32, 4, 3, 64, 1280, 64

TOKENIZER = make_phi_tokenizer.build_tokenizer(NUM_MERGES, SPACE_RUNS, TAB_RUNS,
                                               extra_words=EXTRA_WORDS)
EOT_ID = TOKENIZER["added_tokens"][0]["id"]  # 1256, <|endoftext|>
TOKENIZER_SIZE = len(TOKENIZER["model"]["vocab"]) + len(TOKENIZER["added_tokens"])  # 1267
assert TOKENIZER["added_tokens"][0]["content"] == "<|endoftext|>"
assert EOT_ID == len(TOKENIZER["model"]["vocab"])
assert VOCAB > TOKENIZER_SIZE

FOX = "The quick brown fox jumps over the lazy"
CASES = [
    ("fox", FOX, False),
    ("repeat", " the" * 12, False),
    ("long", "When the sun went down over the old harbour, the fishermen pulled their boats "
             "onto the sand and told each other stories.", False),
    ("whitespace", "def f(x):\n    return x\t\t# done\n        pass", False),
    ("fox_bos", FOX, True),
]

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    intermediate_size=INTER,
    num_hidden_layers=LAYERS,
    num_attention_heads=HEADS,
    max_position_embeddings=MAX_POS,
    bos_token_id=EOT_ID,
    eos_token_id=EOT_ID,
)


def fixture_specs():
    """name -> (model class, config, seed, legacy keys to mirror at the top level of config.json).

    The seeds were picked with `make_fixtures.py --search-seeds 60` (the k-th fixture tries
    1001 + k .. 1060 + k), taking the one whose smallest top1 - top2 logit margin over every lens
    row of every case is largest, so that no near-tie can flip an argmax under another float32
    summation order. main() asserts the margin is at least MIN_MARGIN.

    transformers 5 writes RoPE settings only inside "rope_parameters". Checkpoints on the Hub
    (phi-1_5, Llama 3.x, SmolLM2, ...) carry the older top-level "rope_theta",
    "partial_rotary_factor" and "rope_scaling" keys. The fixtures marked legacy=True get those
    keys added back (same values; transformers reads both, which main() checks by reloading);
    qwen2-tiny keeps the pure transformers-5 form so that both layouts are covered.
    """
    return {
        "phi-tiny": (PhiForCausalLM, PhiConfig(
            **COMMON, hidden_act="gelu_new", layer_norm_eps=1e-5, qk_layernorm=False,
            tie_word_embeddings=False, num_key_value_heads=HEADS,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.5},
        ), 1014, True),
        "phi-tiny-qk": (PhiForCausalLM, PhiConfig(
            **COMMON, hidden_act="gelu_new", layer_norm_eps=1e-5, qk_layernorm=True,
            tie_word_embeddings=False, num_key_value_heads=2,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.75},
        ), 1048, True),
        "llama-tiny": (LlamaForCausalLM, LlamaConfig(
            **COMMON, num_key_value_heads=2, hidden_act="silu", rms_norm_eps=1e-5,
            tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 16},
        ), 1018, True),
        "qwen2-tiny": (Qwen2ForCausalLM, Qwen2Config(
            **COMMON, num_key_value_heads=2, hidden_act="silu", rms_norm_eps=1e-5,
            tie_word_embeddings=False, use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ), 1031, False),
        "gpt2-tiny": (GPT2LMHeadModel, GPT2Config(
            vocab_size=VOCAB, n_embd=HIDDEN, n_head=HEADS, n_layer=LAYERS, n_inner=INTER,
            n_positions=MAX_POS, activation_function="gelu_new", layer_norm_epsilon=1e-5,
            tie_word_embeddings=True, bos_token_id=EOT_ID, eos_token_id=EOT_ID,
        ), 1049, False),
        # GQA, head_dim 16 != hidden / heads (8), per-head q/k norms, tied head, and a
        # 4-token sliding window in layers 1.. (max_window_layers 1), shorter than every prompt.
        "qwen3-tiny": (Qwen3ForCausalLM, Qwen3Config(
            **COMMON, num_key_value_heads=2, head_dim=16, hidden_act="silu", rms_norm_eps=1e-6,
            tie_word_embeddings=True, attention_bias=False, use_sliding_window=True,
            sliding_window=4, max_window_layers=1,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ), 1013, True),
        # Post-norm blocks, q/k norms over the whole projections, GQA, untied head.
        # (qwen3-tiny, mistral-tiny: best of --search-seeds 12; olmo2-tiny: of 45, since
        # none of the first 12 cleared MIN_MARGIN.)
        "olmo2-tiny": (Olmo2ForCausalLM, Olmo2Config(
            **COMMON, num_key_value_heads=2, hidden_act="silu", rms_norm_eps=1e-5,
            tie_word_embeddings=False, attention_bias=False,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ), 1031, True),
        # A 4-token sliding window in every layer, shorter than every prompt; GQA, untied.
        "mistral-tiny": (MistralForCausalLM, MistralConfig(
            **COMMON, num_key_value_heads=2, hidden_act="silu", rms_norm_eps=1e-5,
            tie_word_embeddings=False, sliding_window=4,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ), 1009, True),
        # Gemma: explicit head_dim (16, not hidden/heads = 8), GQA, tied head.
        "gemma-tiny": (GemmaForCausalLM, GemmaConfig(
            **COMMON, num_key_value_heads=2, head_dim=16, hidden_act="gelu_pytorch_tanh",
            rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ), GEMMA_SEEDS["gemma-tiny"], False),
        # Gemma 2: sliding window 4 (< every prompt) on the default alternate layers, small caps
        # so that both soft-caps bite, query_pre_attn_scalar != head_dim.
        "gemma2-tiny": (Gemma2ForCausalLM, Gemma2Config(
            **COMMON, num_key_value_heads=2, head_dim=16, hidden_activation="gelu_pytorch_tanh",
            rms_norm_eps=1e-6, tie_word_embeddings=True, query_pre_attn_scalar=24,
            sliding_window=4, attn_logit_softcapping=3.0, final_logit_softcapping=15.0,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ), GEMMA_SEEDS["gemma2-tiny"], False),
        # Gemma 3: q/k norms, sliding layers 0 and 2 (pattern 2) with their own RoPE base,
        # linear-scaled global RoPE as in gemma-3-4b.
        "gemma3-tiny": (Gemma3ForCausalLM, Gemma3TextConfig(
            **COMMON, num_key_value_heads=2, head_dim=16, hidden_activation="gelu_pytorch_tanh",
            rms_norm_eps=1e-6, tie_word_embeddings=True, query_pre_attn_scalar=24,
            sliding_window=4, sliding_window_pattern=2,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6}},
        ), GEMMA_SEEDS["gemma3-tiny"], False),
        # Pythia's layout: rotary_pct 0.25, two LayerNorms feeding parallel branches. Its
        # config.json is written as Pythia's (rotary_pct, rotary_emb_base, no rope_parameters).
        "gpt-neox-tiny": (GPTNeoXForCausalLM, GPTNeoXConfig(
            **COMMON, hidden_act="gelu", layer_norm_eps=1e-5, use_parallel_residual=True,
            tie_word_embeddings=False, attention_bias=True,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.25},
        ), GPT_NEOX_SEED, True),
        # The sequential residual, in transformers 5's rope_parameters form.
        "gpt-neox-seq-tiny": (GPTNeoXForCausalLM, GPTNeoXConfig(
            **COMMON, hidden_act="gelu", layer_norm_eps=1e-5, use_parallel_residual=False,
            tie_word_embeddings=False, attention_bias=True,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.5},
        ), GPT_NEOX_SEQ_SEED, False),
        # GQA, fused qkv_proj and gate_up_proj, a sliding window shorter than the long prompt,
        # partial rotary (as Phi-4-mini; Phi-3 itself rotates whole heads).
        "phi3-tiny": (Phi3ForCausalLM, Phi3Config(
            **COMMON, num_key_value_heads=2, hidden_act="silu", rms_norm_eps=1e-5,
            tie_word_embeddings=False, sliding_window=8, pad_token_id=None,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.5},
        ), PHI3_SEED, True),
        # LongRoPE as the 128k variants have it (rope_scaling "longrope", whole-head rotary,
        # original context 16 of 64): fox (16 tokens) rotates with the short factors, the
        # longer prompts with the long ones, all with cos/sin scaled by sqrt(1.5).
        "phi3-longrope-tiny": (Phi3ForCausalLM, Phi3Config(
            **COMMON, num_key_value_heads=2, hidden_act="silu", rms_norm_eps=1e-5,
            tie_word_embeddings=False, pad_token_id=None, original_max_position_embeddings=16,
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                             "short_factor": [1.0, 1.3, 2.1, 3.7],
                             "long_factor": [1.2, 2.9, 6.5, 11.0],
                             "original_max_position_embeddings": 16},
        ), PHI3_LONGROPE_SEED, True),
    }


MULTIMODAL = "gemma3-mm-tiny"


def make_gemma3_multimodal(out_root):
    """gemma3-mm-tiny: gemma3-tiny's text model inside a Gemma3ForConditionalGeneration with a
    tiny seeded vision tower, saved as transformers writes it (language_model.model.*,
    vision_tower.*, multi_modal_projector.*). No golden.json: HF's text-only forward of it must
    reproduce gemma3-tiny's golden exactly, which this checks, so the tests compare against
    gemma3-tiny."""
    base = os.path.join(out_root, "gemma3-tiny")
    text = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32,
                                                attn_implementation="eager").eval()
    with open(os.path.join(base, "config.json")) as f:
        text_config = json.load(f)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, image_size=28, patch_size=14)
    config = Gemma3Config(text_config=text_config, vision_config=vision.to_dict(),
                          mm_tokens_per_image=4, image_token_index=1270, boi_token_index=1271,
                          eoi_token_index=1272)
    torch.manual_seed(GEMMA_SEEDS[MULTIMODAL])
    model = Gemma3ForConditionalGeneration(config).to(torch.float32).eval()
    text_weights = {k[len("model."):]: v for k, v in text.state_dict().items()
                    if k.startswith("model.")}
    model.model.language_model.load_state_dict(text_weights, strict=True)
    d = os.path.join(out_root, MULTIMODAL)
    if os.path.isdir(d):
        shutil.rmtree(d)
    model.save_pretrained(d)
    os.remove(os.path.join(d, "generation_config.json"))
    os.chmod(os.path.join(d, "model.safetensors"), 0o644)
    shutil.copy(os.path.join(base, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
    re = Gemma3ForConditionalGeneration.from_pretrained(d, dtype=torch.float32,
                                                        attn_implementation="eager").eval()
    with open(os.path.join(base, "golden.json")) as f:
        golden = json.load(f)
    for case in golden["cases"]:
        with torch.no_grad():
            out = re(input_ids=torch.tensor([case["ids"]]), output_hidden_states=True)
        for l, h in enumerate(out.hidden_states):
            ref = np.array(case["hidden_states"][l], np.float32)
            assert np.array_equal(h[0].numpy(), ref), f"{MULTIMODAL}/{case['name']}: hs[{l}]"
        ref = np.array(case["final_logits_last"], np.float32)
        assert np.array_equal(out.logits[0, -1].numpy(), ref), f"{MULTIMODAL}/{case['name']}"
    from safetensors import safe_open
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        prefixes = sorted({k.split(".")[0] for k in f.keys()})
    print(f"{MULTIMODAL}: tensor prefixes {prefixes}; HF text-only forward == gemma3-tiny golden")


GEMMA_SEEDS = {"gemma-tiny": 1006, "gemma2-tiny": 1005, "gemma3-tiny": 1003, MULTIMODAL: 1009}

PHI3_SEED = 1022
PHI3_LONGROPE_SEED = 1022  # phi3-tiny's weights (same shapes, same seed)
# First seeds from 1001 whose smallest lens margin clears MIN_MARGIN (PHI3_SEED too).
GPT_NEOX_SEED, GPT_NEOX_SEQ_SEED = 1007, 1023


# Fixtures stored in half precision, as Hub checkpoints are: name -> (base fixture, dtype).
# Their weights are the base's rounded to that dtype; the golden values come from the same
# rounded weights run in float32, which is what logitlens computes by default.
# Each has its own seed since rounding moves the margins: 2002 was the first of 2001.. whose
# smallest margin (1.1e-3) clears the tests' 1e-3, so every argmax is still compared.
HALF_FIXTURES = {"phi-tiny-f16": ("phi-tiny", torch.float16, 2002)}
HALF_MIN_MARGIN = 1e-3


# ---------------------------------------------------------------- weights
EMBED_STD = 0.3
LINEAR_STD = 0.2
BIAS_STD = 0.1
NORM_BIAS_STD = 0.2
MIN_MARGIN = 2e-3


def is_norm(module):
    return isinstance(module, nn.LayerNorm) or "Norm" in type(module).__name__


def is_linear(module):
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def reinit(model, seed):
    """Re-initialise every parameter from one seeded generator, in named_modules order.
    Linear weights N(0, 0.2); every bias N(0, 0.1) (norm biases N(0, 0.2)); embeddings
    N(0, 0.3); norm weights random sign * U(1.5, 2.5), far from 0 and from 1."""
    g = torch.Generator().manual_seed(seed)
    done = {}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if id(p) in done:  # tied (lm_head.weight is the embedding)
                continue
            shape = tuple(p.shape)
            if isinstance(module, nn.Embedding) and pname == "weight":
                v = torch.randn(shape, generator=g) * EMBED_STD
            elif is_norm(module) and pname == "weight":
                mag = 1.5 + torch.rand(shape, generator=g)
                sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
                v = mag * sign
            elif is_norm(module) and pname == "bias":
                v = torch.randn(shape, generator=g) * NORM_BIAS_STD
            elif is_linear(module) and pname == "weight":
                v = torch.randn(shape, generator=g) * LINEAR_STD
            elif is_linear(module) and pname == "bias":
                v = torch.randn(shape, generator=g) * BIAS_STD
            else:
                raise RuntimeError(f"no init rule for {full} ({type(module).__name__})")
            with torch.no_grad():
                p.copy_(v.to(p.dtype))
            done[id(p)] = full
    n_params = len({id(p) for p in model.parameters()})
    assert len(done) == n_params, (len(done), n_params)
    return done


def final_norm_module(model):
    mt = model.config.model_type
    if mt == "phi":
        return model.model.final_layernorm
    if mt in ("llama", "qwen2"):
        return model.model.norm
    if mt == "gpt2":
        return model.transformer.ln_f
    if mt in ("qwen3", "olmo2", "mistral", "gemma", "gemma2", "gemma3_text", "phi3"):
        return model.model.norm
    if mt == "gpt_neox":
        return model.gpt_neox.final_layer_norm
    raise ValueError(mt)


def lens_head(model):
    """The head as the lens applies it to every row: lm_head, then Gemma 2's final-logit
    soft-cap (tanh(x / cap) * cap, as Gemma2ForCausalLM) when the config has one."""
    cap = getattr(model.config, "final_logit_softcapping", None)
    head = model.get_output_embeddings()  # lm_head, or GPT-NeoX's embed_out
    if cap is None:
        return head
    return lambda h: torch.tanh(head(h) / cap) * cap


# ---------------------------------------------------------------- golden numbers
def f32(x):
    """Shortest decimal that round-trips to the same float32 (valid JSON number)."""
    x = np.float32(x)
    assert np.isfinite(x)
    s = str(x)
    assert np.float32(float(s)) == x, (s, x)
    return _Raw(s)


class _Raw(str):
    """A pre-formatted JSON number."""


def f32_list(a):
    if a.ndim == 1:
        return [f32(v) for v in a]
    return [f32_list(r) for r in a]


def stats_rows(logits32):
    """[T, V] float32 logits -> per position {id, prob, entropy, margin}, computed in float64."""
    x = logits32.detach().to(torch.float64)
    logp = torch.log_softmax(x, dim=-1)
    p = logp.exp()
    ent = -(p * logp).sum(-1)
    top2 = torch.topk(x, 2, dim=-1)
    ids = torch.argmax(x, dim=-1)
    assert torch.equal(ids, top2.indices[:, 0])
    out = []
    for t in range(x.shape[0]):
        i = int(ids[t])
        out.append({
            "id": i,
            "prob": float(p[t, i]),
            "entropy": float(ent[t]),
            "margin": float(top2.values[t, 0] - top2.values[t, 1]),
        })
    return out


@torch.no_grad()
def run_case(model, ids):
    input_ids = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=input_ids, output_hidden_states=True, use_cache=False)
    hs = [h[0] for h in out.hidden_states]
    L = model.config.num_hidden_layers
    assert len(hs) == L + 1, len(hs)
    logits = out.logits[0]
    norm = final_norm_module(model)
    head = lens_head(model)
    # HF's last hidden state is already final-normed: lm_head(hs[L]) is the model's logits.
    assert torch.allclose(head(hs[L]), logits, rtol=0, atol=1e-5)
    # and it is not the raw block output (normalising it again would change it)
    assert not torch.allclose(norm(hs[L]), hs[L], atol=1e-3)
    lens_norm, lens_raw = [], []
    for l in range(L + 1):
        normed = hs[l] if l == L else norm(hs[l])
        lens_norm.append(stats_rows(head(normed)))
        lens_raw.append(stats_rows(head(hs[l])))
    final_stats = stats_rows(logits)
    for a, b in zip(lens_norm[L], final_stats):
        assert a["id"] == b["id"], (a, b)
        for k in ("prob", "entropy", "margin"):
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), (k, a, b)
    return hs, logits, lens_norm, lens_raw


def dump_json(obj, path):
    """json with _Raw float32 strings written verbatim, compact arrays of numbers."""
    def enc(o, indent):
        pad = "  " * indent
        if isinstance(o, _Raw):
            return str(o)
        if isinstance(o, bool) or o is None:
            return json.dumps(o)
        if isinstance(o, (int, float, str)):
            return json.dumps(o)
        if isinstance(o, dict):
            if all(not isinstance(v, (dict, list)) for v in o.values()):
                return "{" + ",".join(f"{json.dumps(k)}:{enc(v, 0)}" for k, v in o.items()) + "}"
            items = [f'{pad}  {json.dumps(k)}: {enc(v, indent + 1)}' for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list):
            if all(not isinstance(v, (dict, list)) for v in o):
                return "[" + ",".join(enc(v, 0) for v in o) + "]"
            return "[\n" + ",\n".join(pad + "  " + enc(v, indent + 1) for v in o) + "\n" + pad + "]"
        raise TypeError(type(o))
    text = enc(obj, 0) + "\n"
    json.loads(text)  # must be valid JSON
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------- checks
def check_llama3_rope(model):
    """The llama3 rope scaling must actually change the frequencies at this scale."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    cfg = model.config
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    base = cfg.rope_parameters["rope_theta"]
    plain = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    used = model.model.rotary_emb.inv_freq
    assert torch.allclose(used, scaled), (used, scaled)
    changed = int((~torch.isclose(scaled, plain)).sum())
    assert changed >= 2, (plain, scaled)
    return plain.tolist(), scaled.tolist()


def legacy_config(path, cfg):
    """Add the pre-transformers-5 top-level RoPE keys that Hub checkpoints carry."""
    with open(path) as f:
        d = json.load(f)
    rp = dict(d["rope_parameters"])
    if d["model_type"] == "gpt_neox":  # as Pythia's config.json spells them
        del d["rope_parameters"]
        d["rotary_pct"] = rp["partial_rotary_factor"]
        d["rotary_emb_base"] = rp["rope_theta"]
        rp = {}
    for key in ("rope_theta", "partial_rotary_factor"):
        if key in rp:
            d[key] = rp[key]
    if rp.get("rope_type", "default") != "default":
        d["rope_scaling"] = {k: v for k, v in rp.items() if k not in ("rope_theta", "partial_rotary_factor")}
    with open(path, "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


def encode_cases(tokenizer):
    out = []
    for cname, prompt, bos in CASES:
        ids = tokenizer(prompt)["input_ids"]
        if bos:
            ids = [EOT_ID] + ids
        assert 1 <= len(ids) <= MAX_POS, (cname, len(ids))
        assert max(ids) < TOKENIZER_SIZE
        assert tokenizer.decode(ids[1:] if bos else ids) == prompt
        out.append((cname, prompt, bos, ids))
    return out


def build_model(cls, config, seed):
    torch.manual_seed(seed)
    config._attn_implementation = "eager"
    model = cls(config).to(torch.float32).eval()
    model.config._attn_implementation = "eager"
    reinit(model, seed)
    return model


def min_lens_margin(model, cases):
    m = math.inf
    for _, _, _, ids in cases:
        _, _, lens_norm, lens_raw = run_case(model, ids)
        m = min(m, *(r["margin"] for lens in (lens_norm, lens_raw) for row in lens for r in row))
    return m


def check_tokenizer(tok_path):
    """Round trip; with EXTRA_WORDS, those words encode as GPT-2's whole tokens."""
    make_phi_tokenizer.check_roundtrip(tok_path, [c[1] for c in CASES])
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(tok_path)
    for w in EXTRA_WORDS:
        assert len(t.encode(w).ids) == 1, (w, t.encode(w).tokens)


def search_seeds(n, only=()):
    """Prints, per fixture, the n seeds from 1001 + k (k = the fixture's index in
    fixture_specs()) with the largest minimum lens margin. Used once (n = 60) to pick the seeds
    in fixture_specs()."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        tok_path = os.path.join(tmp, "tokenizer.json")
        make_phi_tokenizer.write_tokenizer(TOKENIZER, tok_path)
        cases = encode_cases(PreTrainedTokenizerFast(tokenizer_file=tok_path))
    for k, (name, (cls, config, _, _)) in enumerate(fixture_specs().items()):
        if only and name not in only:
            continue
        res = sorted(((min_lens_margin(build_model(cls, config, s), cases), s)
                      for s in range(1001 + k, 1001 + k + n)), reverse=True)
        print(name, [(f"{m:.2e}", s) for m, s in res[:5]], flush=True)
    return 0


def main(argv):
    if len(argv) > 2 and argv[1] == "--search-seeds":
        return search_seeds(int(argv[2]), argv[3:])
    here = os.path.dirname(os.path.abspath(__file__))
    out_root = argv[1] if len(argv) > 1 else os.path.join(here, "..", "tests", "fixtures")
    out_root = os.path.abspath(out_root)
    os.makedirs(out_root, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}; tokenizer "
          f"{TOKENIZER_SIZE} tokens, <|endoftext|> = {EOT_ID}, vocab_size {VOCAB}", flush=True)

    summary = {}
    specs = fixture_specs()
    for half_name, (base, _, seed) in HALF_FIXTURES.items():
        cls, config, _, legacy = specs[base]
        specs[half_name] = (cls, config, seed, legacy)
    only = argv[2:]
    unknown = [n for n in only if n not in specs and n != MULTIMODAL]
    assert not unknown, f"no fixture named {unknown}; fixtures: {list(specs) + [MULTIMODAL]}"
    for name, (cls, config, seed, legacy) in specs.items():
        if only and name not in only:
            continue
        store_dtype = HALF_FIXTURES.get(name, (None, torch.float32, None))[1]
        d = os.path.join(out_root, name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        tok_path = os.path.join(d, "tokenizer.json")
        make_phi_tokenizer.write_tokenizer(TOKENIZER, tok_path)
        check_tokenizer(tok_path)
        cases = encode_cases(PreTrainedTokenizerFast(tokenizer_file=tok_path))

        model = build_model(cls, config, seed)
        if name == "llama-tiny":
            plain, scaled = check_llama3_rope(model)
            print(f"  llama3 rope: inv_freq {plain} -> {scaled}")

        if store_dtype != torch.float32:
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(store_dtype).to(torch.float32))
            # Only the weights are stored in half precision; buffers such as RoPE's inv_freq
            # stay as transformers computes them.
            half = {k: v.to(store_dtype) for k, v in model.state_dict().items()}
            model.config.dtype = store_dtype
            model.save_pretrained(d, state_dict=half)
        else:
            model.save_pretrained(d)
        gen = os.path.join(d, "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
        if legacy:
            legacy_config(os.path.join(d, "config.json"), model.config)
        os.chmod(os.path.join(d, "model.safetensors"), 0o644)

        L = config.num_hidden_layers
        golden = {"model_type": config.model_type, "num_layers": L, "cases": []}
        ents = []
        min_margin = math.inf
        for cname, prompt, bos, ids in cases:
            hs, logits, lens_norm, lens_raw = run_case(model, ids)
            golden["cases"].append({
                "name": cname,
                "prompt": prompt,
                "bos": bos,
                "ids": ids,
                "hidden_states": [f32_list(h.numpy()) for h in hs],
                # Full [T][vocab] logits would put golden.json near 1.8 MB; the last position
                # is kept. hidden_states[L] and lens.final_norm[L] cover every position.
                "final_logits_last": f32_list(logits[-1].numpy()),
                "lens": {"final_norm": lens_norm, "raw": lens_raw},
            })
            ents.append([[round(float(np.mean([r["entropy"] for r in row])), 2) for row in lens]
                         for lens in (lens_norm, lens_raw)])
            min_margin = min(min_margin, *(r["margin"] for lens in (lens_norm, lens_raw)
                                           for row in lens for r in row))
            summary.setdefault(name, {})[cname] = ids
        floor = HALF_MIN_MARGIN if name in HALF_FIXTURES else MIN_MARGIN
        assert min_margin >= floor, f"{name}: near-tie (margin {min_margin:.3g}); pick another seed"
        dump_json(golden, os.path.join(d, "golden.json"))

        # Reload from disk (checks config.json, tensor names and dtypes) and compare bitwise.
        re = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                  attn_implementation="eager").eval()
        assert type(re) is cls, type(re)
        for case in golden["cases"]:
            hs2, logits2, ln2, lr2 = run_case(re, case["ids"])
            ref = np.array([float(v) for v in case["final_logits_last"]], np.float32)
            assert np.array_equal(logits2[-1].numpy(), ref), f"{name}/{case['name']}: reload differs"
            for l, h in enumerate(hs2):
                ref_hs = np.array([[float(v) for v in row] for row in case["hidden_states"][l]],
                                  np.float32)
                assert np.array_equal(h.numpy(), ref_hs), f"{name}/{case['name']}: hs[{l}] differs"
            assert ln2 == case["lens"]["final_norm"] and lr2 == case["lens"]["raw"]
        from safetensors import safe_open
        with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
            keys = sorted(f.keys())
            want = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[store_dtype]
            assert all(f.get_slice(k).get_dtype() == want for k in keys)
        sizes = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))}
        print(f"{name}: {len(keys)} tensors, lm_head.weight in file: {'lm_head.weight' in keys}; "
              f"files {sizes}")
        print(f"  mean entropy per layer [final_norm, raw] per case: {ents}")
        print(f"  min top1-top2 margin over all lens rows: {min_margin:.4g}")
    if not only or MULTIMODAL in only:
        make_gemma3_multimodal(out_root)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
