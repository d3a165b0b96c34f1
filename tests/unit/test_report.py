"""The report: tidy rows with hashes, paper-shaped tables, plots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from salt_transfer.errors import InputError
from salt_transfer.report import cell_of, write_report

GRID = {
    "plms": {
        "es-bert": {"language": "es", "architecture": "encoder"},
        "es-gpt2": {"language": "es", "architecture": "decoder"},
    },
    "methods": ["salt", "focus"],
    "llms": ["llm"],
}


def _sidecar(artifact: Path, command: str, inputs: dict, params: dict | None = None) -> None:
    side = artifact.with_name(artifact.name + ".meta.json")
    side.write_text(
        json.dumps(
            {
                "command": command,
                "inputs": {role: {"path": str(p), "sha256": "x"} for role, p in inputs.items()},
                "params": params or {},
            }
        )
    )


def fake_results(root):
    """Evaluation records with cell labels, and models whose sidecars chain cpt -> init -> fitted
    embeddings and name the training log, as the workflow writes them."""
    evals = []
    value = 1.0
    logs = []
    for plm in GRID["plms"]:
        for method in GRID["methods"]:
            fit = root / "fit" / "llm" / plm / method / "embeddings.safetensors"
            fit.parent.mkdir(parents=True, exist_ok=True)
            fit.write_bytes(f"{plm}{method}".encode())
            log = root / "cpt" / "llm" / plm / method / "train_log.csv"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(
                "step,tokens_seen,loss,lr,tokens_per_s,heldout_bpb\n0,0,,,,3.0\n1,64,5.0,0.001,,\n"
                "2,128,4.0,0.001,10.0,\n2,128,,,,2.5\n"
            )
            logs.append(log)
            for stage in ("init", "cpt"):
                model = root / stage / "llm" / plm / method / "model"
                model.mkdir(parents=True, exist_ok=True)
                if stage == "init":
                    _sidecar(model, "transplant", {"embeddings": fit})
                else:
                    init = root / "init" / "llm" / plm / method / "model"
                    _sidecar(model, "pretrain", {"model": init}, {"log_csv": str(log)})
    for stage in ("init", "cpt"):
        for plm in GRID["plms"]:
            for method in GRID["methods"]:
                for task in ("bpb_target", "bpb_english"):
                    path = root / "eval" / stage / "llm" / plm / method / f"{task}.json"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    value += 0.1
                    path.write_text(
                        json.dumps(
                            {
                                "task": task,
                                "metrics": {"bpb": value},
                                "stderr": {"bpb": 0.01},
                                "model": str(root / stage / "llm" / plm / method / "model"),
                                "model_sha256": f"m-{stage}-{plm}-{method}",
                                "text_sha256": f"t-{task}",
                                "cell": {"stage": stage, "llm": "llm", "plm": plm, "method": method},
                            }
                        )
                    )
                    evals.append(path)
    for task in ("bpb_target", "bpb_english"):
        path = root / "eval" / "source" / "llm" / "es" / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "task": task,
                    "metrics": {"bpb": 9.0},
                    "model_sha256": "m-source",
                    "text_sha256": f"t-{task}",
                    "cell": {"stage": "source", "llm": "llm", "language": "es"},
                }
            )
        )
        evals.append(path)
    return evals, logs


def test_cell_of_reads_the_recorded_labels(tmp_path):
    record = {"cell": {"stage": "cpt", "llm": "llm", "plm": "es-bert", "method": "salt"}}
    assert cell_of(record, tmp_path / "x.json") == {
        "stage": "cpt",
        "llm": "llm",
        "plm": "es-bert",
        "method": "salt",
    }
    source = {"cell": {"stage": "source", "llm": "llm", "language": "es"}}
    assert cell_of(source, tmp_path / "x.json")["language"] == "es"
    with pytest.raises(InputError, match="no cell labels"):
        cell_of({}, tmp_path / "results/eval/too/short.json")


def test_report_rows_tables_and_plots(tmp_path):
    evals, logs = fake_results(tmp_path / "results")
    df = write_report(evals, GRID, tmp_path / "results" / "report")
    csv = pd.read_csv(tmp_path / "results" / "report" / "results.csv", keep_default_na=False)
    assert len(csv) == len(df) == 2 * 2 * 2 * 2 + 2  # stages x plms x methods x tasks, + source
    row = csv[
        (csv.stage == "cpt") & (csv.plm == "es-gpt2") & (csv.method == "focus") & (csv.task == "bpb_target")
    ]
    assert row["model_sha256"].iloc[0] == "m-cpt-es-gpt2-focus" and row["architecture"].iloc[0] == "decoder"
    assert len(row["embeddings_sha256"].iloc[0]) == 64 and row["language"].iloc[0] == "es"
    source = Path(row["source_json"].iloc[0])
    assert row["source_json_sha256"].iloc[0] == hashlib.sha256(source.read_bytes()).hexdigest()
    metrics = json.loads((tmp_path / "results" / "report" / "metrics.json").read_text())
    value = json.loads(source.read_text())["metrics"]["bpb"]
    assert metrics["llm/es-gpt2/focus/cpt"]["bpb_target/bpb"] == pytest.approx(value, rel=1e-5)
    tables = (tmp_path / "results" / "report" / "tables.md").read_text()
    assert "## bpb_target · bpb · cpt · source llm (lower is better)" in tables
    assert "| salt |" in tables and "*source llm, its own tokenizer*" in tables and "9.0000" in tables
    plots = sorted(p.name for p in (tmp_path / "results" / "report" / "plots").iterdir())
    assert "loss_llm_es-bert.png" in plots and "bars_llm_bpb_target_bpb.png" in plots
    assert all((tmp_path / "results" / "report" / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in plots)


def test_analysis_rows_and_layer_plots(tmp_path):
    evals, logs = fake_results(tmp_path / "results")
    analyses = []
    for stage in ("init", "cpt"):
        for plm in GRID["plms"]:
            for method in GRID["methods"]:
                path = tmp_path / "results" / "eval" / stage / "llm" / plm / method / "alignment.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(
                    json.dumps(
                        {
                            "kind": "alignment",
                            "words": {
                                "p1_nn": 0.1,
                                "p1_csls": 0.2,
                                "p1_nn_procrustes": 0.3,
                                "p1_csls_procrustes": 0.4,
                            },
                            "sentences": {"sentence_p1": [0.1, 0.5, 0.3], "cka": [0.9, 0.6, 0.3]},
                            "model_sha256": "m",
                            "task": "alignment",
                            "cell": {"stage": stage, "llm": "llm", "plm": plm, "method": method},
                        }
                    )
                )
                analyses.append(path)
    df = write_report(evals + analyses, GRID, tmp_path / "results" / "report")
    cka = df[(df.task == "cka") & (df.stage == "cpt") & (df.plm == "es-bert") & (df.method == "salt")]
    assert dict(zip(cka.metric, cka.value)) == {
        "mean": pytest.approx(0.6),
        "layer_00": 0.9,
        "layer_01": 0.6,
        "layer_02": 0.3,
    }
    best = df[(df.task == "sentence_retrieval") & (df.metric == "best")]["value"]
    assert (best == 0.5).all() and len(best) == 8
    assert (df[df.task == "word_retrieval"].groupby("metric").size() == 8).all()
    tables = (tmp_path / "results" / "report" / "tables.md").read_text()
    assert "## cka · mean · cpt" in tables and "layer_01" not in tables
    assert (tmp_path / "results" / "report" / "plots" / "layers_llm_es-bert.png").is_file()


def test_report_rejects_missing_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        write_report([tmp_path / "results/eval/cpt/a/b/c/d.json"], GRID, tmp_path / "out")
