#!/usr/bin/env python3
"""Build a GPT-2 / CodeGen / Phi-1.5 style byte-level BPE tokenizer.json offline.

The Hugging Face Hub is not needed: GPT-2's BPE ranks ship with the PyPI package
openai-whisper as ``whisper/assets/gpt2.tiktoken`` (base64 token, space, rank).
The merges are recovered from the ranks: for each rank r >= 256, running BPE over
the token's bytes using only ranks < r yields exactly two parts, which form merge
r - 256.

Standalone use writes the FULL Phi-1.5 tokenizer (50,000 merges, 50,295 tokens:
GPT-2's 50,257 plus 38 added whitespace tokens, runs of 31..2 spaces at
50257..50286 and runs of 9..2 tabs at 50287..50294) and checks a known encoding:

    python scripts/make_phi_tokenizer.py /path/to/tokenizer.json

``build_tokenizer(num_merges, space_runs, tab_runs)`` is also imported by
make_fixtures.py to build the truncated tokenizer used by the test fixtures.
"""
import base64
import json
import os
import sys

ENDOFTEXT = "<|endoftext|>"
PHI_FOX = "The quick brown fox jumps over the lazy"
PHI_FOX_IDS = [464, 2068, 7586, 21831, 18045, 625, 262, 16931]


def find_tiktoken_file():
    # openai-whisper is installed with --no-deps, so do not import it (it needs numba);
    # only locate the package directory.
    import importlib.util

    spec = importlib.util.find_spec("whisper")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("openai-whisper is not installed (pip install --no-deps openai-whisper)")
    path = os.path.join(os.path.dirname(spec.origin), "assets", "gpt2.tiktoken")
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return path


def load_ranks(path=None):
    path = path or find_tiktoken_file()
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    # ranks must be exactly 0..n-1
    assert sorted(ranks.values()) == list(range(len(ranks))), "ranks not contiguous"
    return ranks


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def bpe_parts(token, ranks, max_rank):
    """tiktoken-style BPE over `token` using only ranks < max_rank."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]


def merge_closure(words, ranks, below):
    """Ranks >= `below` of every token that full GPT-2 BPE builds while encoding `words`
    (each a single pre-token, e.g. " fox"), including the intermediate tokens."""
    need = set()

    def visit(tok):
        r = ranks[tok]
        if r < below or r in need:
            return
        need.add(r)
        for part in bpe_parts(tok, ranks, r):
            visit(part)

    for w in words:
        for tok in bpe_parts(w.encode("utf-8"), ranks, len(ranks)):
            visit(tok)
    return sorted(need)


def build_tokenizer(num_merges=None, space_runs=range(31, 1, -1), tab_runs=range(9, 1, -1),
                    ranks=None, extra_words=()):
    """tokenizer.json dict: byte-level BPE (GPT-2 ranks, first `num_merges` merges, plus, for a
    truncated tokenizer, the later merges that full GPT-2 BPE needs for `extra_words`, kept in
    rank order and renumbered to follow on), then <|endoftext|> (special), then added
    non-special runs of spaces and tabs in the given order, as in CodeGen's / Phi-1.5's
    tokenizer.json.

    Keeping a merge subset closed under its dependencies, in rank order, is still GPT-2 BPE:
    every word whose whole merge tree is kept encodes to the same token strings as with the
    full tokenizer (the ids of the extra tokens differ)."""
    ranks = ranks or load_ranks()
    by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
    n_base = len(by_rank) if num_merges is None else 256 + num_merges
    kept = [tok for tok, _ in by_rank[:n_base]]
    extra = [r for r in merge_closure(extra_words, ranks, n_base)]
    kept += [by_rank[r][0] for r in extra]
    b2u = bytes_to_unicode()

    def enc(bs):
        return "".join(b2u[b] for b in bs)

    sub_ranks = {tok: i for i, tok in enumerate(kept)}
    merges = []
    for tok in kept[256:]:
        parts = bpe_parts(tok, sub_ranks, sub_ranks[tok])
        if len(parts) != 2:
            raise ValueError(f"{tok!r} does not split into two parts: {parts}")
        merges.append((parts[0], parts[1]))
    n_model = len(kept)
    vocab = {enc(tok): i for i, tok in enumerate(kept)}
    assert len(vocab) == n_model

    added = []
    next_id = n_model

    def add(content, special, normalized):
        nonlocal next_id
        added.append({
            "id": next_id,
            "content": content,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": normalized,
            "special": special,
        })
        next_id += 1

    add(ENDOFTEXT, True, False)
    for n in space_runs:
        add(" " * n, False, True)
    for n in tab_runs:
        add("\t" * n, False, True)

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                           "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                    "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[enc(a), enc(b)] for a, b in merges],
        },
    }


def write_tokenizer(tok, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
        f.write("\n")


def check_roundtrip(path, texts):
    """Encode/decode with the `tokenizers` library; returns {text: ids}."""
    from tokenizers import Tokenizer

    t = Tokenizer.from_file(path)
    out = {}
    for s in texts:
        ids = t.encode(s).ids
        back = t.decode(ids, skip_special_tokens=False)
        if back != s:
            raise AssertionError(f"round trip failed: {s!r} -> {ids} -> {back!r}")
        out[s] = ids
    return out


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTPUT/tokenizer.json", file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tok = build_tokenizer()
    n_added = len(tok["added_tokens"])
    total = len(tok["model"]["vocab"]) + n_added
    assert len(tok["model"]["merges"]) == 50000, len(tok["model"]["merges"])
    assert total == 50295, total
    ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
    assert ids[ENDOFTEXT] == 50256
    assert ids[" " * 31] == 50257 and ids[" " * 2] == 50286
    assert ids["\t" * 9] == 50287 and ids["\t" * 2] == 50294
    write_tokenizer(tok, out)
    enc = check_roundtrip(out, [PHI_FOX, "def f(x):\n    return x\t\t# done",
                                "Hello, world! <|endoftext|> naïve café 日本語 🤗"])
    assert enc[PHI_FOX] == PHI_FOX_IDS, enc[PHI_FOX]
    print(f"wrote {out}: {total} tokens ({len(tok['model']['merges'])} merges, "
          f"{n_added} added); fox -> {enc[PHI_FOX]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
