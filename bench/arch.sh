#!/usr/bin/env bash
# Issue 10 ("Speed"): one larger-than-tiny benchmark point per new block type, against llama of
# similar size. Random float16 checkpoints of ~0.4 B parameters (bench/make_random_checkpoint.py:
# llama as the reference, gpt_neox with Pythia-410m's shape, gemma2, olmo2, phi3), cached
# outside the repo in $LOGITLENS_CACHE/bench-arch/NAME, never committed.
#
#   bash bench/arch.sh
#
# For each checkpoint, with its weights in the page cache: logitlens --bos on a 9-token prompt
# (BENCH_RUNS runs, default 5) and on a 512-token prompt (BENCH_LONG_RUNS, default 3), table
# output to /dev/null, timed by bench/lib.sh. Prints a Markdown table of medians: wall time and the
# forward / lens split, tokens/s = positions / (forward + lens), and the ratio to llama.
# Prompts (counted with BOS) are English prose cut with bench/make_prompts.py's helpers using the
# checkpoints' tokenizer (tests/fixtures/phi-tiny's).
#
# Environment: LOGITLENS_CACHE (default $HOME/.cache/logitlens), LOGITLENS_VENV (see
# scripts/venv.sh), LOGITLENS_BIN (default: ${CARGO_TARGET_DIR:-target}/release/logitlens, built
# here with `cargo build --release`), BENCH_RUNS, BENCH_LONG_RUNS, BENCH_MODELS (a subset, llama
# first). Keep the machine otherwise
# idle while it measures.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init bench-arch
DIR="$CACHE/bench-arch"
WORK="$DIR/work"
RUNS="${BENCH_RUNS:-5}"
LONG_RUNS="${BENCH_LONG_RUNS:-3}"
read -r -a MODELS <<<"${BENCH_MODELS:-llama gpt_neox gemma2 olmo2 phi3}"  # llama first (the reference)

bench_python
for m in "${MODELS[@]}"; do
  "$PY" "$ROOT/bench/make_random_checkpoint.py" "$m" "$DIR/$m"
done
bench_binary
bench_work "$WORK"

# Prompts: 8 and 511 tokens (+ BOS = 9 and 512 positions).
bench_py -c '
import sys
from tokenizers import Tokenizer
from make_prompts import long_text, encode
tok = Tokenizer.from_file(sys.argv[1])
for name, n, seed in (("short.txt", 8, 7), ("long.txt", 511, 0)):
    text = long_text(tok, n, seed)
    assert "\n" not in text and len(encode(tok, text)) == n
    open(sys.argv[2] + "/" + name, "w").write(text)
' "$DIR/llama/tokenizer.json" "$WORK"
SHORT="$(cat "$WORK/short.txt")"
LONG="$(cat "$WORK/long.txt")"

for m in "${MODELS[@]}"; do
  log "$m"
  bench_warm "$DIR/$m/model.safetensors"
  "$BIN" --model "$DIR/$m" --bos --prompt "$SHORT" >/dev/null 2>&1 # warm-up, not counted
  for i in $(seq 1 "$RUNS"); do bench_run "$m" short "$BIN" --model "$DIR/$m" --bos --prompt "$SHORT"; done
  for i in $(seq 1 "$LONG_RUNS"); do bench_run "$m" long "$BIN" --model "$DIR/$m" --bos --prompt "$LONG"; done
done

bench_py - "$DIR" "$WORK" "${MODELS[@]}" <<'PY'
import sys
import harness
d, work, models = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = harness.runs(work)
BLOCK = {
    "llama": "pre-norm, SwiGLU (reference)",
    "gpt_neox": "parallel residual, LayerNorm, rotary 25 %, fused qkv (Pythia-410m shape)",
    "gemma2": "sandwich norms, attention + final soft-caps, tied head",
    "olmo2": "post-norm, q/k norm",
    "phi3": "fused qkv_proj / gate_up_proj",
}
def med(m, side):
    s = harness.summary(harness.select(runs, m, side))
    pos, f, l = int(s["tokens"]), s["forward_s"], s["lens_s"]
    return pos, s["wall"], f, l, pos / (f + l)
rows = {m: (int(open(f"{d}/{m}/params.txt").read()), med(m, "short"), med(m, "long")) for m in models}
ref_s, ref_l = rows["llama"][1][4], rows["llama"][2][4]
print(f"| model | params | block type | {rows['llama'][1][0]} tok: wall / forward / lens | "
      f"{rows['llama'][2][0]} tok: wall / forward / lens | tokens/s ({rows['llama'][1][0]} / {rows['llama'][2][0]}) | vs llama ({rows['llama'][1][0]} / {rows['llama'][2][0]}) |")
print("|---|---|---|---|---|---|---|")
for m, (p, s, l) in rows.items():
    print(f"| {m} | {p / 1e6:.0f}M | {BLOCK[m]} | {s[1]:.2f} / {s[2]:.2f} / {s[3]:.2f} s | "
          f"{l[1]:.1f} / {l[2]:.1f} / {l[3]:.1f} s | {s[4]:.1f} / {l[4]:.1f} | {s[4] / ref_s:.2f}× / {l[4] / ref_l:.2f}× |")
PY
