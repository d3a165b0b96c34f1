#!/usr/bin/env bash
# Runs once inside the freshly created conda environment, from the workflow's working directory
# (the repository root): install this checkout's salt-transfer package without touching the
# pinned dependencies above.
set -euo pipefail
pip install --no-deps --no-build-isolation "${SALT_TRANSFER_SOURCE:-.}"
