# The bench harness, sourced by every bench/*.sh: setup, timed runs, alternation. Medians,
# the parsing of logitlens's timings and the tables' helpers are in bench/harness.py.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_init NAME              # ROOT, CACHE, LOGITLENS_VENV; log() prefixes "NAME: "
#   bench_python [PIN...]        # the pinned venv (scripts/venv.sh): PY
#   bench_phi                    # PHI: the full-size Phi-1.5-shaped checkpoint, made if missing
#   bench_prompts DIR            # bench/make_prompts.py into DIR: FOX LONG512 LONG2048 BATCH32
#   bench_binary                 # BIN: $LOGITLENS_BIN, else `cargo build --release`'s
#   bench_work [DIR]             # BENCH_WORK (default: a temporary folder, removed at exit)
#   bench_warm FILE...           # into the page cache
#   bench_run LABEL SIDE CMD...  # one timed run, recorded in $BENCH_WORK/runs.tsv
#   bench_pair ROUND LABEL A B ARGS...   # "${SIDE_A[@]}" ARGS and "${SIDE_B[@]}" ARGS (arrays
#                                        # the caller sets), A first on odd rounds, B on even
#   bench_py ARGS...             # $PY (else python3) with bench/ on PYTHONPATH: `import harness`
#
# Each run of bench_run has LOGITLENS_TIMING=json in its environment and its stdout sent to
# ${BENCH_STDOUT:-/dev/null} ("{side}" in it replaced by SIDE); its wall time is measured here (bash's EPOCHREALTIME, so that
# binaries without the JSON line are timed alike) and its peak RSS by GNU time when
# /usr/bin/time exists. runs.tsv has one line per run: LABEL, SIDE, N (1, 2, ... per label
# and side), wall microseconds, peak RSS KiB (empty without GNU time), exit status, and the
# path of its stderr without ".err"; harness.runs(BENCH_WORK) reads it back with each run's
# timings. A failed run is logged with the end of its stderr, and the bench goes on
# (BENCH_ON_FAILURE=exit stops it). BENCH_BEFORE names a function called before each run,
# untimed (e.g. emptying an output folder).

BENCH_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_LIB_DIR/.." && pwd)"

bench_init() {
  BENCH_NAME="$1"
  CACHE="${LOGITLENS_CACHE:-$HOME/.cache/logitlens}"
  export LOGITLENS_VENV="${LOGITLENS_VENV:-$CACHE/venv}"
}

log() { echo "${BENCH_NAME:-bench}: $*" >&2; }

bench_python() {
  # shellcheck source=scripts/venv.sh
  source "$ROOT/scripts/venv.sh"
  ensure_venv "$@" # sets PY
}

bench_py() {
  PYTHONPATH="$BENCH_LIB_DIR${PYTHONPATH:+:$PYTHONPATH}" "${PY:-python3}" "$@"
}

bench_phi() {
  # Idempotent and quick when the checkpoint exists (creates only what is missing).
  PHI="$CACHE/phi-1_5-random"
  log "checkpoint: $PHI"
  "$PY" "$ROOT/scripts/make_phi_fullsize.py" "$PHI" >/dev/null
}

bench_prompts() {
  "$PY" "$BENCH_LIB_DIR/make_prompts.py" "$PHI" "$1" >/dev/null
  FOX="$(cat "$1/fox.txt")"
  LONG512="$(cat "$1/long512.txt")"
  LONG2048="$(cat "$1/long2048.txt")"
  BATCH32="$1/batch32.txt"
}

bench_binary() {
  if [ -n "${LOGITLENS_BIN:-}" ]; then
    BIN="$LOGITLENS_BIN"
  else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/logitlens"
  fi
  [ -x "$BIN" ] || { log "no binary at $BIN"; exit 1; }
  BIN="$(realpath "$BIN")"
}

bench_work() {
  if [ -n "${1:-}" ]; then
    BENCH_WORK="$1"
  else
    BENCH_WORK="$(mktemp -d)"
    # shellcheck disable=SC2064 # the folder is known now
    trap "rm -rf '$BENCH_WORK'" EXIT
  fi
  rm -rf "$BENCH_WORK/logs"
  mkdir -p "$BENCH_WORK/logs"
  : >"$BENCH_WORK/runs.tsv"
  BENCH_SEQ=0
  declare -gA BENCH_COUNT=()
}

bench_warm() {
  cat "$@" >/dev/null
}

bench_run() {
  local label="$1" side="$2"
  shift 2
  BENCH_SEQ=$((BENCH_SEQ + 1))
  local key="$label/$side"
  BENCH_COUNT[$key]=$((${BENCH_COUNT[$key]:-0} + 1))
  local base
  base="$BENCH_WORK/logs/$(printf '%05d' "$BENCH_SEQ")"
  local timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f %M -o "$base.rss")
  [ -z "${BENCH_BEFORE:-}" ] || "$BENCH_BEFORE"
  local t0 t1 rc=0
  t0="$EPOCHREALTIME"
  local out="${BENCH_STDOUT:-/dev/null}"
  LOGITLENS_TIMING=json "${timer[@]}" "$@" >"${out//\{side\}/$side}" 2>"$base.err" || rc=$?
  t1="$EPOCHREALTIME"
  local rss=""
  [ -f "$base.rss" ] && rss="$(tail -n 1 "$base.rss")"
  printf '%s\t%s\t%d\t%d\t%s\t%d\t%s\n' "$label" "$side" "${BENCH_COUNT[$key]}" \
    $((${t1//[^0-9]/} - ${t0//[^0-9]/})) "$rss" "$rc" "$base" >>"$BENCH_WORK/runs.tsv"
  if [ "$rc" != 0 ]; then
    log "$label ($side) failed (exit $rc); the end of its stderr ($base.err):"
    tail -n 5 "$base.err" >&2
    [ "${BENCH_ON_FAILURE:-continue}" != exit ] || exit 1
  fi
  return 0
}

bench_pair() {
  local round="$1" label="$2" a="$3" b="$4"
  shift 4
  local -n side_a="SIDE_$a" side_b="SIDE_$b"
  if [ $((round % 2)) = 1 ]; then
    bench_run "$label" "$a" "${side_a[@]}" "$@"
    bench_run "$label" "$b" "${side_b[@]}" "$@"
  else
    bench_run "$label" "$b" "${side_b[@]}" "$@"
    bench_run "$label" "$a" "${side_a[@]}" "$@"
  fi
}
