"""The paper grid's own code paths, end to end, offline (marker `rehearsal`; CI runs it as its own
stage): tests/integration/paper-rehearsal.yaml has config/paper.yaml's keys and source kinds, and runs
through the same rules and commands with only the network replaced (tests/paper_assets.py): hub and
datasets caches read with HF_HUB_OFFLINE=1, and a local HTTP server for fastText and MLQA that drops
the fastText download once, so the resume path runs too. The Slurm variant is in test_slurm.py."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from http_server import Served, serve
from paper_assets import LLM_REPOS, PLM_REPOS, build_rehearsal, rehearsal_commit
from workflow_helpers import ROOT, SNAKEMAKE, run_snakemake

pytestmark = [pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed"), pytest.mark.rehearsal]

CONFIG = Path(__file__).with_name("paper-rehearsal.yaml")


def rehearsal_config(base_url: str) -> str:
    return CONFIG.read_text().replace("${REHEARSAL_SERVER}", base_url)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_rehearsal(tmp_path_factory.mktemp("rehearsal-assets"))


def run_rehearsal(work: Path, assets: dict, *extra: str):
    """The rehearsal in `work`, with the server running; returns (process, served). A rerun in the same
    `work` serves on the same port: the URL is part of the fetch rules' params, a rerun trigger."""
    files = assets["files"]
    fasttext = "/cc.de.300.bin.gz"
    served = Served(files, drop_after=len(files[fasttext]) // 2, drops=1, drop_path=fasttext)
    port_file = work / ".rehearsal-port"
    port = int(port_file.read_text()) if port_file.is_file() else 0
    with serve(served, port=port) as base:
        work.mkdir(parents=True, exist_ok=True)
        port_file.write_text(base.rsplit(":", 1)[1])
        (work / "config.yaml").write_text(rehearsal_config(base))
        proc = run_snakemake("--configfile", "config.yaml", *extra, cwd=work, env=assets["env"], timeout=3600)
    return proc, served


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, assets):
    work = tmp_path_factory.mktemp("rehearsal")
    proc, served = run_rehearsal(work, assets, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    return work, served


def test_rehearsal_config_has_the_paper_configs_keys_and_source_kinds():
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    rehearsal = yaml.safe_load(CONFIG.read_text())
    assert set(rehearsal) == set(paper)
    kind = lambda source: source.split(":", 1)[0]  # noqa: E731
    assert {kind(s["source"]) for s in rehearsal["llms"].values()} == {
        kind(s["source"]) for s in paper["llms"].values()
    }
    assert {kind(s["source"]) for s in rehearsal["plms"].values()} == {
        kind(s["source"]) for s in paper["plms"].values()
    }
    assert {kind(s["source"]) for s in rehearsal["corpora"].values()} == {
        kind(s["source"]) for s in paper["corpora"].values()
    }
    assert {s["architecture"] for s in rehearsal["plms"].values()} == {
        s["architecture"] for s in paper["plms"].values()
    }
    assert set(rehearsal["llms"]) == set(paper["llms"])
    assert rehearsal["evaluate"]["lm_eval_tasks"] == paper["evaluate"]["lm_eval_tasks"]
    assert set(rehearsal["aux"]["pretrained"].values()) == set(paper["aux"]["pretrained"].values()) == {"cc"}
    # Revisions are pinned commits, the ones the rehearsal's hub cache stores.
    for name, repo in {**LLM_REPOS, **PLM_REPOS}.items():
        spec = rehearsal["llms"].get(name) or rehearsal["plms"][name]
        assert spec["source"] == f"hf:{repo}@{rehearsal_commit(repo)}"
    assert all(re.search(r"@[0-9a-f]{40}:", c["source"]) for c in rehearsal["corpora"].values())


def test_rehearsal_reaches_the_report_with_every_paper_task_for_both_llms(rehearsal):
    work, served = rehearsal
    df = pd.read_csv(work / "results/report/results.csv", keep_default_na=False)
    tasks = set(yaml.safe_load(CONFIG.read_text())["evaluate"]["lm_eval_tasks"])
    for stage in ("init", "cpt", "source"):
        rows = df[df.stage == stage]
        assert set(rows.llm) == set(LLM_REPOS), stage
        for llm in LLM_REPOS:
            assert tasks | {"bpb_target", "bpb_english"} <= set(rows[rows.llm == llm].task), (stage, llm)
    generation = df[df.task.isin(["mlqa", "xquad", "mlqa_en2tgt", "mlqa_tgt2en"])]
    assert {"exact_match", "f1"} <= set(generation.metric)
    assert set(df[df.stage == "cpt"].plm) == set(PLM_REPOS)
    # The fastText download was cut half-way once and resumed with a Range request.
    fasttext = [r for r in served.requests if r["path"] == "/cc.de.300.bin.gz"]
    assert fasttext[0]["range"] is None and fasttext[1]["range"].startswith("bytes=")
    manifest = (work / "data/models/gemma-2b/manifest.json").read_text()
    assert rehearsal_commit(LLM_REPOS["gemma-2b"]) in manifest


def test_the_audit_passes_on_the_rehearsal(rehearsal):
    work, _ = rehearsal
    proc = run_snakemake("--configfile", "config.yaml", "--cores", "2", "audit", cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all match" in (work / "logs/audit/audit.log").read_text()


def test_a_second_rehearsal_run_has_nothing_to_do(rehearsal, assets):
    work, _ = rehearsal
    proc, served = run_rehearsal(work, assets, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr and not served.requests


@pytest.mark.slurm
def test_rehearsal_through_the_local_slurm_cluster(tmp_path_factory, assets):
    """The same rehearsal submitted with profiles/slurm-local (CI brings the cluster up): every job
    goes through sbatch except the downloads (local rules, on the submit host), then the audit."""
    from test_slurm import PROFILE, _cluster_answers

    if not _cluster_answers():
        message = "no Slurm cluster answers `scontrol ping` (start one: sudo bash scripts/slurm-local.sh up)"
        if os.environ.get("SALT_TRANSFER_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("rehearsal-slurm")
    proc, _ = run_rehearsal(work, assets, "--profile", str(PROFILE))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    df = pd.read_csv(work / "results/report/results.csv", keep_default_na=False)
    tasks = set(yaml.safe_load(CONFIG.read_text())["evaluate"]["lm_eval_tasks"])
    assert tasks <= set(df[df.stage == "cpt"].task) and set(df.llm) == set(LLM_REPOS)
    assert any((work / "logs/slurm").rglob("*.log")), "no job went through sbatch"
    audit = run_snakemake("--configfile", "config.yaml", "--cores", "2", "audit", cwd=work, env=assets["env"])
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
