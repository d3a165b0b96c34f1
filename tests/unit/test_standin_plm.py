"""Stand-in PLMs: one per architecture, with the tokenizer family that architecture uses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from salt_transfer.errors import InputError
from salt_transfer.settings import StandinOptions as PlmOptions
from salt_transfer.standin_plm import train_standin_plm
from salt_transfer.tokens import load_tokenizer, tokenizer_family
from salt_transfer.weights import embedding_layout

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


@pytest.mark.parametrize("arch", ["encoder", "decoder", "encoder-decoder"])
def test_tokenizers_are_identical_across_processes(arch, es_corpus):
    """The tokenizers' hash maps are seeded per process, so determinism is checked in two fresh
    processes (HF's WordPiece and Unigram trainers failed this: tokenizers#1794)."""
    script = textwrap.dedent(
        f"""
        import hashlib
        from salt_transfer.standin_plm import train_tokenizer
        lines = open({str(es_corpus)!r}, encoding="utf-8").read().splitlines()
        tok = train_tokenizer({arch!r}, lines, 600)
        print(hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest())
        """
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 64
