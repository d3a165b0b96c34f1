"""The whole DAG on a tiny config (tiny in-process source LLM, stand-in PLMs of every architecture, a
few methods), run twice, then audited. Lint, dry runs and config errors are test_workflow_dry.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import tiny_workflow_config
from workflow_helpers import SNAKEMAKE, run_snakemake

pytestmark = [pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed"), pytest.mark.workflow]


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


CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


def test_snakemake_html_report_builds_and_renders(tiny_run):
    """`snakemake --report` (HTML and zip) on the tiny run: every output flagged with report() is in it,
    with its caption and category; headless Chromium renders the page (a screenshot that is not blank,
    and the rendered DOM shows the categories and the files). CI installs Chromium
    (scripts/test.sh; SALT_TRANSFER_REQUIRE_CHROMIUM=1 there); elsewhere the render half is skipped."""
    for name in ("report.html", "report.zip"):
        proc = run_snakemake("--configfile", "config.yaml", "--report", name, cwd=tiny_run)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = (tiny_run / "report.html").read_text()
    for text in ("Continual pretraining", "Evaluation", "Claims", "claims.csv", "results.csv", "tables.html"):
        assert text in html, text
    assert "paired-bootstrap" in html  # a caption (report/claims.rst), not only a file name
    assert re.search(r"loss_tiny_es-t5\.png", html)  # the convergence figure, from the plots directory
    with zipfile.ZipFile(tiny_run / "report.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("report.html") for n in names) and any(n.endswith(".png") for n in names)

    if CHROMIUM is None:
        if os.environ.get("SALT_TRANSFER_REQUIRE_CHROMIUM") == "1":
            pytest.fail("SALT_TRANSFER_REQUIRE_CHROMIUM=1 but no chromium-headless-shell on PATH")
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell)")
    browse = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000"]
    url = (tiny_run / "report.html").as_uri()
    shot = tiny_run / "report.png"
    subprocess.run(
        [*browse, "--window-size=1400,900", f"--screenshot={shot}", url],
        check=True,
        timeout=180,
        capture_output=True,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (900, 1400) and pixels.std() > 10, "the report renders blank"
    dom = subprocess.run(
        [*browse, "--dump-dom", url], check=True, timeout=180, capture_output=True, text=True
    )
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    # Rendered by the report's JavaScript (the page source holds them only as data).
    for label in ("Continual pretraining", "Evaluation", "Claims", "Plots"):
        assert label in text, label
    assert "System Message" not in text, "a caption's reStructuredText has an error (docutils message shown)"


def test_audit_finds_rows_dropped_from_the_results_table(tiny_run, tmp_path):
    """A results.csv cut short (no dvc.lock to compare with) is a finding: every evaluation record the
    workflow wrote must have its rows in the table."""
    table = (tiny_run / "results/report/results.csv").read_text().splitlines()
    cut = tiny_run / "results/report/cut.csv"
    cut.write_text("\n".join(table[:49]) + "\n")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "salt_transfer", "audit", str(cut), "--out", str(tmp_path / "m.tsv")],
            cwd=tiny_run,
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    finally:
        cut.unlink()
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "rows in results.csv" in proc.stdout + proc.stderr and "missing" in proc.stdout + proc.stderr
