"""The workflow as a whole: lint and dry runs of every config, schema errors, and the full DAG on a
tiny config (tiny in-process source LLM, stand-in PLMs of every architecture, a few methods)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import tiny_workflow_config

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")

pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")


def run_snakemake(*args: str, cwd: Path = ROOT, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("config", [None, "config/paper.yaml"])
def test_lint_is_clean(config):
    args = ["--lint"] + (["--configfile", config] if config else [])
    proc = run_snakemake(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def job_counts(output: str) -> dict[str, int]:
    counts, table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            table = True
            continue
        if table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif counts:
                break
    return counts


def test_demo_dry_run_lists_the_demo_grid(tmp_path):
    proc = run_snakemake("-n", "--directory", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    counts = job_counts(proc.stdout)
    assert counts["fit"] == counts["transplant"] == counts["pretrain"] == 1 * 3 * 6
    assert counts["evaluate"] == 2 * 18 and counts["train_standin_plm"] == 3
    assert counts["source_states"] == 1 and "analyze" not in counts  # alignment runs inside evaluate


def test_paper_dry_run_lists_the_full_grid_offline(tmp_path):
    proc = run_snakemake("-n", "--configfile", str(ROOT / "config/paper.yaml"), "--directory", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    counts = job_counts(proc.stdout)
    assert counts["fit"] == 2 * 9 * 4  # source LLMs x PLMs x methods
    assert counts["pretrain"] == counts["transplant"] == 72 and counts["evaluate"] == 144
    assert counts["fetch_model"] == 2 + 9 and counts["fetch_fasttext"] == 3
    assert "smollm2" not in proc.stdout  # the demo config is replaced, not merged


def write_config(path: Path, **changes) -> Path:
    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        ({"methods": {"salt": {}, "wechsel": {}}}, "wechsel"),
        ({"plms": {"x": {"language": "es", "architecture": "encoder"}}}, "'source' is a required property"),
        ({"seed": "zero"}, "'zero' is not of type 'integer'"),
        (
            {"plms": {"x": {"language": "fr", "architecture": "encoder", "source": "standin"}}},
            "plms.x.language",
        ),
    ],
)
def test_invalid_configs_fail_with_the_schema_message(tmp_path, change, message):
    config = write_config(tmp_path / "bad.yaml", **change)
    proc = run_snakemake("-n", "--configfile", str(config), "--directory", str(tmp_path))
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, toks):
    """The whole DAG on a tiny config; returns the working directory after one complete run."""
    work = tmp_path_factory.mktemp("workflow")
    config = tiny_workflow_config(work, toks["source"])
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake("--configfile", "config.yaml", "--cores", "2", cwd=work)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return work


def test_tiny_workflow_produces_the_report(tiny_run):
    df = pd.read_csv(tiny_run / "results/report/results.csv", keep_default_na=False)
    cells = df[df.stage != "source"]
    eval_tasks = {"bpb_target", "bpb_english", "continuation", "xling_en2tgt", "xling_tgt2en"}
    analysis_tasks = {"word_retrieval", "sentence_retrieval", "cka"}
    assert set(cells.task) == eval_tasks | analysis_tasks
    per_cell = cells.groupby(["plm", "method", "stage"])["task"].nunique()
    assert len(per_cell) == 3 * 3 * 2 and (per_cell == len(eval_tasks | analysis_tasks)).all()  # every metric
    assert set(cells.method) == {"salt", "focus", "procrustes"} and set(cells.stage) == {"init", "cpt"}
    assert set(df[df.stage == "source"].task) == eval_tasks
    assert (cells[cells.task == "bpb_target"].value > 0).all() and (cells.model_sha256.str.len() == 64).all()
    accuracy = cells[cells.metric == "acc"].value
    assert len(accuracy) == 3 * 3 * 2 * 3 and accuracy.between(0, 1).all()
    assert (tiny_run / "results/report/tables.md").read_text().count("| salt |") >= 4
    assert any((tiny_run / "results/report/plots").glob("layers_*.png"))
    assert any((tiny_run / "results/report/plots").glob("loss_*.png"))
    for sidecar in (
        "results/fit/tiny/es-t5/salt/embeddings.safetensors.meta.json",
        "results/cpt/tiny/es-t5/salt/model.meta.json",
    ):
        assert (tiny_run / sidecar).is_file()


def test_second_run_has_nothing_to_do(tiny_run):
    proc = run_snakemake("--configfile", "config.yaml", "--cores", "2", cwd=tiny_run)
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_snakemake_audit_target_checks_the_tiny_run(tiny_run):
    """`snakemake audit` re-hashes everything results.csv names; nothing has been touched, so all match."""
    proc = run_snakemake("--configfile", "config.yaml", "--cores", "2", "audit", cwd=tiny_run)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    checks = (tiny_run / "results/audit/manifest.tsv").read_text().splitlines()
    assert len(checks) > 100 and all(line.split("\t")[4] == "ok" for line in checks[1:])
    assert "all match" in (tiny_run / "logs/audit/audit.log").read_text()
