"""`salt-transfer fit` from files: outputs, reproducibility, and one-line errors for bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from salt_transfer.cli import build_parser, main


def fit_args(source, plm, overlap, aux, out_dir, method="salt", extra=()):
    return [
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
        str(out_dir / "emb.safetensors"),
        "--report",
        str(out_dir / "fit.json"),
        "--device",
        "cpu",
        *extra,
    ]


@pytest.mark.parametrize("method", ["salt", "multivariate", "ofa"])
def test_same_seed_gives_byte_identical_embeddings(
    method, source_tied, plm_bert, overlap_bert, aux_bert, tmp_path
):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, seed in ((a, "3"), (b, "3"), (c, "4")):
        d.mkdir()
        assert main(fit_args(source_tied, plm_bert, overlap_bert, aux_bert, d, method, ["--seed", seed])) == 0
    assert (a / "emb.safetensors").read_bytes() == (b / "emb.safetensors").read_bytes()
    assert (a / "emb.safetensors").read_bytes() != (c / "emb.safetensors").read_bytes()


def test_fit_outputs_report_and_provenance(source_untied, plm_bert, overlap_bert, aux_bert, tmp_path):
    assert main(fit_args(source_untied, plm_bert, overlap_bert, aux_bert, tmp_path)) == 0
    tensors = load_file(tmp_path / "emb.safetensors")
    assert set(tensors) == {"input", "output"}  # untied source head
    report = json.loads((tmp_path / "fit.json").read_text())
    for key in ("n_shared", "n_new", "n_random", "k", "rare_examples", "timings", "device", "seed", "solver"):
        assert key in report
    assert report["k"]["min"] >= 1 and report["aux_lookup"] == "token"
    assert "[MASK]" in report["rare_examples"]  # no vector, no source counterpart: random init
    meta = json.loads((tmp_path / "emb.safetensors.meta.json").read_text())
    assert meta["artifact_sha256"] and meta["inputs"]["overlap"]["sha256"]
    assert meta["params"]["method"] == "salt" and meta["seed"] == 0 and meta["device"] == "cpu"
    assert meta["versions"]["torch"]


def run_cli(args):
    """Run the real console entry point in a subprocess: (exit code, stderr lines)."""
    proc = subprocess.run([sys.executable, "-m", "salt_transfer", *args], capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, lines


def assert_one_line_error(code, lines, *needles):
    assert code == 2, lines
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, lines
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_missing_path_is_named(source_tied, plm_bert, aux_bert, tmp_path):
    missing = tmp_path / "nope.parquet"
    assert_one_line_error(
        *run_cli(fit_args(source_tied, plm_bert, missing, aux_bert, tmp_path)), str(missing)
    )


def test_missing_source_model_is_named(plm_bert, overlap_bert, aux_bert, tmp_path):
    missing = tmp_path / "no-model"
    assert_one_line_error(
        *run_cli(fit_args(missing, plm_bert, overlap_bert, aux_bert, tmp_path)), str(missing)
    )


def test_mismatched_dimensions_are_named(source_tied, overlap_bert, aux_bert, tmp_path, toks):
    """A PLM with fewer embedding rows than its tokenizer (not the PLM of this overlap)."""
    from conftest import tiny_plm, wordpiece

    small_tok = wordpiece(["uno dos tres cuatro cinco seis"] * 5, vocab_size=60)
    small = tiny_plm(small_tok, tmp_path / "small_plm", "bert")
    code, lines = run_cli(fit_args(source_tied, small, overlap_bert, aux_bert, tmp_path))
    assert_one_line_error(code, lines, "rows", "500")


def test_nan_rows_are_named(source_tied, plm_bert, overlap_bert, aux_bert, tmp_path):
    import shutil

    broken = tmp_path / "broken_llm"
    shutil.copytree(source_tied, broken)
    weights = load_file(broken / "model.safetensors")
    key = next(k for k in weights if "embed_tokens" in k)
    weights[key][17, 3] = float("nan")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    assert_one_line_error(
        *run_cli(fit_args(broken, plm_bert, overlap_bert, aux_bert, tmp_path)), "row 17", "NaN"
    )


def test_empty_overlap_is_named_by_overlap_command(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    for name, vocab in (("greek", {"α": 0, "β": 1}), ("latin", {"a": 0, "b": 1})):
        t = Tokenizer(models.WordLevel(vocab, unk_token=list(vocab)[0]))
        t.pre_tokenizer = pre_tokenizers.Metaspace()
        PreTrainedTokenizerFast(tokenizer_object=t).save_pretrained(tmp_path / name)
    code, lines = run_cli(
        [
            "overlap",
            "--target-tokenizer",
            str(tmp_path / "greek"),
            "--source-tokenizer",
            str(tmp_path / "latin"),
            "--out",
            str(tmp_path / "o.parquet"),
            "--stats",
            str(tmp_path / "s.json"),
        ]
    )
    assert_one_line_error(code, lines, "share no token")
    assert not (tmp_path / "o.parquet").exists()


def test_method_needs_are_checked(source_tied, overlap_bert, tmp_path):
    code, lines = run_cli(
        [
            "fit",
            "--method",
            "salt",
            "--source-model",
            str(source_tied),
            "--overlap",
            str(overlap_bert),
            "--out",
            str(tmp_path / "e.safetensors"),
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert_one_line_error(code, lines, "--plm")


def test_bad_option_is_named(source_tied, plm_bert, overlap_bert, aux_bert, tmp_path):
    code, lines = run_cli(
        fit_args(source_tied, plm_bert, overlap_bert, aux_bert, tmp_path, "ofa", ["--option", "rank=abc"])
    )
    assert_one_line_error(code, lines, "rank")


def test_every_option_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert {"fetch-model", "overlap", "aux", "fit", "transplant", "methods"} <= set(subparsers)
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    out = subprocess.run(
        [sys.executable, "-m", "salt_transfer", "fit", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--method" in out.stdout and "procrustes" in out.stdout


def test_methods_command_lists_papers(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "salt" in out and "2505.10945" in out and "Hewitt" in out


def test_float64_output(source_tied, plm_bert, overlap_bert, aux_bert, tmp_path):
    assert (
        main(
            fit_args(source_tied, plm_bert, overlap_bert, aux_bert, tmp_path, "focus", ["--dtype", "float64"])
        )
        == 0
    )
    assert load_file(tmp_path / "emb.safetensors")["input"].dtype == torch.float64


def test_transformers_is_only_reached_from_the_calling_thread(
    source_tied, plm_bert, overlap_bert, aux_bert, tmp_path, monkeypatch
):
    # transformers' lazy imports are not thread-safe: a PLM layout resolved on a loader thread while
    # the tokenizer loads on the main one failed CI with "cannot import name 'AutoTokenizer'". Every
    # function of a fit that may import transformers must run on the thread that called the fit.
    import threading

    from salt_transfer import fit

    threads = []

    def on_thread(name, function):
        def wrapper(*args, **kwargs):
            threads.append((name, threading.current_thread().name))
            return function(*args, **kwargs)

        monkeypatch.setattr(fit, name, wrapper)

    for name in ("embedding_layout", "load_tokenizer", "load_fasttext"):
        on_thread(name, getattr(fit, name))
    assert main(fit_args(source_tied, plm_bert, overlap_bert, aux_bert, tmp_path)) == 0
    assert {name for name, _ in threads} >= {"embedding_layout", "load_tokenizer"}
    assert {thread for _, thread in threads} == {threading.current_thread().name}, threads
