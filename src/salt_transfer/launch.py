"""Multi-GPU launch of `salt-transfer pretrain` through torchrun, sized from SLURM's environment.

`salt-transfer pretrain --launch auto` (the default) counts the GPUs this job may use and, when there
is more than one, reruns itself under `torchrun` with one process per GPU; transformers' Trainer then
trains with DistributedDataParallel. With one GPU or none it trains in the current process. The
count comes, in this order, from

1. `SLURM_GPUS_ON_NODE`: what Slurm allocated to the job on this node (`--gpus`, `--gres=gpu:N`);
2. `CUDA_VISIBLE_DEVICES`: what a scheduler or the user exposed (a comma-separated list);
3. `torch.cuda.device_count()`: every GPU the process can see,

and is never more than torch's own count (no worker without a device).

A process already started by torchrun (`LOCAL_RANK` is set) never launches again.

Only single-node jobs are launched (`--standalone` rendezvous on a free local port). A job that
Slurm gave several nodes (`SLURM_JOB_NUM_NODES` > 1) is refused with an explanation rather than
trained on one node while the others idle: multi-node training needs one torchrun per node (e.g.
`srun --ntasks-per-node=1 torchrun --nnodes=N --rdzv-backend=c10d ...`), which is left to the user.

Signals: the launcher runs torchrun as a child and forwards the checkpoint signals (SIGTERM,
SIGUSR1, SIGURG: `CHECKPOINT_SIGNALS`; Slurm's warning before a time limit is requested with
`--signal=URG@<seconds>` in profiles/slurm) to the worker processes themselves, not to torchrun,
whose own handler would kill the workers before they checkpoint. Each worker then
saves a checkpoint at the end of its step and exits with the pre-emption status, which the launcher
returns.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

PREEMPTED_EXIT = 3  # exit status after a pre-emption signal: a checkpoint exists, rerun to resume
# Signals that make training checkpoint and stop (`salt_transfer.pretrain` says why URG).
CHECKPOINT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGURG)


@dataclass(frozen=True)
class LaunchPlan:
    """How to run training: `nproc_per_node` processes on this node (1: in this process)."""

    nproc_per_node: int
    source: str  # which variable (or torch) the GPU count came from, for the log

    @property
    def distributed(self) -> bool:
        return self.nproc_per_node > 1


def _count_visible(value: str) -> int:
    """Devices in a CUDA_VISIBLE_DEVICES value ("0,1", "GPU-uuid,...", "" or "-1": none)."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or items[0] in ("-1", "NoDevFiles"):
        return 0
    return len(items)


def _slurm_gpus_on_node(value: str) -> int:
    """SLURM_GPUS_ON_NODE is a count; some sites export a typed form ("a100:2")."""
    count = value.rsplit(":", 1)[-1].strip()
    if not count.isdigit():
        raise InputError(f"SLURM_GPUS_ON_NODE={value!r}: not a GPU count")
    return int(count)


def plan_from_env(env: Mapping[str, str], cuda_device_count: int) -> LaunchPlan:
    """Derive the launch from a process environment and the number of GPUs torch sees."""
    if "LOCAL_RANK" in env:
        return LaunchPlan(1, "already a torchrun worker (LOCAL_RANK is set)")
    nodes = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or "1"
    if nodes.isdigit() and int(nodes) > 1:
        raise InputError(
            f"this Slurm job has {nodes} nodes; `salt-transfer train --launch auto` trains on one "
            "node. Ask for one node (more GPUs per node), or start one torchrun per node yourself "
            "(srun --ntasks-per-node=1 torchrun --nnodes=N --rdzv-backend=c10d ... -m salt_transfer "
            "train --launch none ...)"
        )
    if env.get("SLURM_GPUS_ON_NODE"):
        gpus, source = _slurm_gpus_on_node(env["SLURM_GPUS_ON_NODE"]), "SLURM_GPUS_ON_NODE"
    elif "CUDA_VISIBLE_DEVICES" in env:
        gpus, source = _count_visible(env["CUDA_VISIBLE_DEVICES"]), "CUDA_VISIBLE_DEVICES"
    else:
        gpus, source = cuda_device_count, "torch.cuda.device_count()"
    # One worker per GPU that torch can actually use: an allocation torch does not see (no CUDA
    # build, a misconfigured node) must not start workers without a device of their own.
    if gpus > cuda_device_count:
        gpus, source = cuda_device_count, f"{source}, capped at torch.cuda.device_count()"
    return LaunchPlan(max(gpus, 1), source)


def torchrun_command(plan: LaunchPlan, train_argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """The command that runs `salt-transfer pretrain` once per GPU on this node."""
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",  # single node: rendezvous on a free local port
        "--nnodes=1",
        f"--nproc-per-node={plan.nproc_per_node}",
        "-m",
        "salt_transfer",
        "pretrain",
        *train_argv,
    ]


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc); torchrun's children are the training workers."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def run_distributed(command: Sequence[str], preempted_exit: int) -> int:
    """Run torchrun, forwarding the checkpoint signals to its workers; returns its exit status.

    When a forwarded signal made the workers stop early, returns `preempted_exit` so a scheduler's
    retry (Snakemake --retries, Slurm requeue) reruns the job, which resumes from the checkpoint.
    """
    proc = subprocess.Popen(list(command))
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        for pid in _children(proc.pid):
            # A worker may end between listing and signalling.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {s: signal.signal(s, forward) for s in CHECKPOINT_SIGNALS}
    try:
        status = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received and status != 0:
        return preempted_exit
    return status


def relaunch_if_distributed(values: dict, scratch_dir: str | Path, passthrough: Sequence[str]) -> int | None:
    """Rerun `pretrain` under torchrun when this job has several GPUs; None: train in this process.

    The workers read the resolved arguments from a JSON file in the scratch directory rather than a
    re-quoted command line; `passthrough` carries the common flags (verbosity, threads, config hash).
    """
    import torch

    from .provenance import write_json_atomic

    plan = plan_from_env(os.environ, torch.cuda.device_count())
    if not plan.distributed:
        return None
    args_file = Path(scratch_dir) / "launch_args.json"
    write_json_atomic(args_file, values)
    argv = ["--args-json", str(args_file), "--launch", "none", *passthrough]
    import logging

    logging.getLogger(__name__).info(
        "%d GPUs (from %s): launching torchrun", plan.nproc_per_node, plan.source
    )
    return run_distributed(torchrun_command(plan, argv), PREEMPTED_EXIT)
