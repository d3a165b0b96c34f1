"""Bits per byte: rolling windows cover every token once; a uniform model gives the hand-computed value."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import tiny_llama
from salt_transfer.errors import InputError
from salt_transfer.evaluate import bits_per_byte, evaluate_model, rolling_windows, select_text


@pytest.mark.parametrize("n,max_len", [(1, 4), (4, 4), (5, 4), (13, 4), (9, 1)])
def test_rolling_windows_predict_every_token_once_with_causal_context(n, max_len):
    ids = list(range(100, 100 + n))
    done = 0
    for inp, n_pred in rolling_windows(ids, prefix_id=7, max_len=max_len):
        assert len(inp) <= max_len and 1 <= n_pred <= len(inp)
        # position len(inp) - n_pred + i predicts ids[done + i]: the token right before it is its context
        for i in range(n_pred):
            pos = len(inp) - n_pred + i
            previous = ids[done + i - 1] if done + i > 0 else 7
            assert inp[pos] == previous
        done += n_pred
    assert done == n


def test_select_text_is_by_bytes():
    lines = ["ab", "ñññ", "c" * 10]
    assert select_text(lines, 0) == lines
    assert select_text(lines, 3) == ["ab"]  # 2 bytes + newline
    assert select_text(lines, 10) == ["ab", "ñññ"]  # ñ is 2 bytes: 3 + 7 = 10
    assert select_text(lines, 1) == ["ab"]  # never empty


def test_uniform_model_bpb_equals_hand_computation(toks, tmp_path):
    """Zero LM head: every token has probability 1/V, so BPB = tokens * ln V / (ln 2 * bytes)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_llama(toks["source"], tmp_path / "uniform", tied=False)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    tok = AutoTokenizer.from_pretrained(path)
    lines = ["In the beginning God created the heavens.", "Niño, ¿qué haces?"]
    got = bits_per_byte(model, tok, lines, seq_len=8)
    n_tokens = sum(len(tok(x, add_special_tokens=False)["input_ids"]) for x in lines)
    n_bytes = sum(len(x.encode()) for x in lines)
    vocab = model.config.vocab_size
    assert got["tokens"] == n_tokens and got["bytes"] == n_bytes
    assert got["bpb"] == pytest.approx(n_tokens * math.log(vocab) / (math.log(2) * n_bytes), rel=1e-5)


def test_evaluate_model_writes_one_json_per_task(source_tied, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("Y dijo Dios: Sea la luz.\nAnd God said.\n")
    records = evaluate_model(
        source_tied, [f"a=bpb:{text}", f"b=bpb:{text}"], tmp_path / "out", progress=False
    )
    assert set(records) == {"a", "b"}
    saved = json.loads((tmp_path / "out" / "a.json").read_text())
    assert saved["metrics"]["bpb"] > 0 and saved["model_sha256"] and saved["text_sha256"]
    assert records["a"]["metrics"] == records["b"]["metrics"]
    with pytest.raises(InputError, match="NAME=bpb:PATH"):
        evaluate_model(source_tied, ["oops"], tmp_path / "out")
    with pytest.raises(InputError, match="needs --source-model"):
        evaluate_model(source_tied, ["align=alignment"], tmp_path / "out")
    with pytest.raises(InputError, match="no such file"):
        evaluate_model(source_tied, [f"a=bpb:{tmp_path / 'none.txt'}"], tmp_path / "out")


def test_bf16_reaches_the_harness_forward_passes(source_tied, tmp_path, monkeypatch):
    """--precision bf16 must run lm-eval's forward passes in bfloat16 too: the harness opens its own
    autocast context around each model call, which silently turns an outer one off."""
    from conftest import DATA
    from salt_transfer import evaluate as evaluate_module
    from salt_transfer.corpora import fetch_parallel
    from salt_transfer.tasks import build_tasks

    parallel = tmp_path / "parallel.test.tsv"
    fetch_parallel(
        f"file:{DATA / 'bible.es.txt'}",
        f"file:{DATA / 'bible.en.txt'}",
        {"by": "hash", "valid": 0.1, "test": 0.2},
        parallel,
    )
    build_tasks(parallel, "es", tmp_path / "tasks", items=4, max_words=11)
    seen: list[torch.dtype] = []
    original = torch.nn.Linear.forward

    def record(self, x):
        out = original(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", record)
    monkeypatch.setattr(evaluate_module, "native_bf16", lambda device: True)
    task = ["x=lm-eval:salt_xling_en2es"]
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        seen.clear()
        records = evaluate_model(
            source_tied,
            task,
            tmp_path / precision,
            include_paths=[tmp_path / "tasks"],
            precision=precision,
            progress=False,
        )
        assert records["x"]["precision"] == precision
        assert seen and set(seen) == {dtype}
    # auto follows the device; an explicit bf16 where it is not native is refused, not emulated.
    monkeypatch.setattr(evaluate_module, "native_bf16", lambda device: False)
    records = evaluate_model(
        source_tied, task, tmp_path / "auto", include_paths=[tmp_path / "tasks"], progress=False
    )
    assert records["x"]["precision"] == "fp32"
    with pytest.raises(InputError, match="no native bfloat16"):
        evaluate_model(
            source_tied, task, tmp_path / "no", include_paths=[tmp_path / "tasks"], precision="bf16"
        )
