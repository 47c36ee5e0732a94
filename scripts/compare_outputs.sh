#!/usr/bin/env bash
# Runs two logitlens binaries over the same matrix of cases and compares what they print and
# write, byte for byte: stdout, stderr, the exit code and every file written under --out or
# --out-dir. One line per case, then "N identical, M differ"; exits 1 if any case differs.
#
#   scripts/compare_outputs.sh OLD_BIN NEW_BIN
#
# The matrix: every fixture under tests/fixtures × every stdout format × one prompt, several
# --prompt flags, a --prompts text file, a --prompts JSONL file with ids and prompts on stdin
# (the GGUF: the first two and the JSONL file) ×
# no flag, --bos, --no-final-norm and --entropy; heatmaps through --out (.png, .svg) and
# --out-dir (png, svg, --layer-step); a few usage and input errors; and the same on the SmolLM2
# GGUF when ~/.cache/logitlens/smollm2/ holds it. Then HTML reports (--out, --out-dir, a
# batch, sublayers and targets, compared lenses), --summary and --summary-plot files. An HTML
# report is compared by the JSON document it embeds (the text of <script
# id="logitlens-data">): the page around it, its scripts and view data, may change.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 OLD_BIN NEW_BIN" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Both run as "logitlens", since --help and usage errors print the program's name.
mkdir "$work/old-bin" "$work/new-bin"
ln -s "$(realpath "$1")" "$work/old-bin/logitlens"
ln -s "$(realpath "$2")" "$work/new-bin/logitlens"
old="$work/old-bin/logitlens"
new="$work/new-bin/logitlens"
unset LOGITLENS_TIMING NO_COLOR

printf 'The quick brown fox jumps over the lazy\nHello, world! 123\n  leading spaces\n' >"$work/prompts.txt"
cat >"$work/prompts.jsonl" <<'EOF'
{"prompt": "The capital of France is", "id": "france"}
{"prompt": "tab\there, \"quoted\", comma\nnew line", "id": "odd/id 1"}
{"prompt": "日本語 and émoji 🦊", "id": 7}
EOF

identical=0
differ=0

# documents DIR: each HTML report under DIR replaced by the document it embeds (x.html.json).
documents() {
    python3 - "$1" <<'EOF'
import pathlib, sys
for page in sorted(pathlib.Path(sys.argv[1]).rglob("*.html")):
    text = page.read_text(encoding="utf-8")
    start = text.index('id="logitlens-data">') + len('id="logitlens-data">')
    end = text.index("</script>", start)
    pathlib.Path(str(page) + ".json").write_text(text[start:end], encoding="utf-8")
    page.unlink()
EOF
}

# run SIDE BIN ARGS...: runs in $work with an empty $work/out, stdin from $STDIN (or nothing),
# and keeps stdout, stderr, the exit code and the files under $work/SIDE.* (HTML reports as
# their documents).
run() {
    local side=$1 bin=$2
    shift 2
    rm -rf "$work/out" "$work/$side.files"
    mkdir "$work/out"
    (cd "$work" && "$bin" "$@" <"${STDIN:-/dev/null}" >"$work/$side.stdout" 2>"$work/$side.stderr")
    echo $? >"$work/$side.rc"
    documents "$work/out"
    mv "$work/out" "$work/$side.files"
}

# case NAME ARGS...: runs both binaries and prints one line.
case_() {
    local name=$1
    shift
    run old "$old" "$@"
    run new "$new" "$@"
    local why=""
    cmp -s "$work/old.stdout" "$work/new.stdout" || why="$why stdout"
    cmp -s "$work/old.stderr" "$work/new.stderr" || why="$why stderr"
    cmp -s "$work/old.rc" "$work/new.rc" || why="$why exit-code"
    diff -r -q "$work/old.files" "$work/new.files" >/dev/null || why="$why files"
    local files
    files=$(find "$work/old.files" -type f | wc -l)
    if [ -z "$why" ]; then
        identical=$((identical + 1))
        printf 'identical  %s (exit %s, %s bytes, %s files)\n' "$name" "$(cat "$work/old.rc")" \
            "$(wc -c <"$work/old.stdout")" "$files"
    else
        differ=$((differ + 1))
        printf 'DIFFER     %s:%s\n' "$name" "$why"
    fi
}

