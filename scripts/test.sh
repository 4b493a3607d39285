#!/usr/bin/env bash
# The project's test command: install (idempotent), lint, type-check, build the docs, run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The report test opens the HTML page in a real headless browser (Debian's chromium).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "chromium is required for the report test: sudo apt-get install chromium" >&2
    fi
fi
. .venv/bin/activate
# Two xdist workers on two cores: one BLAS/torch thread each, or they oversubscribe the cores.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ruff check src tests benchmarks examples docs/hooks
mypy
# The documentation site, built into a throw-away folder: --strict fails on a broken link, anchor or reference.
site_dir="$(mktemp -d)"
trap 'rm -rf "$site_dir"' EXIT
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$site_dir"
python -m pytest -q -n 2 "$@"
