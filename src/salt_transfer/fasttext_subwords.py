"""fastText's subword ids of many words at once, compiled (numba).

What `Dictionary::getSubwords` (fastText 0.9, src/dictionary.cc) does for one word, for every word
in one call: the word's own id when it is in the word list, then, unless the word is the EOS word
"</s>", the bucket of every character n-gram of "<word>" with minn <= n <= maxn characters, by
start character then by length. A character is a UTF-8 lead byte with its continuation bytes; the
bare "<" and ">" are not n-grams. A bucket is nwords + FNV-1a(bytes) % bucket, where each byte is
sign-extended as fastText's `int8_t` before the xor. Pruned (quantized) models map buckets through
their prune index instead: `fasttext_vectors` looks those words up one by one.

A numpy version of the same loops over n-gram lengths took 1.0-1.3 s for the 250k tokens of the
XLM-R vocabulary (fancy indexing on 1.7 M characters per length); this takes a few tens of ms.
The ids are checked against fastText's own `get_subwords` in tests/unit/test_fasttext_vectors.py.

This module imports numba at import: import it only where a vectorized lookup runs.
"""

from __future__ import annotations

import numba
import numpy as np

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


@numba.njit(cache=True, nogil=True)
def _walk(buf, begin, end, minn, maxn, bucket, nwords, out, at):  # pragma: no cover - compiled
    """Write the n-gram ids of the bytes buf[begin:end] ("<word>") from out[at] (when out has room;
    a counting pass gives an empty out) and return how many there are."""
    count = 0
    for i in range(begin, end):
        if (buf[i] & 0xC0) == 0x80:
            continue  # not the first byte of a character
        h = np.uint64(_FNV_OFFSET)  # a uint32 hash kept in uint64 (numba widens uint32 products)
        j = i
        n = 1
        while j < end and n <= maxn:
            while True:  # one character: its lead byte and continuation bytes
                b = np.uint64(buf[j])
                if b >= 128:
                    b |= np.uint64(0xFFFFFF00)  # fastText hashes int8_t bytes, sign-extended to 32 bits
                h = ((h ^ b) * np.uint64(_FNV_PRIME)) & np.uint64(0xFFFFFFFF)
                j += 1
                if j >= end or (buf[j] & 0xC0) != 0x80:
                    break
            if n >= minn and not (n == 1 and (i == begin or j == end)):
                if at + count < out.shape[0]:
                    out[at + count] = nwords + np.int64(h % np.uint64(bucket))
                count += 1
            n += 1
    return count


@numba.njit(cache=True, nogil=True)
def _subword_ids(buf, starts, own, no_ngrams, minn, maxn, bucket, nwords):  # pragma: no cover - compiled
    n_words = starts.shape[0] - 1
    counts = np.zeros(n_words, dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    for w in range(n_words):
        c = 1 if own[w] >= 0 else 0
        if not no_ngrams[w]:
            c += _walk(buf, starts[w], starts[w + 1], minn, maxn, bucket, nwords, empty, 0)
        counts[w] = c
    offsets = np.zeros(n_words + 1, dtype=np.int64)
    for w in range(n_words):
        offsets[w + 1] = offsets[w] + counts[w]
    flat = np.empty(offsets[n_words], dtype=np.int64)
    for w in range(n_words):
        at = offsets[w]
        if own[w] >= 0:
            flat[at] = own[w]
            at += 1
        if not no_ngrams[w]:
            _walk(buf, starts[w], starts[w + 1], minn, maxn, bucket, nwords, flat, at)
    return flat, offsets


def subword_ids(words: list[str], model) -> tuple[np.ndarray, np.ndarray]:
    """fastText's subword ids of each word: (flat ids, per-word offsets [n + 1]), int64."""
    args = model.f.getArgs()
    vocab = {w: i for i, w in enumerate(model.get_words(include_freq=False))}
    encoded = [("<" + w + ">").encode("utf-8") for w in words]
    starts = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=starts[1:])
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    own = np.fromiter((vocab.get(w, -1) for w in words), dtype=np.int64, count=len(words))
    no_ngrams = np.fromiter((w == "</s>" for w in words), dtype=np.bool_, count=len(words))
    return _subword_ids(
        buf, starts, own, no_ngrams, int(args.minn), int(args.maxn), int(args.bucket), len(vocab)
    )
