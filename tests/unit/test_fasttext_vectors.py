"""Auxiliary fastText vectors: token-level training, lookups, rare-token flags."""

from __future__ import annotations

import numpy as np
import pytest

from salt_transfer.errors import InputError
from salt_transfer.fasttext_vectors import (
    FastTextOptions,
    load_fasttext,
    token_vectors,
    token_words,
    train_token_fasttext,
)
from salt_transfer.tokens import special_token_ids


def test_token_level_fasttext_trains_on_tokenized_corpus(toks, es_corpus, tmp_path):
    tok = toks["wordpiece"]
    stats = train_token_fasttext(
        es_corpus, tok, tmp_path / "ft.bin", FastTextOptions(dim=12, epochs=1, min_count=1, bucket=5000)
    )
    assert stats["n_tokens"] > 10000 and stats["n_words"] > 200
    model = load_fasttext(tmp_path / "ft.bin")
    words = set(model.words)
    assert "\u2581dios" in words and "##s" not in words  # canonical token words, not raw strings
    assert "s" in words


def test_fasttext_training_is_deterministic_with_one_thread(toks, es_corpus, tmp_path):
    opts = FastTextOptions(dim=8, epochs=1, min_count=2, bucket=3000, threads=1)
    for name in ("a.bin", "b.bin"):
        train_token_fasttext(es_corpus, toks["bpe"], tmp_path / name, opts)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_specials_and_unseen_ngrams_are_rare_not_zero(toks, aux_bert):
    tok = toks["wordpiece"]
    aux = token_vectors(load_fasttext(aux_bert), tok, lookup="token")
    specials = special_token_ids(tok)
    assert not aux.usable[list(specials)].any()
    usable = aux.usable.numpy()
    norms = np.linalg.norm(aux.vectors.numpy(), axis=1)
    assert (norms[usable] > 0).all() and (norms[~usable] == 0).all()
    assert usable.mean() > 0.9


def test_word_lookup_strips_markers(toks, aux_bert):
    """Word lookup (pretrained cc.<lang>.bin setting) uses the bare text: '▁dios' is looked up as 'dios'."""
    tok = toks["wordpiece"]
    model = load_fasttext(aux_bert)
    aux = token_vectors(model, tok, lookup="word")
    idx = tok.convert_tokens_to_ids("dios")
    np.testing.assert_allclose(aux.vectors[idx].numpy(), model.get_word_vector("dios"))
    words = token_words(tok)
    assert words[idx] == "\u2581dios"


def test_bad_inputs(toks, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_fasttext(tmp_path / "missing.bin")
    (tmp_path / "junk.bin").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a fastText"):
        load_fasttext(tmp_path / "junk.bin")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(InputError, match="no tokens"):
        train_token_fasttext(
            tmp_path / "empty.txt", toks["bpe"], tmp_path / "x.bin", FastTextOptions(bucket=100)
        )


def test_vectorized_subword_ids_are_fasttexts_own(toks, aux_bert):
    """The compiled lookup gives, for every word, the ids fastText's `get_subwords` gives: in-vocabulary
    and unseen words, 2-, 3- and 4-byte UTF-8 characters (sign-extended bytes in the hash), the EOS
    word (no n-grams), one-character words; and the vectors of `get_word_vector`."""
    from salt_transfer.fasttext_subwords import subword_ids
    from salt_transfer.fasttext_vectors import _vectors_vectorized

    model = load_fasttext(aux_bert)
    words = [w for w in token_words(toks["wordpiece"]) if w][:300]
    words += ["ñandú", "\u2581corazón", "日本語", "😀x", "</s>", "a", "\u2581", "<0x20>", "x" * 40]
    flat, offsets = subword_ids(words, model)
    assert offsets[0] == 0 and offsets[-1] == len(flat)
    for i, word in enumerate(words):
        np.testing.assert_array_equal(
            flat[offsets[i] : offsets[i + 1]], model.get_subwords(word)[1], err_msg=word
        )
    expected = np.stack([model.get_word_vector(w) for w in words])
    np.testing.assert_allclose(_vectors_vectorized(model, words), expected, rtol=1e-6, atol=1e-7)
