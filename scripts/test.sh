#!/usr/bin/env bash
# The test suite, in CI order: format and lint, unit tests, workflow lint and dry runs of every
# config, the whole workflow on a tiny integration config, then the paper rehearsal as its own
# stage. Sets itself up first.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >/dev/null
# Headless Chromium renders Snakemake's HTML report in a test (test-only, so not in setup.sh).
if ! command -v chromium-headless-shell >/dev/null && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null; } \
    || echo "test.sh: could not install chromium-headless-shell; the report render check will be skipped" >&2
fi
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "== ruff (lint + format check)"
ruff check src tests bench
ruff format --check src tests bench
echo "== snakefmt"
snakefmt --check Snakefile rules/
if [ $# -gt 0 ]; then
  timeout -k 30 3000 python -m pytest -q "$@"
  exit
fi
echo "== pytest: unit, dry runs, bad input and faults, whole workflow, HTML report, Slurm"
timeout -k 30 3000 python -m pytest -q -m "not rehearsal"
echo "== pytest: the paper rehearsal (config/paper.yaml's code paths offline; locally and on Slurm)"
# 16 min on a quiet machine, 24 min on a busy one: the limit only stops a hung run.
timeout -k 30 2400 python -m pytest -q -m rehearsal
