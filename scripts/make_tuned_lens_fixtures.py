#!/usr/bin/env python3
"""Tuned-lens fixtures and their golden values, made by the tuned-lens package itself
(PyPI tuned-lens 0.2.0, installed with `pip install --no-deps tuned-lens==0.2.0`).

    python scripts/make_tuned_lens_fixtures.py tiny                 # tests/fixtures/tuned-lens/
    python scripts/make_tuned_lens_fixtures.py smollm2 MODEL.gguf   # tests/fixtures/tuned-lens-smollm2/

For each lens: `TunedLens.from_model(model)` on the fixture model (transformers, float32, eager
attention), its translators randomised (they start at zero, which would test nothing), then
`lens.save(dir)`. The golden rows are computed by the package from the files it saved, loaded
back with `TunedLens.from_model_and_pretrained(model, dir, map_location="cpu")`:
row i < L is `lens.forward(hidden_states[i], i)`, row L is the model's logits. Per row and
position, in float64 from the float32 logits: argmax id, entropy, top-1/top-2 margin and
KL(p_out || p_row).

Tiny lenses (tests/fixtures/tuned-lens/<name>/):
- llama-tiny, gpt-neox-tiny: f32 translators, as the package saves them;
- llama-tiny-f16: the translators stored as float16 (the package casts them to the model's
  float32 when it loads them, and so does logitlens);
- gpt-neox-tiny-cuda: storages tagged "cuda:0", as lenses trained on a GPU are; made by
  registering a torch serialization tagger that names cuda:0 for every storage (no GPU needed).
  Its config.json also carries the published files' misspelt key "unemebd_hash".
- bad-missing-key: llama-tiny's translators saved by torch without "2.weight" (no golden).

SmolLM2 (real weights): a dense lens is 30 x 576 x 577 floats (40 MB), so its translators are
sparse (1% of the weight entries non-zero, dense biases) and gentler (see SMOLLM2_SCALE), saved
by the package and committed as params.pt.gz; the Rust test decompresses it into a temporary
directory.
"""
import gzip
import json
import os
import shutil
import sys
import tempfile
import zipfile

import torch
from transformers import AutoModelForCausalLM

from tuned_lens.nn.lenses import TunedLens

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
torch.use_deterministic_algorithms(True)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Relative paths, so that config.json's base_model_name_or_path names no local directory.
ROOT = os.path.join("tests", "fixtures")
# name: (model fixture, stored dtype, cuda tag, seed)
TINY = {
    "llama-tiny": ("llama-tiny", torch.float32, False, 1101),
    "gpt-neox-tiny": ("gpt-neox-tiny", torch.float32, False, 1102),
    "llama-tiny-f16": ("llama-tiny", torch.float16, False, 1103),
    "gpt-neox-tiny-cuda": ("gpt-neox-tiny", torch.float32, True, 1104),
}
SMOLLM2_PROMPTS = [
    ("fox", "The quick brown fox jumps over the lazy"),
    ("france", "The capital of France is"),
]
SMOLLM2_DENSITY = 0.01
# Gentler translators than the tiny models' (a trained lens moves h a little); the rows still
# differ from the logit lens's. (SmolLM2's rows sit 5 to 180 nats of KL from the output under
# the logit lens already, so the KLs are large either way.)
SMOLLM2_SCALE = 0.05


def load_model(path, gguf=None):
    kwargs = dict(dtype=torch.float32, attn_implementation="eager")
    if gguf:
        kwargs["gguf_file"] = gguf
    return AutoModelForCausalLM.from_pretrained(path, **kwargs).eval()


@torch.no_grad()
def randomise(lens, seed, density=1.0, scale=0.5):
    """Translator weights ~ N(0, (scale / sqrt(fan-in))^2) on a random `density` of entries,
    biases ~ N(0, (scale / 10)^2): each translator moves h by about `scale` times its size."""
    g = torch.Generator().manual_seed(seed)
    for t in lens.layer_translators:
        d = t.weight.shape[1]
        fan_in = max(1.0, d * density)
        w = torch.randn(t.weight.shape, generator=g) * (scale / fan_in ** 0.5)
        if density < 1.0:
            # where(), not a product: -0.0 entries would not compress.
            w = torch.where(torch.rand(t.weight.shape, generator=g) < density, w, 0.0)
        t.weight.copy_(w)
        t.bias.copy_(torch.randn(t.bias.shape, generator=g) * (scale / 10))


def save(lens, out, dtype, cuda):
    if os.path.isdir(out):
        shutil.rmtree(out)
    lens.layer_translators.to(dtype)
    if not cuda:
        lens.save(out)
        return
    # torch names each storage's device with the first registered tagger that answers;
    # priority 1 runs before torch's own "cpu" tagger (10).
    torch.serialization.register_package(1, lambda obj: "cuda:0", lambda obj, loc: None)
    try:
        lens.save(out)
    finally:
        torch.serialization._package_registry[:] = [
            p for p in torch.serialization._package_registry if p[0] != 1]
    with zipfile.ZipFile(os.path.join(out, "params.pt")) as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        assert b"cuda:0" in z.read(pkl) and b"cpu" not in z.read(pkl), "no cuda:0 location"


