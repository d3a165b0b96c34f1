"""Auxiliary (fastText) token vectors: the space in which SALT, FOCUS and OFA pick neighbours.

Usage:
    salt-transfer fasttext --corpus data/corpora/es/train.txt --tokenizer results/plm/es-e5/model \
        --out results/fasttext/es/es-e5/fasttext.bin

Two settings, both real fastText with subword n-grams:

* "token" lookup (FOCUS's `fasttext-tokenlevel`, the default of `salt-transfer fasttext`): fastText is
  trained on the target corpus pre-tokenized with the target tokenizer, one "word" per token. A
  token's word is its canonical string (`tokens.render`: ▁ word-start flag + whitespace-free bytes),
  so the same word is used at training and lookup time, whatever the tokenizer family.
* "word" lookup (the paper's setting with a pretrained `cc.<lang>.300.bin`; FOCUS's
  `fasttext-wordlevel`): a token is looked up by its text with the marker and surrounding
  whitespace removed, as deepfocus does with `tokenizer.decode(id).strip()`.

Vectors always come from `get_word_vector`, i.e. from character n-grams when the token is not in
fastText's word list. SALT says so ("embeddings of various words using combinations of multiple
subwords", paper Step 1); deepfocus instead drops every token outside the word list, which on real
data leaves most new tokens random (DESIGN.md). A token is *rare* (random init, paper Step 1) only
when it has no usable vector: special tokens, unused ids, an empty lookup string, a zero or
non-finite vector.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .errors import InputError
from .provenance import Meta, atomic_path, check_output
from .settings import FastTextOptions
from .tokens import TokenForm, canonical_forms, render

LOG = logging.getLogger(__name__)

LOOKUPS = ("token", "word")


def token_words(tokenizer) -> list[str | None]:
    """The fastText word of every token id (None for specials and unused ids)."""
    return [render(f) if f.kind in ("normal", "byte") else None for f in canonical_forms(tokenizer)]


def write_tokenized_corpus(corpus: Path, tokenizer, out: Path, batch_lines: int = 1024) -> int:
    """Write the corpus as space-separated token words, one line per input line; returns #tokens."""
    words = token_words(tokenizer)
    n_tokens = 0
    with open(corpus, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        batch: list[str] = []

        def flush():
            nonlocal n_tokens
            encoded = tokenizer(batch, add_special_tokens=False)["input_ids"]
            for ids in encoded:
                line = [words[i] for i in ids if i < len(words) and words[i] is not None]
                n_tokens += len(line)
                dst.write(" ".join(line) + "\n")
            batch.clear()

        for line in tqdm(src, desc="tokenizing corpus for fastText", unit=" lines", mininterval=2):
            line = line.strip()
            if line:
                batch.append(line)
            if len(batch) >= batch_lines:
                flush()
        if batch:
            flush()
    return n_tokens


def train_token_fasttext(
    corpus: str | Path,
    tokenizer,
    out_path: str | Path,
    options: FastTextOptions | None = None,
    config_hash: str | None = None,
) -> dict:
    """Train token-level fastText on `corpus` tokenized with the target tokenizer (`tokenizer`: its
    path, or a loaded tokenizer); save it atomically to `out_path` with its sidecar (which names the
    tokenizer, so `fit` can check that the model belongs to the tokenizer it is given)."""
    options = options or FastTextOptions()
    import fasttext

    from .corpora import check_text_file
    from .tokens import load_tokenizer

    corpus = check_text_file(corpus, "corpus")
    check_output(out_path)
    is_path = isinstance(tokenizer, (str, Path))
    tok = load_tokenizer(tokenizer) if is_path else tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        tokenized = Path(tmp) / "tokenized.txt"
        n_tokens = write_tokenized_corpus(corpus, tok, tokenized)
        if n_tokens == 0:
            raise InputError(f"corpus {corpus}: no tokens after tokenization (empty file?)")
        LOG.info(
            "training fastText (%s, dim=%d, epochs=%d) on %d tokens",
            options.model,
            options.dim,
            options.epochs,
            n_tokens,
        )
        model = fasttext.train_unsupervised(
            str(tokenized),
            model=options.model,
            dim=options.dim,
            epoch=options.epochs,
            minCount=options.min_count,
            neg=options.neg,
            minn=options.minn,
            maxn=options.maxn,
            bucket=options.bucket,
            thread=options.threads,
            verbose=0,
        )
    if len(model.words) == 0:
        raise InputError(
            f"corpus {corpus}: no token occurs --min-count {options.min_count} times; lower --min-count"
        )
    stats = {"n_tokens": n_tokens, "n_words": len(model.words), **options.__dict__}
    meta = Meta(
        "fasttext",
        inputs={"corpus": corpus, "tokenizer": tokenizer if is_path else None},
        params={**stats, "lookup": "token"},
        config_hash=config_hash,
    )
    with atomic_path(out_path, meta) as tmp_out:
        model.save_model(str(tmp_out))
    return stats


def load_fasttext(path: str | Path):
    from fasttext.FastText import _FastText

    path = Path(path)
    if not path.is_file():
        raise InputError(f"fastText model {path}: no such file")
    try:
        # What fasttext.load_model does, minus the stderr notice it prints on every call.
        return _FastText(model_path=str(path))
    except ValueError as exc:
        raise InputError(f"fastText model {path}: not a fastText .bin ({exc})") from exc


def _word_lookup(f: TokenForm) -> str | None:
    if f.kind not in ("normal", "byte"):
        return None
    text = f.form.decode("utf-8", errors="ignore").strip()
    return text or None


@dataclass
class AuxVectors:
    vectors: torch.Tensor  # [n_target, d] float32, zero rows where rare
    usable: torch.Tensor  # [n_target] bool: has a usable auxiliary vector
    lookup: str


def token_vectors(model, tokenizer, lookup: str = "token") -> AuxVectors:
    """fastText vector of every target token id; rare tokens are flagged, not silently zero."""
    if lookup not in LOOKUPS:
        raise InputError(f"aux lookup {lookup!r}: choose one of {LOOKUPS}")
    forms = canonical_forms(tokenizer)
    dim = model.get_dimension()
    vectors = np.zeros((len(forms), dim), dtype=np.float32)
    usable = np.zeros(len(forms), dtype=bool)
    for idx, f in enumerate(forms):
        if f.kind not in ("normal", "byte"):
            continue
        word = render(f) if lookup == "token" else _word_lookup(f)
        if not word:
            continue
        vec = model.get_word_vector(word)
        if np.isfinite(vec).all() and np.abs(vec).sum() > 0:
            vectors[idx] = vec
            usable[idx] = True
    return AuxVectors(torch.from_numpy(vectors), torch.from_numpy(usable), lookup)


CC_URL = "https://dl.fbaipublicfiles.com/fasttext/vectors-crawl/cc.{lang}.300.bin.gz"


def download_fasttext(
    lang: str, out: str | Path, url: str | None = None, progress: bool = True, config_hash: str | None = None
) -> dict:
    """Download and gunzip a pretrained fastText model (Grave et al. 2018, cc.<lang>.300.bin).

    The paper's auxiliary embeddings (paper-notes §1.1). About 4.5 GB compressed per language; the
    stream is decompressed on the fly into a temp file that is renamed only when complete.
    """
    import gzip
    import re
    import shutil
    import urllib.request

    check_output(out)
    if url is None:
        if not re.fullmatch(r"[a-z]{2,3}", lang):
            raise InputError(f"fastText language {lang!r}: expected an ISO code such as de, ar or vi")
        url = CC_URL.format(lang=lang)
    try:
        response = urllib.request.urlopen(url)  # noqa: S310 (https or a local file:// mirror)
    except (OSError, ValueError) as exc:
        raise InputError(f"fastText {url}: cannot be downloaded ({exc})") from exc
    total = int(response.headers.get("Content-Length") or 0) or None
    meta = Meta("fetch-fasttext", params={"url": url, "lang": lang}, config_hash=config_hash)
    with response, atomic_path(out, meta) as tmp:
        counted = _CountingReader(
            response,
            tqdm(
                total=total, unit="B", unit_scale=True, desc=f"cc.{lang}", disable=not progress, mininterval=2
            ),
        )
        with gzip.GzipFile(fileobj=counted) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
        counted.bar.close()
        meta.params = {**meta.params, "bytes_downloaded": counted.count}
    return {"url": url, "bytes_downloaded": counted.count}


class _CountingReader:
    """A file-like wrapper that counts bytes and advances a progress bar."""

    def __init__(self, raw, bar):
        self.raw, self.bar, self.count = raw, bar, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        self.bar.update(len(data))
        return data
