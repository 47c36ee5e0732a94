#!/usr/bin/env bash
# Diffs the stdout of two logitlens binaries over every fixture, output format, lens flag
# and dtype, plus the SmolLM2 GGUF when it is present. Usage:
#   scripts/compare_binaries.sh OLD_BINARY NEW_BINARY
# Prints one line per difference and a summary; exits 1 if any output differs.
set -u
old=$1
new=$2
here=$(cd "$(dirname "$0")/.." && pwd)
gguf=${LOGITLENS_CACHE:-$HOME/.cache/logitlens}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
prompts=(-p "The quick brown fox jumps over the lazy" -p "The capital of France is" -p "1 2 3 4")
runs=0
diffs=0
compare() {
    local a b
    a=$("$old" "$@" 2>&1)
    b=$("$new" "$@" 2>&1)
    runs=$((runs + 1))
    if [ "$a" != "$b" ]; then
        diffs=$((diffs + 1))
        echo "DIFFERS: $*"
    fi
}
for fixture in phi-tiny phi-tiny-qk phi-tiny-f16 llama-tiny qwen2-tiny gpt2-tiny; do
    model=$here/tests/fixtures/$fixture
    for format in table json jsonl csv tsv; do
        for flags in "" "--no-final-norm" "--bos" "--entropy"; do
            # shellcheck disable=SC2086
            compare -m "$model" "${prompts[@]}" -f "$format" $flags -q
        done
    done
    for dtype in f16 bf16; do
        compare -m "$model" "${prompts[@]}" -f json --dtype "$dtype" -q
    done
done
if [ -f "$gguf" ]; then
    for flags in "" "--no-final-norm" "--bos"; do
        # shellcheck disable=SC2086
        compare -m "$gguf" "${prompts[@]}" -f json $flags -q
    done
    compare -m "$gguf" "${prompts[@]}" -f table -q
fi
echo "$runs runs, $diffs differ"
[ "$diffs" -eq 0 ]
