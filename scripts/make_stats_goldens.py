#!/usr/bin/env python3
"""Golden values of issue 8's statistics, from transformers, for committed fixtures.

    python scripts/make_stats_goldens.py [FIXTURE_DIR...]   # default: FIXTURES under tests/fixtures

For each fixture directory (already made by scripts/make_fixtures.py) it loads the checkpoint
with transformers (float32, eager attention), runs every golden.json case once with forward
hooks that capture each block's residual stream after attention ("resid_mid"), and writes
stats.json next to golden.json. Rows run embed, 1 mid, 1 post, ..., L post, each projected
through the final norm and the head (the output row is HF's own logits). Every statistic is
computed in float64 from transformers' float32 logits:

- entropy, argmax id and the top-1/top-2 margin;
- kl: KL(p_out || p_row), p_out being the output row at the same position;
- next_logprob, and next_rank as bounds [lo, hi]: 1 + #logits > z + 1e-3 and 1 + #logits > z - 1e-3
  (ranks must agree wherever the logits involved differ by more than 1e-3);
- topk (K = 5): [id, prob, gap to its neighbours (the 6th included)] per entry;
- targets (TARGETS): [prob, logprob, rank lo, rank hi] per target.

Where resid_mid is read, per block layout (transformers' module names):
- sequential (llama, mistral, qwen2, qwen3, gemma, phi3, gpt-neox sequential): the input of
  post_attention_layernorm; gpt2: the input of ln_2;
- sandwich (gemma2, gemma3): the input of pre_feedforward_layernorm;
- post-norm (olmo2): the input of mlp;
- parallel (phi, gpt-neox parallel): the block's input plus the attention branch's output.
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import final_norm_module, lens_head  # noqa: E402

# Enough layouts to cover every way a block joins its branches (sequential, parallel with one
# and two norms, sandwich, post-norm) and gpt2's learned positions.
FIXTURES = ["phi-tiny", "llama-tiny", "qwen2-tiny", "gpt2-tiny", "gemma2-tiny", "olmo2-tiny",
            "gpt-neox-tiny"]
K = 5
TARGETS = [11, 262, 1000]
TOL = 1e-3


def blocks(model):
    mt = model.config.model_type
    if mt == "gpt2":
        return model.transformer.h
    if mt == "gpt_neox":
        return model.gpt_neox.layers
    return model.model.layers


def mid_hooks(model, store):
    """Registers hooks filling store[i] with block i's resid_mid; returns the handles."""
    mt = model.config.model_type
    handles = []
    parallel = mt == "phi" or (mt == "gpt_neox" and model.config.use_parallel_residual)
    for i, block in enumerate(blocks(model)):
        def grab(module, args, kwargs, i=i):
            store[i] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        if parallel:
            inputs = {}

            def block_in(module, args, kwargs, i=i, inputs=inputs):
                inputs[i] = args[0] if args else kwargs["hidden_states"]

            def attn_out(module, args, kwargs, output, i=i, inputs=inputs):
                store[i] = (output[0] + inputs[i]).detach().clone()
            attn = block.self_attn if mt == "phi" else block.attention
            handles.append(block.register_forward_pre_hook(block_in, with_kwargs=True))
            handles.append(attn.register_forward_hook(attn_out, with_kwargs=True))
            continue
        if mt == "gpt2":
            site = block.ln_2
        elif mt in ("gemma2", "gemma3_text"):
            site = block.pre_feedforward_layernorm
        elif mt == "olmo2":
            site = block.mlp
        else:
            site = block.post_attention_layernorm
        handles.append(site.register_forward_pre_hook(grab, with_kwargs=True))
    return handles


def r(x):
    """A float64 to 10 significant digits (far finer than the tests' tolerances)."""
    return float(f"{x:.10g}")


def rank_bounds(row, z):
    return [1 + int((row > z + TOL).sum()), int((row > z - TOL).sum())]


def cell(logits, out_logp, t, ids):
    x = logits.to(torch.float64)
    logp = torch.log_softmax(x, -1)
    p = logp.exp()
    top = torch.topk(x, K + 1)
    vals = top.values.tolist()
    gaps = []
    for k in range(K):
        near = [vals[k] - vals[k + 1]] + ([vals[k - 1] - vals[k]] if k > 0 else [])
        gaps.append(min(near))
    c = {
        "id": int(torch.argmax(x)),
        "margin": r(vals[0] - vals[1]),
        "prob": r(float(p.max())),
        "entropy": r(float(-(p * logp).sum())),
        "kl": r(float((out_logp.exp() * (out_logp - logp)).sum())),
        "topk": [[int(i), r(float(p[i])), r(g)]
                 for i, g in zip(top.indices[:K].tolist(), gaps)],
        "targets": [[r(float(p[i])), r(float(logp[i])), *rank_bounds(x, float(x[i]))]
                    for i in TARGETS],
    }
    if t + 1 < len(ids):
        n = ids[t + 1]
        c["next_logprob"] = r(float(logp[n]))
        c["next_rank"] = rank_bounds(x, float(x[n]))
    else:
        c["next_logprob"] = None
        c["next_rank"] = None
    return c


@torch.no_grad()
def run(d):
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    with open(os.path.join(d, "golden.json")) as f:
        golden = json.load(f)
    norm, head = final_norm_module(model), lens_head(model)
    L = model.config.num_hidden_layers
    out = {"model_type": model.config.model_type, "top_k": K, "targets": TARGETS,
           "tolerance": TOL, "cases": []}
    for case in golden["cases"]:
        ids = case["ids"]
        store = {}
        handles = mid_hooks(model, store)
        res = model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
        for h in handles:
            h.remove()
        hs = [h[0] for h in res.hidden_states]
        assert len(store) == L, (d, len(store))
        rows = [("embed", 0, head(norm(hs[0])))]
        for l in range(1, L + 1):
            rows.append(("resid_mid", l, head(norm(store[l - 1][0]))))
            post = hs[l] if l == L else norm(hs[l])
            rows.append(("resid_post", l, head(post)))
        assert torch.equal(rows[-1][2], res.logits[0]), d
        out_logp = torch.log_softmax(rows[-1][2].to(torch.float64), -1)
        out["cases"].append({
            "name": case["name"], "ids": ids,
            "rows": [{"site": site, "layer": layer,
                      "cells": [cell(lg[t], out_logp[t], t, ids) for t in range(len(ids))]}
                     for site, layer, lg in rows],
        })
    with open(os.path.join(d, "stats.json"), "w") as f:
        # One line per cell: small, and diffs stay readable.
        text = json.dumps(out, separators=(",", ":"))
        f.write(text.replace('{"id"', '\n{"id"') + "\n")
    print(f"{d}: {len(out['cases'])} cases, {2 * L + 1} rows, "
          f"{os.path.getsize(os.path.join(d, 'stats.json'))} bytes")


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "..", "tests", "fixtures")
    dirs = argv[1:] or [os.path.join(root, n) for n in FIXTURES]
    for d in dirs:
        run(os.path.abspath(d))


if __name__ == "__main__":
    main(sys.argv)
