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
data leaves most new tokens random (docs/design.md). A token is *rare* (random init, paper Step 1) only
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

from .errors import InputError
from .progress import track
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

        for line in track(src, "tokenizing corpus for fastText", bar=False, unit="lines"):
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
    from .tokens import load_tokenizer, tokenizer_fingerprint

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
        try:
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
        except (RuntimeError, ValueError) as exc:  # e.g. "Empty vocabulary. Try a smaller -minCount value."
            raise InputError(
                f"fastText on {corpus} with --min-count {options.min_count}: {str(exc).splitlines()[0]}"
            ) from exc
    if len(model.words) == 0:
        raise InputError(
            f"corpus {corpus}: no token occurs --min-count {options.min_count} times; lower --min-count"
        )
    stats = {"n_tokens": n_tokens, "n_words": len(model.words), **options.__dict__}
    meta = Meta(
        "fasttext",
        inputs={"corpus": corpus, "tokenizer": tokenizer if is_path else None},
        params={
            **stats,
            "lookup": "token",
            "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer) if is_path else None,
        },
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


# Largest fastText input matrix (words + buckets) x dim copied for the vectorized lookup; beyond it
# (pretrained cc.<lang>.300.bin: 4M x 300 = 4.8 GB) words are looked up one by one.
_MATRIX_BYTES = 1536 * 1024**2


def _vectors_vectorized(model, words: list[str]) -> np.ndarray:
    """`get_word_vector` of every word at once: the mean of the input rows of its subword ids."""
    from .fasttext_subwords import subword_ids  # numba: imported where a lookup runs

    flat, offsets = subword_ids(words, model)
    matrix = torch.from_numpy(model.get_input_matrix())
    counts = np.diff(offsets)
    sums = torch.nn.functional.embedding_bag(
        torch.from_numpy(flat), matrix, torch.from_numpy(offsets[:-1]), mode="sum"
    ).numpy()
    # fastText multiplies the float32 sum by float(1.0 / n): the same rounding, for equal vectors.
    scale = np.where(counts > 0, (1.0 / np.maximum(counts, 1)).astype(np.float32), np.float32(0))
    return sums * scale[:, None]


def token_vectors(
    model, tokenizer, lookup: str = "token", forms: list[TokenForm] | None = None
) -> AuxVectors:
    """fastText vector of every target token id; rare tokens are flagged, not silently zero.

    Token-level models (the default) are looked up for all tokens at once (`fasttext_subwords`:
    identical vectors, seconds instead of a Python call per token); pretrained word-level models,
    whose input matrix is too large to copy, one word at a time.
    """
    if lookup not in LOOKUPS:
        raise InputError(f"aux lookup {lookup!r}: choose one of {LOOKUPS}")
    forms = forms if forms is not None else canonical_forms(tokenizer)  # callers that have them pass them
    dim = model.get_dimension()
    vectors = np.zeros((len(forms), dim), dtype=np.float32)
    usable = np.zeros(len(forms), dtype=bool)
    ids, words = [], []
    for idx, f in enumerate(forms):
        if f.kind not in ("normal", "byte"):
            continue
        word = render(f) if lookup == "token" else _word_lookup(f)
        if word:
            ids.append(idx)
            words.append(word)
    args = model.f.getArgs()
    matrix_bytes = (len(model.get_words()) + int(args.bucket)) * dim * 4
    if words and matrix_bytes <= _MATRIX_BYTES and not model.is_quantized():
        found = _vectors_vectorized(model, words)
    else:
        found = (
            np.stack([model.get_word_vector(w) for w in words]) if words else np.zeros((0, dim), np.float32)
        )
    ok = np.isfinite(found).all(axis=1) & (np.abs(found).sum(axis=1) > 0)
    vectors[np.array(ids, dtype=np.int64)[ok]] = found[ok]
    usable[np.array(ids, dtype=np.int64)[ok]] = True
    return AuxVectors(torch.from_numpy(vectors), torch.from_numpy(usable), lookup)
