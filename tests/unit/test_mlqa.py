"""MLQA without the hub's loading script: the official zip -> JSONL + tasks that include lm-eval's own
MLQA task (prompt, generation, EM/F1), run through lm-evaluation-harness itself on a tiny model."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import read_lines
from http_server import Served, serve
from paper_assets import mlqa_zip
from salt_transfer.errors import InputError
from salt_transfer.mlqa import fetch_mlqa, is_mlqa_task, pairs_for


@pytest.fixture(scope="module")
def mlqa_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlqa") / "de"
    data = mlqa_zip(pairs_for("de"), read_lines("bible.es.txt")[:5], questions=3)
    with serve(Served({"/MLQA_V1.zip": data}, drop_after=len(data) // 2, drops=1)) as base:
        counts = fetch_mlqa("de", out, url=base + "/MLQA_V1.zip", progress=False)
    assert counts == {f"salt_mlqa_{c}_{q}/{s}": 3 for c, q in pairs_for("de") for s in ("test", "validation")}
    return out


def test_tasks_include_lm_evals_mlqa_and_read_the_jsonl(mlqa_dir):
    config = yaml.safe_load((mlqa_dir / "salt_mlqa_de_en.yaml").read_text())
    assert (
        config["include"].endswith("lm_eval/tasks/mlqa/mlqa_de_en.yaml") and config["dataset_path"] == "json"
    )
    row = json.loads((mlqa_dir / "mlqa.de.en.test.jsonl").read_text().splitlines()[0])
    assert set(row) == {"id", "title", "context", "question", "answers"}
    assert row["context"][row["answers"]["answer_start"][0] :].startswith(row["answers"]["text"][0])
    assert json.loads(mlqa_dir.with_name("de.meta.json").read_text())["params"]["zip_sha256"]
    assert not list(mlqa_dir.parent.glob("*.part"))
    assert (
        is_mlqa_task("salt_mlqa_de_en")
        and not is_mlqa_task("mlqa_de_en")
        and not is_mlqa_task("salt_mlqa_xx_en")
    )


def test_lm_eval_runs_the_generation_task_with_mlqa_metrics(mlqa_dir, toks, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conftest import tiny_llama
    from salt_transfer.evaluate import run_lm_eval

    # lm-eval generates up to 256 tokens: the model must take more positions than that.
    path = tiny_llama(toks["source"], tmp_path / "llm", max_positions=512)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    out = run_lm_eval(model, tok, {"mlqa": "salt_mlqa_de_en"}, [str(mlqa_dir)], limit=2, batch_size=2)
    record = out["mlqa"]
    assert set(record["metrics"]) >= {"exact_match", "f1"} and record["details"]["samples"]["effective"] == 2


def test_a_zip_that_is_not_mlqa_is_refused_and_removed(tmp_path):
    with serve(Served({"/x.zip": b"not a zip"})) as base:
        with pytest.raises(InputError, match="not the MLQA release"):
            fetch_mlqa("de", tmp_path / "de", url=base + "/x.zip", progress=False)
        with pytest.raises(InputError, match="MLQA has en, de"):
            fetch_mlqa("fr", tmp_path / "fr", url=base + "/x.zip", progress=False)
    assert list(tmp_path.iterdir()) == []
