"""Multi-GPU launch: the plan derived from SLURM's environment, signal forwarding, and a real
two-process torchrun run of `salt-transfer train` on CPU (gloo), standing in for two GPUs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import tiny_llama
from salt_transfer.errors import InputError
from salt_transfer.launch import LaunchPlan, plan_from_env, run_distributed, torchrun_command
from salt_transfer.pretrain import CHECKPOINT_SIGNALS


@pytest.mark.parametrize(
    "env, cuda, expected",
    [
        ({"SLURM_GPUS_ON_NODE": "4"}, 4, 4),
        ({"SLURM_GPUS_ON_NODE": "a100:2", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 4, 2),  # Slurm first
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, 8, 2),
        ({"CUDA_VISIBLE_DEVICES": "GPU-3f2a,GPU-77b1,GPU-0c9e"}, 3, 3),
        ({"CUDA_VISIBLE_DEVICES": ""}, 8, 1),  # nothing exposed: train in this process
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 8, 1),
        ({}, 2, 2),  # no scheduler: every GPU torch sees
        ({}, 0, 1),  # CPU
        ({"SLURM_GPUS_ON_NODE": "4"}, 2, 2),  # never more workers than devices torch sees
        ({"SLURM_GPUS_ON_NODE": "4"}, 0, 1),
        ({"SLURM_GPUS_ON_NODE": "4", "LOCAL_RANK": "0"}, 4, 1),  # already a torchrun worker
        ({"SLURM_JOB_NUM_NODES": "1", "SLURM_GPUS_ON_NODE": "2"}, 2, 2),
    ],
)
def test_plan_from_env(env, cuda, expected):
    plan = plan_from_env(env, cuda)
    assert plan.nproc_per_node == expected
    assert plan.distributed == (expected > 1)


def test_plan_refuses_multi_node_jobs_and_bad_counts():
    with pytest.raises(InputError, match="3 nodes.*one torchrun per node"):
        plan_from_env({"SLURM_JOB_NUM_NODES": "3", "SLURM_GPUS_ON_NODE": "4"}, 4)
    with pytest.raises(InputError, match="SLURM_GPUS_ON_NODE='many'"):
        plan_from_env({"SLURM_GPUS_ON_NODE": "many"}, 4)


def test_torchrun_command_is_single_node_one_process_per_gpu():
    cmd = torchrun_command(LaunchPlan(4, "test"), ["--args-json", "a.json"], python="py")
    assert cmd[:3] == ["py", "-m", "torch.distributed.run"]
    assert "--standalone" in cmd and "--nnodes=1" in cmd and "--nproc-per-node=4" in cmd
    assert cmd[-4:] == ["salt_transfer", "pretrain", "--args-json", "a.json"]


# A stand-in for torchrun: starts one worker and exits 1 when the worker fails. It keeps the
# default signal actions, so a SIGTERM/SIGUSR1 that reached it instead of the worker would end it
# and leave no marker (SIGURG is ignored by default: there the marker alone shows the forwarding).
FAKE_TORCHRUN = textwrap.dedent(
    """
    import subprocess, sys
    worker = subprocess.Popen([sys.executable, *sys.argv[1:]])
    sys.exit(0 if worker.wait() == 0 else 1)
    """
)
FAKE_WORKER = textwrap.dedent(
    """
    import pathlib, signal, sys, time
    marker = pathlib.Path(sys.argv[1])
    def on_signal(signum, frame):
        marker.write_text("checkpointed")
        sys.exit(3)
    signal.signal(int(sys.argv[2]), on_signal)
    marker.with_suffix(".ready").write_text("")
    time.sleep(60)
    """
)


@pytest.mark.parametrize("signum", CHECKPOINT_SIGNALS, ids=lambda s: s.name)
def test_signals_are_forwarded_to_the_workers_not_to_torchrun(tmp_path, signum):
    (tmp_path / "torchrun.py").write_text(FAKE_TORCHRUN)
    (tmp_path / "worker.py").write_text(FAKE_WORKER)
    marker = tmp_path / "marker"

    def signal_when_ready():
        deadline = time.time() + 30
        while not marker.with_suffix(".ready").exists() and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signum)  # what Slurm's --signal=URG@... or a pre-emption does to the job

    thread = threading.Thread(target=signal_when_ready)
    thread.start()
    worker = [str(tmp_path / "worker.py"), str(marker), str(int(signum))]
    command = [sys.executable, str(tmp_path / "torchrun.py"), *worker]
    status = run_distributed(command, preempted_exit=3)
    thread.join()
    assert marker.read_text() == "checkpointed"
    assert status == 3
    assert signal.getsignal(signum) is signal.SIG_DFL  # handlers restored


def test_a_failing_run_without_a_signal_keeps_its_status(tmp_path):
    assert run_distributed([sys.executable, "-c", "raise SystemExit(5)"], preempted_exit=3) == 5


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo on Linux")
def test_two_worker_torchrun_training_on_cpu(toks, es_corpus, tmp_path):
    """`--launch auto` with SLURM_GPUS_ON_NODE=2 launches two torchrun workers; torch's GPU count
    is faked to 2 in the launching process only, so the workers train on CPU with gloo."""
    model = tiny_llama(toks["source"], tmp_path / "llm", tied=True)
    out = tmp_path / "cpt"
    argv = ["pretrain", "--no-progress", "--threads", "1", "--model", str(model)]
    argv += ["--train-file", str(es_corpus), "--output-dir", str(out / "model")]
    argv += ["--scratch-dir", str(out / "scratch"), "--log-csv", str(out / "train_log.csv")]
    argv += ["--max-steps", "3", "--batch-size", "2", "--seq-len", "32", "--save-steps", "1000"]
    argv += ["--warmup-steps", "0", "--logging-steps", "1"]
    driver = textwrap.dedent(
        """
        import sys, torch
        torch.cuda.device_count = lambda: 2
        from salt_transfer.cli import main
        sys.exit(main(ARGV))
        """
    ).replace("ARGV", repr(argv))
    env = {**os.environ, "SLURM_GPUS_ON_NODE": "2", "HF_HUB_OFFLINE": "1"}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run(
        [sys.executable, "-c", driver], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 GPUs (from SLURM_GPUS_ON_NODE" in done.stderr
    metrics = json.loads((out / "model" / "train_metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 3
    # Two workers x batch 2 x 32 tokens per step, counted across processes.
    assert metrics["tokens_seen"] == 3 * 2 * 2 * 32
    assert json.loads((out / "scratch" / "launch_args.json").read_text())["max_steps"] == 3
    assert json.loads((out / "model.meta.json").read_text())["command"] == "pretrain"  # rank 0 only
