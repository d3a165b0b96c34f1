"""Canonical token forms and vocabulary overlap across SentencePiece, byte-level BPE and WordPiece."""

from __future__ import annotations

import json

import pytest

from salt_transfer.errors import InputError
from salt_transfer.tokens import (
    Family,
    canonical_forms,
    compute_overlap,
    read_overlap,
    render,
    render_bytes,
    special_roles,
    token_form,
    tokenizer_family,
    write_overlap,
)

BYTE = Family("byte_level")
SP = Family("sentencepiece", byte_fallback=True)
WP = Family("wordpiece")


def test_families_are_detected_from_the_pipeline(toks):
    assert tokenizer_family(toks["source"]).name == "byte_level"
    assert tokenizer_family(toks["wordpiece"]).name == "wordpiece"
    assert tokenizer_family(toks["unigram"]) == Family("sentencepiece", byte_fallback=False)
    assert tokenizer_family(toks["bytefallback"]) == Family("sentencepiece", byte_fallback=True)


@pytest.mark.parametrize(
    "token,family,form,start",
    [
        ("\u0120hola", BYTE, b"hola", True),  # Ġhola
        ("\u2581hola", SP, b"hola", True),  # ▁hola
        ("hola", WP, b"hola", True),  # a WordPiece token that does not continue a word starts one
        ("##s", WP, b"s", False),
        ("s", BYTE, b"s", False),
        ("s", SP, b"s", False),
        ("\u00c3\u00b3", BYTE, "ó".encode(), False),  # byte-level 'Ã³' is the two UTF-8 bytes of ó
        ("\u00c3", BYTE, b"\xc3", False),  # a lone lead byte
        ("<0xC3>", SP, b"\xc3", False),  # byte fallback for the same byte
        ("\u2581de\u2581la", SP, b"de la", True),  # multi-word piece: inner ▁ is a space
        ("\u010a", BYTE, b"\n", False),  # Ċ
        ("<0x0A>", SP, b"\n", False),
        ("\u2581", SP, b"", True),
        ("\u0120", BYTE, b"", True),
    ],
)
def test_token_form(token, family, form, start):
    f = token_form(token, family)
    assert (f.form, f.word_start) == (form, start)


def test_byte_fallback_tokens_are_marked_as_bytes():
    assert token_form("<0x41>", SP).kind == "byte"
    assert token_form("<0x41>", Family("sentencepiece", byte_fallback=False)).kind == "normal"


def test_render_is_whitespace_free_and_marks_invalid_bytes():
    assert render_bytes(b"hola") == "hola"
    assert render_bytes(b"a b\n") == "a<0x20>b<0x0A>"
    assert render_bytes(b"\xc3") == "<0xC3>"
    assert render_bytes("ó".encode() + b"\xff") == "ó<0xFF>"
    f = token_form("\u0120hola", BYTE)
    assert render(f) == "\u2581hola"


def test_special_tokens_are_excluded_from_string_matching(toks):
    forms = canonical_forms(toks["wordpiece"])
    roles = special_roles(toks["wordpiece"])
    assert set(roles) == {"pad", "unk", "cls", "sep", "mask"}
    assert all(forms[i].kind == "special" for i in roles.values())


@pytest.mark.parametrize("target", ["bpe", "wordpiece", "unigram", "bytefallback"])
def test_overlap_pairs_have_equal_forms_across_families(toks, target):
    """Every exact pair stands for the same bytes and word-start flag; specials pair by role."""
    target_tok, source_tok = toks[target], toks["source"]
    result = compute_overlap(target_tok, source_tok)
    t_forms, s_forms = canonical_forms(target_tok), canonical_forms(source_tok)
    table = result.table
    assert len(table) == result.stats["n_shared"] > 20
    assert table["target_id"].is_unique
    for row in table.itertuples():
        if row.match == "exact":
            t, s = t_forms[row.target_id], s_forms[row.source_id]
            assert (t.form, t.word_start) == (s.form, s.word_start)
        else:
            assert row.match == "special"
            assert t_forms[row.target_id].kind == "special"
    # Completeness: no unmatched target token has an exact counterpart in the source.
    s_keys = {(f.form, f.word_start) for f in s_forms if f.kind in ("normal", "byte")}
    matched = set(table["target_id"])
    for idx, f in enumerate(t_forms):
        if f.kind in ("normal", "byte") and idx not in matched and (f.form or f.word_start):
            assert (f.form, f.word_start) not in s_keys


