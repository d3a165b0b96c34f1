#!/usr/bin/env bash
# The offline demo end to end (config/demo.yaml): SmolLM2-135M -> Spanish, three PLMs (the real
# multilingual-e5-small encoder, the real Gemma-3-270M decoder, a stand-in encoder-decoder trained
# here), seven method cells, short continual pretraining, evaluation, report.
# Sets itself up first. Extra arguments go to snakemake (e.g. -n for a dry run, --cores 1).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
snakemake "$@"
echo "demo: report in results/report/ (results.csv, tables.md, plots/)"
