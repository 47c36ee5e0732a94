"""Writes the benchmark's prompts, cut to exact token counts with the model's own tokenizer.

    python bench/make_prompts.py MODEL_DIR OUT_DIR

Files written to OUT_DIR (each prompt is counted WITHOUT the BOS token that bench/run.sh adds
with `logitlens --bos`, so a prompt of n tokens runs as n + 1 positions):

    fox.txt       the tutorial's prompt, "The quick brown fox jumps over the lazy" (8 tokens)
    long512.txt   511 tokens of English prose (512 positions with BOS), on one line
    long2048.txt  2047 tokens (2048 positions with BOS: Phi-1.5's max_position_embeddings)
    batch32.txt   32 different prompts of 8 tokens each (9 with BOS, like the tutorial's), one
                  per line, for `logitlens --prompts`

Prompts are cut at a word boundary (the next token starts with a space), so re-encoding the
written text gives exactly the intended token count; every file is checked that way.
"""

import os
import random
import sys

from tokenizers import Tokenizer

FOX = "The quick brown fox jumps over the lazy"
FOX_TOKENS = 8
LONG = {"long512.txt": 511, "long2048.txt": 2047}
BATCH = ("batch32.txt", 32, 8)

# Plain English prose, repeated (shuffled per round, fixed seed) to reach the long lengths.
SENTENCES = [
    "The old lighthouse keeper climbed the spiral stairs every evening to light the lamp before the ships came in.",
    "A small bakery on the corner sold fresh bread each morning, and the smell drifted down the whole street.",
    "When the river flooded in the spring, the farmers moved their animals to the higher fields near the forest.",
    "She opened the letter slowly, afraid of what it might say about the job she had applied for last month.",
    "The museum was quiet on Tuesday afternoons, so the students could study the paintings without any crowds.",
    "After three days of rain, the children were finally allowed to play outside in the muddy garden.",
    "The train to the coast left at seven, but the station was already full of travelers by half past six.",
    "He learned to play the piano as a child and still practiced for an hour before going to work.",
    "Scientists have measured the temperature of the ocean at many depths to understand how the climate is changing.",
    "The recipe called for two cups of flour, a spoonful of sugar, three eggs and a pinch of salt.",
    "In the library, an old map showed the roads and villages as they had been two hundred years ago.",
    "The city council voted to build a new bridge across the harbor to reduce traffic in the center.",
    "Every summer the family rented a small cabin by the lake, where they swam and fished for a week.",
    "The teacher asked the class to write a short story about a journey they would like to take one day.",
    "Bees visit thousands of flowers in a single day, carrying pollen from one plant to the next.",
    "The mechanic explained that the engine needed a new belt and that the brakes should be checked soon.",
    "At the top of the mountain the air was thin and cold, but the view across the valley was wonderful.",
    "The company announced that it would open two new offices next year and hire several hundred people.",
    "Our neighbor grows tomatoes, beans and potatoes in a garden that is much larger than it looks from the road.",
    "The orchestra rehearsed the symphony for weeks before the first concert of the season.",
    "A strong wind blew across the desert, covering the tracks of the camels with a thin layer of sand.",
    "The doctor told him to drink more water, sleep at least eight hours and walk for thirty minutes every day.",
    "Many birds fly south in the autumn and return in the spring to build their nests in the same trees.",
    "The small boat rocked gently in the harbor while the fishermen repaired their nets on the pier.",
    "During the meeting, the manager presented a plan to improve the service and reduce the waiting times.",
    "The history book described how the ancient city grew from a small trading post into a great capital.",
    "Snow fell quietly through the night, and by morning the whole village was covered in white.",
    "The engineers tested the new software for several weeks before they released it to the public.",
    "My grandmother kept every photograph in a wooden box, each one labeled with a date and a place.",
    "The market was crowded with people buying fruit, vegetables, cheese and flowers for the weekend.",
    "Light from distant stars can take thousands of years to reach the telescopes on our planet.",
    "The hikers followed the narrow path along the cliffs until they reached a hidden beach below.",
    "The restaurant changed its menu every season to use the vegetables that the local farms could grow.",
    "In the evening the streets filled with music as the town celebrated the end of the harvest.",
    "The children built a tall castle of sand, with towers, walls and a deep moat around it.",
    "The report showed that more people were reading books on their phones than ever before.",
    "A gentle breeze moved through the tall grass as the sun slowly set behind the distant hills.",
    "The pilot announced that the plane would land a little early because of a strong tail wind.",
    "Volunteers cleaned the park on Saturday, collecting bags of rubbish and planting new trees.",
    "The young architect designed a house with large windows so that every room would be full of light.",
    "The detective noticed a small scratch on the door that everyone else in the room had missed.",
    "When the power went out, the family lit candles and told stories until they fell asleep.",
]


def encode(tok, text):
    return tok.encode(text, add_special_tokens=False).ids


def starts_word(tok, token_id):
    piece = tok.id_to_token(token_id)
    return piece is not None and piece.startswith("\u0120")  # 'Ġ' = a leading space


def cut(tok, text, n):
    """The prefix of `text` that encodes to exactly n tokens, ending before a word start."""
    ids = encode(tok, text)
    if len(ids) <= n:
        raise ValueError(f"text too short: {len(ids)} tokens, need more than {n}")
    if not starts_word(tok, ids[n]):
        return None
    prefix = tok.decode(ids[:n], skip_special_tokens=False)
    return prefix if encode(tok, prefix) == ids[:n] else None


def long_text(tok, n, seed):
    """English prose of exactly n tokens (drops leading words until the cut is clean)."""
    rng = random.Random(seed)
    words = []
    while len(words) < 2 * n:  # always well over n tokens
        order = SENTENCES[:]
        rng.shuffle(order)
        words.extend(" ".join(order).split(" "))
    for start in range(50):
        text = cut(tok, " ".join(words[start:]), n)
        if text is not None:
            return text
    raise RuntimeError(f"no clean {n}-token cut found")


def batch_prompts(tok, count, n):
    prompts = []
    for sentence in SENTENCES:
        text = cut(tok, sentence, n)
        if text is not None and text not in prompts:
            prompts.append(text)
        if len(prompts) == count:
            return prompts
    raise RuntimeError(f"only {len(prompts)} of {count} sentences cut cleanly to {n} tokens")


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def main(model_dir, out_dir):
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    os.makedirs(out_dir, exist_ok=True)

    assert len(encode(tok, FOX)) == FOX_TOKENS, encode(tok, FOX)
    write(os.path.join(out_dir, "fox.txt"), FOX)

    for seed, (name, n) in enumerate(sorted(LONG.items())):
        text = long_text(tok, n, seed)
        assert "\n" not in text and len(encode(tok, text)) == n
        write(os.path.join(out_dir, name), text)

    name, count, n = BATCH
    prompts = batch_prompts(tok, count, n)
    assert all("\n" not in p and len(encode(tok, p)) == n for p in prompts)
    write(os.path.join(out_dir, name), "\n".join(prompts))

    print(
        f"prompts in {out_dir}: fox {FOX_TOKENS}, "
        + ", ".join(f"{k} {v}" for k, v in sorted(LONG.items()))
        + f", {name} {count}x{n} tokens (each + BOS)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
