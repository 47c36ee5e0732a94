"""Writes the GPU check's prompts (bench/gpu_check.sh), cut to exact token counts with the
tokenizer of tests/fixtures/phi-tiny, which the check's full-size checkpoint uses.

    python bench/gpu/make_prompts.py OUT_DIR

The GPU machine has no `tokenizers` package, so the prompts are made here and committed:

    p9.txt       9 tokens (the tutorial's length), one line
    p512.txt     512 tokens of English prose, one line
    p2048.txt    2048 tokens (Phi-1.5's max_position_embeddings), one line
    batch100.txt 100 different prompts of 9 tokens each, one per line

Reuses bench/make_prompts.py's prose and clean cuts (every file re-encodes to its count).
"""

import os
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from make_prompts import cut, encode, long_text  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
SUBJECTS = ["fox", "cat", "river", "city", "model", "layer", "token", "window", "garden", "engine"]


def batch(tok, count, n):
    prompts = []
    i = 0
    while len(prompts) < count:
        i += 1
        text = cut(tok, f"Sentence {i} says the {SUBJECTS[i % 10]} jumps over the lazy dog again and again", n)
        if text is not None and text not in prompts:
            prompts.append(text)
        if i > 100 * count:
            raise RuntimeError(f"only {len(prompts)} prompts cut cleanly to {n} tokens")
    return prompts


def main(out):
    tok = Tokenizer.from_file(os.path.join(ROOT, "tests", "fixtures", "phi-tiny", "tokenizer.json"))
    os.makedirs(out, exist_ok=True)
    files = {f"p{n}.txt": [long_text(tok, n, seed=n)] for n in (9, 512, 2048)}
    files["batch100.txt"] = batch(tok, 100, 9)
    for name, lines in files.items():
        want = int(name[1:-4]) if name.startswith("p") else 9
        for line in lines:
            assert "\n" not in line and len(encode(tok, line)) == want, (name, line)
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} prompt(s) of {want} tokens", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
