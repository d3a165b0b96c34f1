"""Stand-in PLMs: one per architecture, with the tokenizer family that architecture uses."""

from __future__ import annotations

import json

import pytest

from salt_transfer.errors import InputError
from salt_transfer.models import embedding_layout
from salt_transfer.plm import PlmOptions, train_standin_plm
from salt_transfer.tokens import load_tokenizer, tokenizer_family

TINY = PlmOptions(vocab_size=300, hidden=16, layers=1, heads=2, steps=4, batch_size=4, seq_len=32)


@pytest.mark.parametrize(
    "arch,family,model_class",
    [
        ("encoder", "wordpiece", "BertForMaskedLM"),
        ("decoder", "byte_level", "GPT2LMHeadModel"),
        ("encoder-decoder", "sentencepiece", "T5ForConditionalGeneration"),
    ],
)
def test_standin_plm_per_architecture(arch, family, model_class, es_corpus, tmp_path):
    record = train_standin_plm(arch, es_corpus, tmp_path / arch, TINY, progress=False)
    assert record["model_class"] == model_class and record["options"]["steps"] == 4
    saved = json.loads((tmp_path / arch / "train_plm.json").read_text())
    assert saved["note"].startswith("stand-in")
    tok = load_tokenizer(tmp_path / arch)
    assert tokenizer_family(tok).name == family
    layout = embedding_layout(tmp_path / arch, causal_lm=False)
    assert layout.input.n_rows >= len(tok) and layout.input.dim == 16


def test_bad_arch_and_tiny_corpus(tmp_path):
    (tmp_path / "c.txt").write_text("uno dos\n")
    with pytest.raises(InputError, match="choose one of"):
        train_standin_plm("rnn", tmp_path / "c.txt", tmp_path / "m", TINY)
    with pytest.raises(InputError, match="too little"):
        train_standin_plm("decoder", tmp_path / "c.txt", tmp_path / "m", TINY)
