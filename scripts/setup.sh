#!/usr/bin/env bash
# Idempotent setup of everything the project needs on a fresh machine:
#   Debian packages (MIDI synthesizer + General MIDI soundfont), .venv, torch 2.13.0 first through
#   constraints.txt (an unpinned torch would pull GBs of CUDA wheels), then the project with its dev and transcribe
#   extras, and basic-pitch without its dependencies (its pins pull TensorFlow; we run its ONNX model).
# Debian: fluidsynth + soundfont (renders the default corpus), chromium (the report test opens report.html headless).
# A second run only compares a hash of setup.py / settings.ini / constraints.txt / this script and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
APT_PKGS="fluidsynth fluid-soundfont-gm chromium"

missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: the default dataset renders audio with a soundfont; please run:"
    echo "    sudo apt-get install -y$missing"
    echo "setup: (without it, audio falls back to labelled sine synthesis)"
  fi
fi

[ -x "$VENV/bin/python" ] || { echo "setup: creating $VENV"; "$PY" -m venv "$VENV"; }
stamp="$VENV/.setup-stamp"
want=$(cat setup.py settings.ini constraints.txt scripts/setup.sh | sha1sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages (torch first)"
  "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
  "$VENV/bin/pip" install -q -c constraints.txt torch==2.13.0
  "$VENV/bin/pip" install -q -c constraints.txt -e ".[dev,transcribe]"
  "$VENV/bin/pip" install -q --no-deps basic-pitch==0.4.0
  echo "$want" > "$stamp"
fi
echo "setup: ok ($VENV)"
