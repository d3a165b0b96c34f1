#!/usr/bin/env bash
# The test suite, in CI order: format and lint, unit tests, workflow lint and dry runs of every
# config, then the whole workflow on a tiny integration config. Sets itself up first.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >/dev/null
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "== ruff (lint + format check)"
ruff check src tests bench
ruff format --check src tests bench
echo "== snakefmt"
snakefmt --check Snakefile rules/
echo "== pytest (unit + workflow)"
timeout -k 30 3000 python -m pytest -q "$@"
