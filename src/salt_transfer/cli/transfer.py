"""salt-transfer transfer: overlap, auxiliary vectors, fit and transplant in one process -> a loadable model."""

from ..catalog import METHODS
from ..options import add_arguments as add_option_flags
from ..settings import FastTextOptions
from .common import add_card_arguments, add_device, add_seed, card_args, key_value, progress

NAME = "transfer"
HELP = "one transferred model in one command: overlap, fastText, fit and transplant"
DESCRIPTION = (
    "Transfer the source LLM to the PLM's vocabulary with one method and write a loadable Hugging Face "
    "directory (with its sidecar and model card). Intermediate artifacts go to --work-dir. The same "
    "library functions as the workflow's rules, so the same inputs and seed give the same bytes."
)


def add_arguments(p) -> None:
    p.add_argument("--source", required=True, help="source LLM directory")
    p.add_argument("--plm", required=True, help="target-language PLM directory (tokenizer + embeddings)")
    aux = p.add_mutually_exclusive_group()
    aux.add_argument("--corpus", help="target-language text to train token-level fastText on")
    aux.add_argument(
        "--fasttext", help="a fastText .bin instead (pretrained cc.<lang>.300.bin, or from `fasttext`)"
    )
    p.add_argument(
        "--method", default="salt", choices=sorted(METHODS), help="transfer method (default: %(default)s)"
    )
    p.add_argument(
        "--option", action="append", type=key_value, metavar="KEY=VALUE", help="method option, repeatable"
    )
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--work-dir", help="intermediate artifacts (default: OUT.work)")
    p.add_argument("--fuzzy", action="store_true", help="also match tokens case-insensitively in the overlap")
    add_seed(p, "every random draw")
    add_device(p)
    p.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help="fit dtype (default: %(default)s)"
    )
    p.add_argument(
        "--save-dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="saved model dtype (default: %(default)s)",
    )
    group = p.add_argument_group("fastText training (with --corpus)")
    add_option_flags(group, FastTextOptions, exclude=["threads"])
    add_card_arguments(p)


def run(args) -> None:
    from ..options import from_args
    from ..pipeline import transfer
    from .common import LOG

    record = transfer(
        args.source,
        args.plm,
        args.out,
        corpus=args.corpus,
        fasttext=args.fasttext,
        method=args.method,
        options=dict(args.option or []),
        work_dir=args.work_dir,
        fasttext_options=from_args(FastTextOptions, args, threads=args.threads or 1),
        fuzzy=args.fuzzy,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        save_dtype=args.save_dtype,
        card=card_args(args),
        progress=progress(args),
        config_hash=args.config_hash,
    )
    LOG.info("transferred model -> %s (intermediates in %s)", record["model"], record["work_dir"])
