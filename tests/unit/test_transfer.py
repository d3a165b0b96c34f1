"""`salt-transfer transfer` / `salt_transfer.transfer`: one call, the same bytes as the workflow's chain."""

from __future__ import annotations

import pytest

from salt_transfer.cli import main

FT = ["--dim", "16", "--epochs", "2", "--min-count", "2", "--bucket", "20000"]


def chain(source, plm, corpus, work, method="salt"):
    """The workflow's overlap -> fasttext -> fit -> transplant, one command each (as the rules run them)."""
    work.mkdir()
    ov, st, ft = work / "overlap.parquet", work / "stats.json", work / "fasttext.bin"
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
                str(ov),
                "--stats",
                str(st),
            ]
        )
        == 0
    )
    assert (
        main(["fasttext", "-q", "--corpus", str(corpus), "--tokenizer", str(plm), "--out", str(ft), *FT]) == 0
    )
    emb = work / "embeddings.safetensors"
    assert (
        main(
            [
                "fit",
                "-q",
                "--method",
                method,
                "--source-model",
                str(source),
                "--overlap",
                str(ov),
                "--plm",
                str(plm),
                "--target-tokenizer",
                str(plm),
                "--aux",
                str(ft),
                "--out",
                str(emb),
                "--report",
                str(work / "fit.json"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
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
                str(work / "model"),
                "--language",
                "es",
            ]
        )
        == 0
    )
    return work / "model"


def files(model_dir):
    return {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}


def test_transfer_command_writes_the_same_bytes_as_the_chain(source_tied, plm_bert, es_corpus, tmp_path):
    expected = chain(source_tied, plm_bert, es_corpus, tmp_path / "chain")
    out = tmp_path / "one" / "model"
    assert (
        main(
            [
                "transfer",
                "-q",
                "--source",
                str(source_tied),
                "--plm",
                str(plm_bert),
                "--corpus",
                str(es_corpus),
                "--method",
                "salt",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--language",
                "es",
                *FT,
            ]
        )
        == 0
    )
    assert files(out) == files(expected)  # weights, config, tokenizer, transplant.json, model card
    assert (out.parent / "model.meta.json").is_file()
    work = out.with_name("model.work")
    for name in ("overlap.parquet", "fasttext.bin", "embeddings.safetensors"):
        assert (work / name).read_bytes() == (tmp_path / "chain" / name).read_bytes(), name
        assert (work / f"{name}.meta.json").is_file()


def test_transfer_function_with_a_given_fasttext(source_tied, plm_bert, aux_bert, tmp_path):
    from salt_transfer import transfer
    from salt_transfer.settings import FastTextOptions

    record = transfer(
        source_tied,
        plm_bert,
        tmp_path / "m",
        fasttext=aux_bert,
        method="focus",
        device="cpu",
        fasttext_options=FastTextOptions(),
        progress=False,
    )
    assert record["aux"] == str(aux_bert) and (tmp_path / "m" / "model.safetensors").is_file()
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "m").get_input_embeddings().weight.shape[0] > 0


def test_transfer_needs_text_or_vectors_for_aux_methods(source_tied, plm_bert, tmp_path):
    from salt_transfer import transfer
    from salt_transfer.errors import InputError

    with pytest.raises(InputError, match="give --corpus TEXT or --fasttext BIN"):
        transfer(source_tied, plm_bert, tmp_path / "m", method="salt")
    record = transfer(source_tied, plm_bert, tmp_path / "r", method="random", device="cpu", progress=False)
    assert record["aux"] is None
