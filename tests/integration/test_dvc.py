"""DVC versioning and `salt-transfer audit` on a real DVC repository with a local-directory remote.

A copy of the workflow with a tiny config is reproduced with `dvc repro`, committed and pushed; a
fresh clone pulls it, Snakemake finds nothing to redo there, and the audit passes. Then one byte
of each kind of artifact is flipped (model weights, fitted embeddings, a tokenizer file, a corpus
split, a metrics JSON), an artifact is deleted, a number in results.csv is edited: the audit exits
1 and names the artifact and exactly the results rows that depend on it.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_workflow_config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DVC = shutil.which("dvc", path=str(BIN))
WORKFLOW_FILES = [
    "Snakefile",
    "rules",
    "envs",
    "config",
    "profiles",
    "dvc.yaml",
    ".gitignore",
    "src/salt_transfer",
]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(DVC is None, reason="dvc not installed")]


def run(*command: str, cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    env.pop("SNAKEMAKE_PROFILE", None)
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def git(*args: str, cwd: Path) -> None:
    run("git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args, cwd=cwd)


@pytest.fixture(scope="module")
def clone(tmp_path_factory, toks) -> Path:
    """A fresh clone of a DVC-versioned tiny run, after `dvc pull`."""
    base = tmp_path_factory.mktemp("dvc")
    repo, remote, inputs = base / "repo", base / "remote", base / "inputs"
    inputs.mkdir()
    for name in WORKFLOW_FILES:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    config = tiny_workflow_config(inputs, toks["source"])
    config["plms"] = {"es-gpt2": config["plms"]["es-gpt2"]}
    config["methods"] = {m: config["methods"][m] for m in ("salt", "focus")}
    (repo / "config/demo.yaml").write_text(yaml.safe_dump(config))  # the active config of dvc.yaml
    git("init", "-q", cwd=repo)
    run(DVC, "init", "-q", cwd=repo)
    run(DVC, "remote", "add", "-d", "storage", str(remote), cwd=repo)
    run(DVC, "repro", cwd=repo, timeout=1500)
    status = run(DVC, "status", cwd=repo)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    run(DVC, "push", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "tiny run", cwd=repo)

    fresh = base / "clone"
    git("clone", "-q", str(repo), str(fresh), cwd=base)
    assert not (fresh / "results/fit").exists()  # nothing but code, config, dvc.lock and metrics
    run(DVC, "pull", cwd=fresh)
    return fresh


def test_the_pulled_clone_is_up_to_date_for_dvc_and_snakemake(clone):
    assert "Data and pipelines are up to date" in run(DVC, "status", cwd=clone).stdout
    # dvc pull writes files in no particular order, so Snakemake would see outputs older than
    # their inputs and redo everything; `snakemake --touch` (README) orders the file times.
    before = run("snakemake", "-n", cwd=clone)
    assert "Nothing to be done" not in before.stdout + before.stderr
    run("snakemake", "--touch", cwd=clone)
    dry = run("snakemake", "-n", cwd=clone)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    assert "Data and pipelines are up to date" in run(DVC, "status", cwd=clone).stdout  # same bytes


def audit(clone: Path) -> tuple[subprocess.CompletedProcess, list[dict[str, str]]]:
    proc = run("salt-transfer", "audit", "--out", "audit.tsv", cwd=clone, check=False)
    with open(clone / "audit.tsv", newline="") as f:
        checks = list(csv.DictReader(f, delimiter="\t"))
    return proc, checks


def test_the_audit_passes_in_the_fresh_clone(clone):
    proc, checks = audit(clone)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all match" in proc.stdout and all(c["status"] == "ok" for c in checks)
    kinds = {c["check"].split(" (")[0] + " (" + c["check"].split(" (")[-1] for c in checks}
    assert any("dvc.lock" in k for k in kinds) and any("meta.json" in k for k in kinds)
    assert any("manifest.json" in k for k in kinds)  # the chains reach the downloaded inputs


def table(clone: Path) -> list[dict[str, str]]:
    with open(clone / "results/report/results.csv", newline="") as f:
        return list(csv.DictReader(f))


def lines_where(clone: Path, keep) -> set[int]:
    """results.csv line numbers (header = line 1) of the rows `keep` accepts."""
    return {i + 2 for i, row in enumerate(table(clone)) if keep(row)}


def cell(method: str):
    return lambda row: row["method"] == method and row["stage"] in ("init", "cpt")


# (what, file to damage, the artifact the audit must name, the rows that depend on it)
DAMAGE = [
    ("model weights", "results/init/tiny/es-gpt2/salt/model/model.safetensors", "results/init/tiny/es-gpt2/salt/model", cell("salt")),
    ("fitted embeddings", "results/fit/tiny/es-gpt2/focus/embeddings.safetensors", None, cell("focus")),
    ("tokenizer file", "results/plm/es-gpt2/model/tokenizer.json", "results/plm/es-gpt2/model", lambda r: r["plm"] == "es-gpt2"),
    ("corpus split", "data/corpora/es/test.txt", None, lambda r: r["task"] == "bpb_target"),
    ("metrics JSON", "results/eval/cpt/tiny/es-gpt2/salt/bpb_english.json", None,
     lambda r: r["source_json"].endswith("cpt/tiny/es-gpt2/salt/bpb_english.json")),
]  # fmt: skip


def failed_rows(checks: list[dict[str, str]], artifact: str) -> set[int]:
    """Rows of every failed check on `artifact` or a file under it."""
    rows: set[int] = set()
    for c in checks:
        if c["status"] == "FAILED" and (
            c["artifact"] == artifact or c["artifact"].startswith(artifact + "/")
        ):
            rows |= {int(x) for x in c["rows"].split(",") if x}
    return rows


@pytest.mark.parametrize("what,damaged,artifact,depends", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_one_flipped_byte_names_the_artifact_and_every_dependent_row(clone, what, damaged, artifact, depends):
    path = clone / damaged
    original = path.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    path.write_bytes(bytes(flipped))
    try:
        proc, checks = audit(clone)
    finally:
        path.write_bytes(original)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    named = artifact or damaged
    assert named in proc.stdout  # in the printed table
    expected = lines_where(clone, depends)
    assert expected and failed_rows(checks, named) == expected, what
    assert audit(clone)[0].returncode == 0  # restored: clean again


def test_a_deleted_artifact_is_reported_missing(clone):
    path = clone / "results/fit/tiny/es-gpt2/salt/embeddings.safetensors"
    kept = path.with_name("kept")
    path.rename(kept)
    try:
        proc, checks = audit(clone)
    finally:
        kept.rename(path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    missing = [c for c in checks if c["artifact"] == str(path.relative_to(clone)) and c["status"] == "FAILED"]
    assert missing and all(c["found"] == "missing" for c in missing)
    assert failed_rows(checks, str(path.relative_to(clone))) == lines_where(clone, cell("salt"))


def test_an_edited_number_in_results_csv_is_caught(clone):
    path = clone / "results/report/results.csv"
    original = path.read_text()
    rows = table(clone)
    target = next(i for i, r in enumerate(rows) if r["task"] == "bpb_target" and r["method"] == "salt")
    lines = original.splitlines(keepends=True)
    value = rows[target]["value"]
    lines[target + 1] = lines[target + 1].replace(f",{value},", f",{float(value) * 0.9:.6g},", 1)
    path.write_text("".join(lines))
    try:
        proc, checks = audit(clone)
    finally:
        path.write_text(original)
    assert proc.returncode == 1
    edited = [
        c for c in checks if c["status"] == "FAILED" and c["artifact"] == f"results.csv line {target + 2}"
    ]
    assert edited and edited[0]["expected"] != edited[0]["found"]
    assert any(
        c["artifact"] == "results/report/results.csv" and c["status"] == "FAILED" for c in checks
    )  # dvc.lock
