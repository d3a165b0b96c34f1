"""Faults: SIGKILL at many moments (checkpoint writes included) never blocks a rerun, never leaves an
artifact without its sidecar, and never leaves temporaries behind once a rerun completes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_llama
from salt_transfer.provenance import meta_path, sha256_tree

pytestmark = pytest.mark.slow

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "salt_transfer", *args]


def run_to_end(cmd: list[str]) -> float:
    t = time.monotonic()
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return time.monotonic() - t


def kill_at(cmd: list[str], seconds: float, when=None) -> None:
    """Start `cmd`, SIGKILL it after `seconds` (or as soon as `when()` is true), wait for it."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        if when is not None and when():
            break
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.endswith(".old"))


@pytest.fixture(scope="module")
def train_setup(toks, es_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    model = tiny_llama(toks["source"], root / "init", tied=False)
    return root, model, es_corpus


def train_cmd(root: Path, model: Path, corpus: Path, name: str) -> list[str]:
    return cli(
        "pretrain", "--no-progress", "--threads", "1", "--launch", "none", "--model", str(model),
        "--train-file", str(corpus), "--output-dir", str(root / name / "model"),
        "--scratch-dir", str(root / name / "scratch"), "--log-csv", str(root / name / "train_log.csv"),
        "--max-steps", "14", "--batch-size", "2", "--seq-len", "32", "--lr", "0.003",
        "--lr-scheduler", "constant", "--save-steps", "1", "--logging-steps", "1", "--seed", "5",
        "--max-train-tokens", "4000", "--device", "cpu",
    )  # fmt: skip


def test_training_killed_at_random_moments_and_during_checkpoint_writes_ends_identical(train_setup):
    root, model, corpus = train_setup
    duration = run_to_end(train_cmd(root, model, corpus, "straight"))
    reference = (root / "straight" / "model" / "model.safetensors").read_bytes()

    cmd = train_cmd(root, model, corpus, "killed")
    scratch = root / "killed" / "scratch"
    rng = random.Random(0)

    # Seconds of one training step (without its checkpoint), from the uninterrupted run's log.
    log = (root / "straight" / "train_log.csv").read_text().splitlines()[1:]
    speeds = sorted(float(line.split(",")[4]) for line in log if line.split(",")[4])
    step_s = 2 * 32 / speeds[len(speeds) // 2]  # batch 2 x 32 tokens at the median tokens/s

    def complete_steps() -> int:
        done = [
            int(c.name.split("-")[1])
            for c in scratch.glob("checkpoint-*")
            if (c / "trainer_state.json").exists()
        ]
        return max(done, default=0)

    # Kill moments follow the run's progress, not the clock (start-up dominates a tiny run, and a
    # loaded machine stretches it): even kills land a random fraction of a step (forward, backward,
    # optimizer or the next checkpoint's write) after the run has saved one more checkpoint; odd
    # kills land while a checkpoint is being written (its folder exists, its trainer_state.json,
    # written last, does not yet). A checkpoint killed half-written gives no progress, so 12 kills
    # never finish the 14 steps.
    kills = 0
    for i in range(12):
        if i % 2:

            def writing():
                for ckpt in scratch.glob("checkpoint-*"):
                    if any(ckpt.iterdir()) and not (ckpt / "trainer_state.json").exists():
                        return True
                return False

            kill_at(cmd, duration * 3, when=writing)
        else:
            start, extra = complete_steps(), rng.uniform(0.0, 1.0) * step_s
            progressed: list[float] = []

            def one_more_step_then_a_moment(start=start, extra=extra, progressed=progressed):
                if not progressed and complete_steps() > start:
                    progressed.append(time.monotonic())
                return bool(progressed) and time.monotonic() - progressed[0] >= extra

            kill_at(cmd, duration * 3, when=one_more_step_then_a_moment)
        kills += 1
        if (root / "killed" / "model" / "model.safetensors").is_file():
            break
    assert kills >= 10
    run_to_end(cmd)  # resumes from the newest complete checkpoint, whatever was half-written
    assert (root / "killed" / "model" / "model.safetensors").read_bytes() == reference
    metrics = json.loads((root / "killed" / "model" / "train_metrics.json").read_text())
    assert metrics["steps"] == 14
    assert leftovers(root / "killed") == [] and not list(scratch.glob("checkpoint-*"))


@pytest.mark.parametrize("command", ["fit", "transplant"])
def test_kill_sweep_leaves_no_artifact_without_its_sidecar(
    command, source_tied, plm_bert, overlap_bert, aux_bert, tmp_path
):
    if command == "fit":
        out = tmp_path / "emb.safetensors"
        cmd = cli("fit", "-q", "--method", "salt", "--source-model", str(source_tied), "--overlap", str(overlap_bert),
                  "--plm", str(plm_bert), "--aux", str(aux_bert), "--out", str(out), "--report", str(tmp_path / "fit.json"),
                  "--device", "cpu")  # fmt: skip
    else:
        emb = tmp_path / "fitted.safetensors"
        run_to_end(cli("fit", "-q", "--method", "focus", "--source-model", str(source_tied), "--overlap", str(overlap_bert),
                       "--plm", str(plm_bert), "--aux", str(aux_bert), "--out", str(emb), "--report", str(tmp_path / "f.json"),
                       "--device", "cpu"))  # fmt: skip
        out = tmp_path / "model"
        cmd = cli("transplant", "-q", "--source-model", str(source_tied), "--target-tokenizer", str(plm_bert),
                  "--embeddings", str(emb), "--out", str(out))  # fmt: skip
    duration = run_to_end(cmd)
    for path in (out, meta_path(out)):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    for i in range(12):  # moments spread over the whole run, the last ones near its end
        kill_at(cmd, duration * (0.4 + 0.6 * i / 11))
        if out.exists():
            side = meta_path(out)
            assert side.is_file(), f"kill {i}: {out.name} without its sidecar"
            assert json.loads(side.read_text())["artifact_sha256"] == sha256_tree(out), f"kill {i}"
        for path in (out, meta_path(out)):  # start the next kill from scratch
            subprocess.run(["rm", "-rf", str(path)], check=True)
    kill_at(cmd, duration * 0.7)
    run_to_end(cmd)  # a rerun after a kill completes and cleans the temporaries the kill left
    assert out.exists() and meta_path(out).is_file()
    assert leftovers(tmp_path) == []
