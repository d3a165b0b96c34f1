"""Vocabulary trimming: the text's tokenization is unchanged, rows follow their tokens, specials and byte
fallback stay, and the trimmed directory loads as a tokenizer and a model."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_llama, tiny_plm
from salt_transfer.errors import InputError
from salt_transfer.settings import TrimOptions
from salt_transfer.trim import trim_plm


@pytest.fixture(scope="module")
def text(tmp_path_factory, es_lines):
    path = tmp_path_factory.mktemp("trim") / "text.txt"
    path.write_text("\n".join(es_lines[:150]) + "\n", encoding="utf-8")
    return path


def _rows(model_dir):
    from transformers import AutoConfig

    from salt_transfer.weights import model_class_for

    model = model_class_for(AutoConfig.from_pretrained(model_dir)).from_pretrained(model_dir)
    return model.get_input_embeddings().weight.detach()


@pytest.mark.parametrize(
    "family,arch", [("unigram", "bert"), ("wordpiece", "bert"), ("bytefallback", "llama"), ("bpe", "gpt2")]
)
def test_trimmed_plm_keeps_the_texts_tokens_and_their_rows(toks, text, tmp_path, family, arch):
    from transformers import AutoTokenizer

    tok = toks[family]
    plm = tiny_llama(tok, tmp_path / "plm") if arch == "llama" else tiny_plm(tok, tmp_path / "plm", arch)
    record = trim_plm(plm, text, tmp_path / "trimmed")
    out = tmp_path / "trimmed"
    assert record["kept"] < record["original_vocab"] and record["check"]["lines_changed"] == 0
    assert record["check"]["lines_checked"] == record["text_lines"]
    assert json.loads((out / "trim.json").read_text())["kept"] == record["kept"]
    assert (tmp_path / "trimmed.meta.json").is_file()  # the sidecar comes with the artifact
    new_tok = AutoTokenizer.from_pretrained(out)
    lines = text.read_text(encoding="utf-8").splitlines()
    old_ids = tok(lines, add_special_tokens=False)["input_ids"]
    new_ids = new_tok(lines, add_special_tokens=False)["input_ids"]
    old_rows, new_rows = _rows(plm), _rows(out)
    assert new_rows.shape[0] == record["kept"]
    for a, b in zip(old_ids, new_ids):
        assert [tok.convert_ids_to_tokens(i) for i in a] == [new_tok.convert_ids_to_tokens(i) for i in b]
        torch.testing.assert_close(new_rows[b], old_rows[a])  # each token keeps its own row
    for role in ("unk_token", "pad_token", "eos_token", "bos_token"):
        if getattr(tok, role, None) is not None:
            assert getattr(new_tok, role) == getattr(tok, role)
    if family == "bytefallback":
        assert (
            record["kept_by_reason"]["byte_fallback"]
            + sum(
                t.startswith("<0x")
                for t in new_tok.convert_ids_to_tokens(sorted({i for s in new_ids for i in s}))
            )
            >= 256 - 1
            and new_tok.convert_tokens_to_ids("<0x41>") is not None
        )


def test_min_count_drops_rare_tokens(toks, text, tmp_path):
    plm = tiny_plm(toks["unigram"], tmp_path / "plm", "bert")
    all_tokens = trim_plm(plm, text, tmp_path / "a")["kept"]
    frequent = trim_plm(plm, text, tmp_path / "b", TrimOptions(min_count=5))["kept"]
    assert frequent < all_tokens


def test_bad_inputs(toks, text, tmp_path):
    plm = tiny_plm(toks["unigram"], tmp_path / "plm", "bert")
    with pytest.raises(InputError, match="no config.json"):
        trim_plm(tmp_path / "nowhere", text, tmp_path / "x")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputError, match="no tokens"):
        trim_plm(plm, tmp_path / "empty.txt", tmp_path / "x")
    (tmp_path / "latin1.txt").write_bytes("canción".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        trim_plm(plm, tmp_path / "latin1.txt", tmp_path / "x")
