#!/usr/bin/env bash
# The project's test command: install (idempotent), lint, type-check, run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
ruff check src tests benchmarks
mypy
python -m pytest -q -n 2 "$@"