def test_byte_fallback_tokens_match_byte_level_bytes(toks):
    result = compute_overlap(toks["bytefallback"], toks["source"])
    vocab = toks["bytefallback"].get_vocab()
    src = toks["source"]
    row = result.table.set_index("target_id").loc[vocab["<0xC3>"]]
    assert src.convert_ids_to_tokens(int(row.source_id)) == "\u00c3"  # Ã: byte 0xC3 in GPT-2's alphabet
    assert result.stats["target_byte_tokens"] == 256
    assert result.stats["target_byte_tokens_shared"] >= 250


def test_special_tokens_match_by_role(toks):
    src = toks["source"]  # <|endoftext|> is bos, eos and unk
    eot = src.convert_tokens_to_ids("<|endoftext|>")
    table = compute_overlap(toks["wordpiece"], src).table.set_index("target_id")
    wp = toks["wordpiece"]
    for name in ("[CLS]", "[SEP]", "[UNK]"):  # cls -> bos, sep -> eos, unk -> unk
        assert table.loc[wp.convert_tokens_to_ids(name), "source_id"] == eot
        assert table.loc[wp.convert_tokens_to_ids(name), "match"] == "special"
    # The source has no mask or pad role: those targets stay new.
    assert wp.convert_tokens_to_ids("[MASK]") not in table.index
    assert wp.convert_tokens_to_ids("[PAD]") not in table.index


def test_fuzzy_match_is_optional_and_recorded(toks):
    """WordPiece lowercases; fuzzy matching pairs its 'dios' with the source's capitalized 'ĠDios'."""
    wp, src = toks["wordpiece"], toks["source"]
    exact = compute_overlap(wp, src)
    fuzzy = compute_overlap(wp, src, fuzzy=True)
    assert exact.stats["by_match"]["fuzzy"] == 0
    assert fuzzy.stats["by_match"]["fuzzy"] > 0
    assert fuzzy.stats["n_shared"] == exact.stats["n_shared"] + fuzzy.stats["by_match"]["fuzzy"]
    t_forms, s_forms = canonical_forms(wp), canonical_forms(src)
    for row in fuzzy.table[fuzzy.table["match"] == "fuzzy"].itertuples():
        assert (
            t_forms[row.target_id].form.decode().casefold() == s_forms[row.source_id].form.decode().casefold()
        )


def test_empty_overlap_is_an_error():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    greek = Tokenizer(models.WordLevel({"α": 0, "β": 1, "γ": 2}, unk_token="γ"))
    greek.pre_tokenizer = pre_tokenizers.Metaspace()
    latin = Tokenizer(models.WordLevel({"a": 0, "b": 1}, unk_token="b"))
    latin.pre_tokenizer = pre_tokenizers.Metaspace()
    with pytest.raises(InputError, match="share no token"):
        compute_overlap(
            PreTrainedTokenizerFast(tokenizer_object=greek), PreTrainedTokenizerFast(tokenizer_object=latin)
        )


def test_overlap_files_round_trip(toks, tmp_path):
    result = compute_overlap(toks["unigram"], toks["source"])
    write_overlap(result, tmp_path / "o.parquet", tmp_path / "s.json")
    table, sizes = read_overlap(tmp_path / "o.parquet")
    assert sizes == {"n_target": 400, "n_source": 700, "n_shared": len(table), "fuzzy": False}
    assert list(table.columns)[:2] == ["target_id", "source_id"]
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["n_shared"] == len(table)
    assert stats["target_coverage"] == pytest.approx(len(table) / 400)
    assert sum(stats["by_match"].values()) == len(table)
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


def test_missing_overlap_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_overlap(tmp_path / "nope.parquet")
