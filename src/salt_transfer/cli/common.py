"""Pieces every command shares: the common flags, flag helpers declared once, progress and threads.

Nothing here imports torch: building the parser (and `--help`) stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

LOG = logging.getLogger("salt_transfer")


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=100)


def common_parser() -> argparse.ArgumentParser:
    """Flags every command takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (long steps log a line at least every 30 s instead; logs stay at INFO)",
    )
    common.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    common.add_argument(
        "--config-hash",
        default=os.environ.get("SALT_TRANSFER_CONFIG_HASH"),
        help="hash of the workflow config, recorded in *.meta.json (default: $SALT_TRANSFER_CONFIG_HASH)",
    )
    return common


def add_seed(parser, what: str, default: int = 0) -> None:
    parser.add_argument("--seed", type=int, default=default, help=f"seed of {what} (default: %(default)s)")


def add_device(parser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N] (default: %(default)s)"
    )


def add_max_sentences(parser) -> None:
    parser.add_argument(
        "--max-sentences", type=int, default=0, help="use the first N pairs (0: all; default: %(default)s)"
    )


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def progress(args) -> bool:
    return not (args.quiet or args.no_progress)


def configure(args) -> None:
    """Logging level, progress bars of the libraries we call, CPU threads: before any heavy import."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    if not progress(args):
        # transformers', huggingface_hub's and datasets' own bars (tqdm reads TQDM_DISABLE for its
        # default), so a rule's log holds log lines, not progress-bar redraws.
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        if "transformers" in sys.modules:
            from transformers.utils import logging as tlog

            tlog.disable_progress_bar()
    if args.threads:
        if args.threads < 0:
            from ..errors import InputError

            raise InputError(f"--threads {args.threads}: must be 0 (torch's default) or positive")
        if "torch" in sys.modules:
            import torch

            torch.set_num_threads(args.threads)
        else:  # torch reads these when it is imported (later, by the command that needs it)
            os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)


def add_card_arguments(parser) -> None:
    """Model-card header values (README.md in a written model directory)."""
    card = parser.add_argument_group("model card (README.md in the model directory)")
    card.add_argument(
        "--base-model", help="hub id of the source LLM, e.g. HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    card.add_argument("--language", help="the target language (ISO code)")
    card.add_argument("--license", help="the source LLM's license, e.g. Apache-2.0")


def card_args(args) -> dict:
    return {"base_model": args.base_model, "language": args.language, "license": args.license}
