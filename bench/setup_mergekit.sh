#!/usr/bin/env bash
# mergekit 0.1.5 (LGPL-3.0) in its own venv for bench/bench_omp.py: never installed into .venv, never
# copied into this repository; the bench calls its CLI and imports it as a package from this venv.
# torch 2.13.0 first (the local CPU wheel), so mergekit's `torch>=2.0` does not pull CUDA builds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=bench/work/mergekit-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0
"$VENV/bin/pip" install -q --disable-pip-version-check mergekit==0.1.5
echo "mergekit: $("$VENV/bin/pip" show mergekit | grep ^Version)"
