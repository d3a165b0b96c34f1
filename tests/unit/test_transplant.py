"""Transplant round trip: the saved directory loads, carries the fitted rows, tokenizes causally, generates."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import tiny_llama, tiny_plm
from salt_transfer.cli import main

TEXT = "Y dijo Dios: Sea la luz"


def fit_and_transplant(source, plm, workdir, method="focus", corpus=None):
    overlap, aux = workdir / "o.parquet", workdir / "ft.bin"
    assert (
        main(
            [
                "overlap",
                "-q",
                "--target-tokenizer",
                str(plm),
                "--source-tokenizer",
                str(source),
                "--out",
                str(overlap),
                "--stats",
                str(workdir / "s.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "aux",
                "-q",
                "--corpus",
                str(corpus),
                "--tokenizer",
                str(plm),
                "--out",
                str(aux),
                "--dim",
                "8",
                "--epochs",
                "1",
                "--min-count",
                "1",
                "--bucket",
                "5000",
            ]
        )
        == 0
    )
    emb = workdir / "emb.safetensors"
    assert (
        main(
            [
                "fit",
                "-q",
                "--method",
                method,
                "--source-model",
                str(source),
                "--plm",
                str(plm),
                "--overlap",
                str(overlap),
                "--aux",
                str(aux),
                "--out",
                str(emb),
                "--report",
                str(workdir / "f.json"),
            ]
        )
        == 0
    )
    model_dir = workdir / "model"
    assert (
        main(
            [
                "transplant",
                "-q",
                "--source-model",
                str(source),
                "--target-tokenizer",
                str(plm),
                "--embeddings",
                str(emb),
                "--out",
                str(model_dir),
            ]
        )
        == 0
    )
    return emb, model_dir


@pytest.mark.parametrize("tied", [True, False])
def test_round_trip_with_an_encoder_plm(tied, source_tied, source_untied, plm_bert, es_corpus, tmp_path):
    source = source_tied if tied else source_untied
    emb, model_dir = fit_and_transplant(source, plm_bert, tmp_path, corpus=es_corpus)
    fitted = load_file(emb)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert torch.equal(model.get_input_embeddings().weight, fitted["input"])
    head = model.get_output_embeddings().weight
    if tied:
        assert head.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    else:
        assert torch.equal(head, fitted["output"])
    assert model.config.vocab_size == len(tok) == fitted["input"].shape[0]
    # BERT's [CLS] ... [SEP] is gone; the source (GPT-2 style) adds no bos, so neither do we.
    ids = tok(TEXT)["input_ids"]
    assert tok.cls_token_id not in ids and tok.sep_token_id not in ids
    assert tok.convert_ids_to_tokens(ids)[0] == "y"
    assert (model.config.bos_token_id, model.config.eos_token_id) == (tok.bos_token_id, tok.eos_token_id)
    assert tok.eos_token == "[SEP]" and tok.bos_token == "[CLS]"
    out = model.generate(**tok(TEXT, return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert out.shape[1] == len(ids) + 4
    record = json.loads((model_dir / "transplant.json").read_text())
    assert record["method"] == "focus" and record["tied_head"] is tied
    assert (tmp_path / "model.meta.json").is_file()


def test_bos_follows_the_source_convention(toks, es_corpus, tmp_path):
    """A Llama-style source that prepends <s>; a T5 target that appends </s>: result prepends bos only."""
    from conftest import sp_bpe_byte_fallback

    src_tok = sp_bpe_byte_fallback(
        [line for line in es_corpus.read_text().splitlines()[:300]], vocab_size=400
    )
    source = tiny_llama(src_tok, tmp_path / "llm_bos")
    plm = tiny_plm(toks["unigram"], tmp_path / "t5", "t5")
    _, model_dir = fit_and_transplant(source, plm, tmp_path, method="salt", corpus=es_corpus)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(TEXT)["input_ids"]
    eos = tok.eos_token_id
    assert ids[-1] != eos  # T5's appended </s> is gone
    assert ids[0] == tok.bos_token_id == eos  # T5 has no bos: eos doubles as bos (GPT-2 convention)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False).shape[1] == len(ids) + 3


def test_decoder_plm_round_trip(toks, source_tied, es_corpus, tmp_path):
    plm = tiny_plm(toks["bpe"], tmp_path / "gpt2", "gpt2")
    emb, model_dir = fit_and_transplant(source_tied, plm, tmp_path, method="salt", corpus=es_corpus)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.decode(tok(TEXT)["input_ids"]) == TEXT
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    torch.testing.assert_close(model.get_input_embeddings().weight, load_file(emb)["input"])


def test_wrong_embeddings_for_the_tokenizer_is_an_error(source_tied, plm_bert, toks, tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"input": torch.zeros(7, 32)}, bad)
    code = main(
        [
            "transplant",
            "-q",
            "--source-model",
            str(source_tied),
            "--target-tokenizer",
            str(plm_bert),
            "--embeddings",
            str(bad),
            "--out",
            str(tmp_path / "m"),
        ]
    )
    assert code == 2 and not (tmp_path / "m").exists()