def stats(logits, out):
    """[T, V] float32 logits and the output row's -> per position {id, entropy, margin, kl}."""
    x = logits.to(torch.float64)
    logp = torch.log_softmax(x, -1)
    logq = torch.log_softmax(out.to(torch.float64), -1)
    p, q = logp.exp(), logq.exp()
    ent = -(p * logp).sum(-1)
    kl = (q * (logq - logp)).sum(-1)
    top2 = torch.topk(x, 2, dim=-1)
    return [{"id": int(top2.indices[t, 0]), "entropy": float(ent[t]),
             "margin": float(top2.values[t, 0] - top2.values[t, 1]), "kl": float(kl[t])}
            for t in range(x.shape[0])]


@torch.no_grad()
def golden_rows(model, lens, ids):
    o = model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    hs = [h[0] for h in o.hidden_states]
    L = model.config.num_hidden_layers
    assert len(hs) == L + 1 and len(lens) == L
    out = o.logits[0]
    rows = [stats(lens.forward(hs[i], i), out) for i in range(L)]
    rows.append(stats(out, out))
    return rows


def make_lens(model, out, dtype, cuda, seed, density=1.0, scale=0.5):
    lens = TunedLens.from_model(model)
    randomise(lens, seed, density, scale)
    save(lens, out, dtype, cuda)
    # The golden comes from what was saved, as the package loads it.
    return TunedLens.from_model_and_pretrained(model, out, map_location="cpu").eval()


def dump(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def tiny():
    root = os.path.join(ROOT, "tuned-lens")
    os.makedirs(root, exist_ok=True)
    golden = {"note": __doc__.split("\n\n")[0], "lenses": {}}
    for name, (fixture, dtype, cuda, seed) in TINY.items():
        mdir = os.path.join(ROOT, fixture)
        model = load_model(mdir)
        out = os.path.join(root, name)
        lens = make_lens(model, out, dtype, cuda, seed)
        if cuda:
            cfg_path = os.path.join(out, "config.json")
            with open(cfg_path) as f:
                cfg = json.load(f)
            cfg["unemebd_hash"] = cfg["unembed_hash"]
            with open(cfg_path, "w") as f:
                json.dump(cfg, f)
        with open(os.path.join(mdir, "golden.json")) as f:
            cases = json.load(f)["cases"]
        golden["lenses"][name] = {
            "model": fixture,
            "cases": [{"name": c["name"], "ids": c["ids"],
                       "rows": golden_rows(model, lens, c["ids"])} for c in cases],
        }
        print(f"{name}: {len(lens)} translators, d_model {lens.config.d_model}, "
              f"stored {dtype}, cuda tag {cuda}", flush=True)
    dump(golden, os.path.join(root, "golden.json"))
    missing_key(root)


def missing_key(root):
    """bad-missing-key: llama-tiny's lens saved by torch without "2.weight"."""
    src, out = os.path.join(root, "llama-tiny"), os.path.join(root, "bad-missing-key")
    os.makedirs(out, exist_ok=True)
    state = torch.load(os.path.join(src, "params.pt"))
    del state["2.weight"]
    torch.save(state, os.path.join(out, "params.pt"))
    shutil.copy(os.path.join(src, "config.json"), os.path.join(out, "config.json"))


def smollm2(gguf):
    from transformers import AutoTokenizer
    d, name = os.path.dirname(os.path.abspath(gguf)), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = load_model(d, name)
    root = os.path.join(ROOT, "tuned-lens-smollm2")
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lens = make_lens(model, tmp, torch.float32, False, 1105, SMOLLM2_DENSITY, SMOLLM2_SCALE)
        shutil.copy(os.path.join(tmp, "config.json"), os.path.join(root, "config.json"))
        with open(os.path.join(tmp, "params.pt"), "rb") as f, \
                gzip.GzipFile(os.path.join(root, "params.pt.gz"), "wb", 9, mtime=0) as g:
            shutil.copyfileobj(f, g)
    cases = []
    for cname, prompt in SMOLLM2_PROMPTS:
        ids = tok(prompt)["input_ids"]
        cases.append({"name": cname, "prompt": prompt, "ids": ids,
                      "rows": golden_rows(model, lens, ids)})
    dump({"note": __doc__.split("\n\n")[0], "model": name, "density": SMOLLM2_DENSITY,
          "scale": SMOLLM2_SCALE, "cases": cases}, os.path.join(root, "golden.json"))
    print(f"smollm2: {len(lens)} translators, d_model {lens.config.d_model}", flush=True)


def main(argv):
    os.chdir(REPO)
    if len(argv) >= 2 and argv[1] == "tiny":
        tiny()
    elif len(argv) == 3 and argv[1] == "smollm2":
        smollm2(argv[2])
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
