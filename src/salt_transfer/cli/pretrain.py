"""salt-transfer pretrain: continual pretraining (causal LM) of a transferred model; resumable."""

from ..options import add_arguments as add_option_flags
from ..settings import TrainArguments
from .common import add_card_arguments, card_args, progress

NAME = "pretrain"
ALIASES = ["train"]
HELP = "continual pretraining (causal LM) of a transplanted model; resumable"
DESCRIPTION = (
    "Continual pretraining on target-language text with transformers' Trainer. Checkpoints go to "
    "--scratch-dir; a rerun resumes from the newest complete one. SIGTERM/SIGUSR1/SIGURG save a "
    "checkpoint and exit with status 3."
)


def add_arguments(p) -> None:
    p.add_argument("--args-json", help="JSON file with any of the arguments below (flags override it)")
    p.add_argument(
        "--launch",
        choices=["auto", "none"],
        default="auto",
        help="auto: with several GPUs on this node (SLURM_GPUS_ON_NODE, CUDA_VISIBLE_DEVICES or "
        "torch's count), rerun under torchrun, one process per GPU; none: train in this process "
        "(default: %(default)s)",
    )
    add_option_flags(p, TrainArguments)
    add_card_arguments(p)


def _passthrough(args) -> list[str]:
    """The common flags a torchrun worker needs to behave like this process."""
    argv = ["--no-progress"] if args.no_progress else []
    argv += ["-q"] if args.quiet else ["-v"] if args.verbose else []
    argv += ["--threads", str(args.threads)] if args.threads else []
    argv += ["--config-hash", args.config_hash] if args.config_hash else []
    for key, value in card_args(args).items():
        argv += [f"--{key.replace('_', '-')}", value] if value else []
    return argv


def run(args) -> int:
    import dataclasses
    import sys

    from ..launch import PREEMPTED_EXIT, relaunch_if_distributed
    from ..options import from_args
    from ..pretrain import Preempted, train
    from .common import LOG

    values = from_args(TrainArguments, args, json_file=args.args_json)
    if args.launch == "auto" and values.device != "cpu":
        status = relaunch_if_distributed(dataclasses.asdict(values), values.scratch_dir, _passthrough(args))
        if status is not None:
            return status
    try:
        metrics = train(values, progress=progress(args), config_hash=args.config_hash, card=card_args(args))
    except Preempted as exc:
        print(f"salt-transfer pretrain: pre-empted: {exc}", file=sys.stderr)
        return PREEMPTED_EXIT
    LOG.info(
        "trained %d steps on %s tokens: final loss %.4f",
        metrics["steps"],
        metrics["tokens_seen"],
        metrics["final_loss"] or float("nan"),
    )
    return 0