# matrix NAME MODEL [PROMPT SETS]: the whole matrix on one model.
matrix() {
    local name=$1 model=$2 sets=${3:-one many file jsonl stdin}
    local format flag prompts
    for format in table json jsonl csv tsv; do
        for flag in "" --bos --no-final-norm --entropy; do
            for prompts in $sets; do
                local args=(--model "$model" --format "$format" $flag)
                case $prompts in
                one) args+=(--prompt "The quick brown fox jumps over the lazy") ;;
                many) args+=(--prompt "The quick brown fox" --prompt " dog" --prompt "a,b\tc") ;;
                file) args+=(--prompts prompts.txt) ;;
                jsonl) args+=(--prompts prompts.jsonl) ;;
                stdin) args+=(--prompts -) ;;
                esac
                if [ "$prompts" = stdin ]; then
                    STDIN="$work/prompts.txt" case_ "$name $format $prompts $flag" "${args[@]}"
                else
                    case_ "$name $format $prompts $flag" "${args[@]}"
                fi
            done
        done
    done
    local image
    for image in png svg; do
        case_ "$name --out h.$image" --model "$model" --prompt "The quick brown fox" --out "out/h.$image"
        case_ "$name --out h.$image --no-final-norm --layer-step 2" --model "$model" \
            --prompt "Hello, world" --out "out/h.$image" --no-final-norm --layer-step 2
        case_ "$name --out-dir $image jsonl" --model "$model" --prompts prompts.jsonl \
            --out-dir out --image-format "$image" --format jsonl
        case_ "$name --out-dir $image txt --bos" --model "$model" --prompts prompts.txt \
            --out-dir out --image-format "$image" --bos --quiet
    done
    case_ "$name error: --out with two prompts" --model "$model" -p a -p b --out out/h.png
    case_ "$name error: --out .jpg" --model "$model" -p a --out out/h.jpg
    case_ "$name error: --layer-step 0" --model "$model" -p a --out out/h.png --layer-step 0
    case_ "$name error: empty prompt among others" --model "$model" -p a -p "" -p b --format csv
    case_ "$name error: empty prompt --fail-fast" --model "$model" -p "" -p b --fail-fast
    case_ "$name error: empty single prompt json" --model "$model" -p "" --format json
}

for fixture in phi-tiny phi-tiny-qk phi-tiny-f16 llama-tiny qwen2-tiny gpt2-tiny; do
    matrix "$fixture" "$root/tests/fixtures/$fixture"
done

phi="$root/tests/fixtures/phi-tiny"
llama="$root/tests/fixtures/llama-tiny"
lens=(--tuned-lens "$root/tests/fixtures/tuned-lens/llama-tiny" --compare-lenses)
fox="The quick brown fox jumps over the lazy"
case_ "report" --model "$phi" -p "$fox" --out out/r.html
case_ "report -f json" --model "$phi" -p "$fox" --out out/r.html -f json
case_ "report tab, newline, spaces" --model "$phi" -p $'a\tb\n c  d' --out out/r.html
case_ "report --sublayers --target --top-k 3" --model "$phi" -p "$fox" --sublayers \
    --target " the" --target-id 7 --top-k 3 --out out/r.html
case_ "report --no-final-norm" --model "$phi" -p "$fox" --no-final-norm --out out/r.html
case_ "report batch" --model "$phi" -p "The quick brown fox" -p "say </script> <!-- then" \
    -p "$fox" --out out/r.html
case_ "report --out-dir" --model "$phi" --prompts prompts.jsonl --out-dir out --image-format html
case_ "report compared lenses" --model "$llama" "${lens[@]}" -p "The quick brown fox" \
    -p "over the lazy dog" --target " because" --out out/r.html
case_ "report compared lenses --out-dir" --model "$llama" "${lens[@]}" -p "The quick" \
    -p "over the lazy dog" --out-dir out --image-format html
for ext in json csv; do
    case_ "summary .$ext" --model "$phi" -p "The quick" -p "$fox" --target " the" \
        --summary "out/s.$ext"
done
for ext in png svg; do
    case_ "summary-plot .$ext" --model "$phi" -p "The quick" -p "$fox" --target " the" \
        --summary-plot "out/s.$ext"
    case_ "summary-plot .$ext --sublayers" --model "$phi" -p "The quick" -p "$fox" --sublayers \
        --summary-plot "out/s.$ext"
    case_ "summary-plot .$ext compared lenses" --model "$llama" "${lens[@]}" -p "The quick" \
        -p "over the lazy dog" --summary-plot "out/s.$ext"
done

case_ "error: no prompt" --model "$root/tests/fixtures/phi-tiny"
case_ "error: no such model" --model "$work/nothing-here" -p a
# Library errors that the command line words with its flags.
phi="$root/tests/fixtures/phi-tiny"
cp "$work/prompts.jsonl" "$work/jsonl.txt"
echo '[{"prompt": "a"}]' >"$work/array.txt"
echo '[{"prompt": "a"},' >"$work/broken.json"
mkdir "$work/two-gguf" && touch "$work/two-gguf/a.gguf" "$work/two-gguf/b.gguf"
case_ "error: --device cuda" --model "$phi" -p a --device cuda
case_ "error: --device metal:1" --model "$phi" -p a --device metal:1
case_ "error: --tuned-lens not a directory" --model "$phi" -p a --tuned-lens "$work/nothing-here"
case_ "error: JSONL read as text" --model "$phi" --prompts jsonl.txt
case_ "error: JSON array read as text" --model "$phi" --prompts array.txt
case_ "error: broken JSON array" --model "$phi" --prompts broken.json
case_ "error: --model a file" --model prompts.txt -p a
case_ "error: --model a dir of two GGUFs" --model two-gguf -p a
case_ "error: --target of no tokens" --model "$phi" -p a --target ""
case_ "error: unknown flag" --model "$root/tests/fixtures/phi-tiny" -p a --frobnicate
case_ "--help" --help
case_ "--version" --version

gguf="$HOME/.cache/logitlens/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$gguf" ]; then
    matrix smollm2-gguf "$gguf" "one many jsonl"
else
    echo "skipped    smollm2-gguf: $gguf not found"
fi

echo "$identical identical, $differ differ"
[ "$differ" -eq 0 ]
