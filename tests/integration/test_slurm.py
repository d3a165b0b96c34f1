"""The workflow through a real Slurm cluster (`bash scripts/slurm-local.sh up`) with profiles/slurm-local.

Part of the tiny integration DAG (fit, transplant, evaluate, pretrain of one PLM and two methods)
runs through `sbatch`; the steps before it run locally once. Checked: sacct shows every job
COMPLETED under its rule name; the outputs are byte-identical to a local run; the pre-emption
signal the profile asks for (URG) makes training checkpoint and the retry resume; a job cancelled
with `scancel` makes Snakemake fail naming the job, and the rerun resumes from the checkpoint.

Skipped when no cluster answers, unless SALT_TRANSFER_REQUIRE_SLURM=1 (CI sets it): then it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import tiny_workflow_config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SNAKEMAKE = shutil.which("snakemake", path=str(BIN))
PROFILE = ROOT / "profiles" / "slurm-local"
CELL = "tiny/es-gpt2"
METHODS = ("salt", "focus")
MAX_STEPS, SAVE_STEPS = 1500, 100  # ~20 s of training on the tiny model: time to signal it mid-run

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed"),
]


def _cluster_answers() -> bool:
    if not (shutil.which("sbatch") and shutil.which("scontrol") and shutil.which("sacct")):
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return ping.returncode == 0 and "UP" in ping.stdout


@pytest.fixture(scope="module")
def cluster():
    if not _cluster_answers():
        message = "no Slurm cluster answers `scontrol ping` (start one: sudo bash scripts/slurm-local.sh up)"
        if os.environ.get("SALT_TRANSFER_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}


def snakemake(cwd: Path, *args: str, slurm: bool, timeout: int = 900) -> subprocess.CompletedProcess:
    executor = ["--profile", str(PROFILE)] if slurm else ["--cores", "2"]
    return subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--configfile", "config.yaml", *executor, *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_snakemake(cwd: Path, *args: str) -> subprocess.Popen:
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--configfile", "config.yaml"]
    return subprocess.Popen(
        [*command, "--profile", str(PROFILE), *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: int = 600) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # on SIGTERM snakemake would wait for its running jobs
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"snakemake did not finish in {timeout} s:\n{out[-4000:]}")
    return out


def job_ids(output: str) -> list[str]:
    return re.findall(r"submitted with SLURM jobid (\d+)", output)


def rule_of(comment: str) -> str:
    """The rule in the plugin's job comment: `rule_<rule>_wildcards_<values>` or `rule_<rule>`."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def sacct(ids: list[str]) -> list[tuple[str, str, str, str]]:
    """(job id, state, comment, allocated TRES) per job; the plugin puts `rule_<name>` in the comment."""
    proc = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", "JobID,State,Comment,AllocTRES"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(line.split("|")) for line in proc.stdout.splitlines() if line.strip()]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def running_job(rule: str) -> str | None:
    """The id of this rule's job once Slurm runs it (squeue: %k is the comment)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %k %T"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        job, comment, state = line.split()
        if rule_of(comment) == rule and state == "RUNNING":
            return job
    return None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def eval_targets(method: str) -> str:
    return f"results/eval/init/{CELL}/{method}/bpb_target.json"


def cpt_model(method: str) -> str:
    return f"results/cpt/{CELL}/{method}/model"


@pytest.fixture(scope="module")
def workdirs(cluster, tmp_path_factory, toks):
    """Two copies of a working directory where everything before `fit` has run (locally)."""
    prep = tmp_path_factory.mktemp("slurm-prep")
    config = tiny_workflow_config(prep, toks["source"])
    config["plms"] = {"es-gpt2": config["plms"]["es-gpt2"]}
    config["methods"] = {m: config["methods"][m] for m in METHODS}
    config["analysis"] = {"enabled": False}
    config["pretrain"].update(max_steps=MAX_STEPS, save_steps=SAVE_STEPS, logging_steps=100)
    (prep / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [eval_targets(m) for m in METHODS] + [cpt_model(m) for m in METHODS]
    proc = snakemake(prep, "--omit-from", "fit", *targets, slurm=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (prep / "results/fit").exists()
    dirs = {}
    for name in ("local", "slurm"):
        dirs[name] = prep.parent / f"{prep.name}-{name}"
        shutil.copytree(prep, dirs[name], symlinks=True)  # copy2 keeps file times: nothing reruns
    return dirs


def test_fit_transplant_evaluate_through_sbatch_equal_a_local_run(workdirs):
    targets = [eval_targets(m) for m in METHODS]
    proc = snakemake(workdirs["slurm"], *targets, slurm=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    ids = job_ids(proc.stdout + proc.stderr)
    jobs = sacct(ids)
    assert len(jobs) == len(ids) == 3 * len(METHODS), jobs
    assert {job[1] for job in jobs} == {"COMPLETED"}, jobs
    assert sorted(rule_of(job[2]) for job in jobs) == sorted(
        rule for rule in ("fit", "transplant", "evaluate_init") for _ in METHODS
    )
    # The profile's GPU requests reached Slurm (the hardware-less GPUs of slurm-local.sh).
    allocated = {rule_of(job[2]): job[3] for job in jobs}
    assert "gres/gpu=1" in allocated["fit"] and "gres/gpu" not in allocated["transplant"]

    local = snakemake(workdirs["local"], *targets, slurm=False)
    assert local.returncode == 0, local.stdout[-4000:] + local.stderr[-4000:]
    for method in METHODS:
        fitted = f"results/fit/{CELL}/{method}/embeddings.safetensors"
        model = f"results/init/{CELL}/{method}/model/model.safetensors"
        for path in (fitted, model):
            assert sha256(workdirs["slurm"] / path) == sha256(workdirs["local"] / path), path
        for task_file in (workdirs["local"] / f"results/eval/init/{CELL}/{method}").glob("*.json"):
            a = json.loads(task_file.read_text())
            b = json.loads((workdirs["slurm"] / task_file.relative_to(workdirs["local"])).read_text())
            assert a["metrics"] == b["metrics"] and a["model_sha256"] == b["model_sha256"], task_file


def test_preemption_signal_checkpoints_and_the_retry_resumes(workdirs):
    """`scancel --signal=URG` is what `--signal=URG@600` does 600 s before the time limit."""
    work = workdirs["slurm"]
    proc = start_snakemake(work, cpt_model("salt"))  # the profile allows one retry
    try:
        job = wait_for(lambda: running_job("pretrain"), 300, "the pretrain job to run")
        log = work / f"logs/cpt/{CELL}/salt.log"
        wait_for(lambda: log.is_file() and "'loss'" in log.read_text(), 120, "training to log a step")
        subprocess.run(["scancel", "--signal=URG", job], check=True)
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    pretrain_jobs = [j for j in sacct(job_ids(out)) if rule_of(j[2]) == "pretrain"]
    assert [j[1] for j in pretrain_jobs] == ["FAILED", "COMPLETED"], pretrain_jobs
    assert all("gres/gpu=2" in j[3] for j in pretrain_jobs)
    metrics = json.loads((work / cpt_model("salt") / "train_metrics.json").read_text())
    [interruption] = metrics["interruptions"]  # the first attempt checkpointed on the signal ...
    assert interruption["signal"] == "SIGURG" and 0 < interruption["step"] < MAX_STEPS
    # ... and the retry resumed from exactly that checkpoint.
    assert metrics["resumed_from"].endswith(f"checkpoint-{interruption['step']}")
    assert f"resuming from {metrics['resumed_from']}" in log.read_text()
    rows = (work / f"results/cpt/{CELL}/salt/train_log.csv").read_text().splitlines()
    assert rows[-1].split(",")[0] == str(MAX_STEPS)

    # Interrupted under Slurm, resumed, and still the same weights as a straight local run (CPU).
    local = snakemake(workdirs["local"], cpt_model("salt"), slurm=False)
    assert local.returncode == 0, local.stdout[-4000:] + local.stderr[-4000:]
    weights = f"{cpt_model('salt')}/model.safetensors"
    assert sha256(work / weights) == sha256(workdirs["local"] / weights)


def test_a_cancelled_job_fails_clearly_and_the_rerun_resumes(workdirs):
    work = workdirs["slurm"]
    scratch = work / f"scratch/cpt/{CELL}/focus"
    proc = start_snakemake(work, cpt_model("focus"), "--retries", "0")
    try:
        job = wait_for(lambda: running_job("pretrain"), 300, "the pretrain job to run")
        wait_for(lambda: list(scratch.glob("checkpoint-*")), 120, "the first checkpoint")
        subprocess.run(["scancel", job], check=True)
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in out, out[-4000:]
    assert "Error in rule pretrain" in out
    assert not (work / cpt_model("focus")).exists()

    rerun = snakemake(work, cpt_model("focus"), slurm=True)
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-4000:]
    log = (work / f"logs/cpt/{CELL}/focus.log").read_text()
    resumed = re.search(r"resuming from \S*checkpoint-(\d+)", log)
    assert resumed and int(resumed.group(1)) >= SAVE_STEPS, log[-3000:]
    rows = (work / f"results/cpt/{CELL}/focus/train_log.csv").read_text().splitlines()
    assert rows[-1].split(",")[0] == str(MAX_STEPS)
