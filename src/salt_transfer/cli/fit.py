"""salt-transfer fit: target-vocabulary embeddings with a transfer method."""

from ..catalog import METHODS
from .common import add_device, add_seed, key_value, progress

NAME = "fit"
HELP = "fit target-vocabulary embeddings with a transfer method"
DESCRIPTION = (
    "Shared tokens copy their source row; new tokens get the method's rows; tokens without an auxiliary "
    "vector get N(mean, std) of the source rows.\nMethods: "
    + ", ".join(sorted(METHODS))
    + " (`salt-transfer methods` lists each one's options and paper)."
)


def add_arguments(p) -> None:
    p.add_argument("--method", required=True, choices=sorted(METHODS), help="transfer method")
    p.add_argument("--name", help="name of this method variant in the workflow config (recorded in fit.json)")
    p.add_argument("--source-model", required=True, help="source LLM directory (safetensors)")
    p.add_argument("--overlap", required=True, help="overlap.parquet from `salt-transfer overlap`")
    p.add_argument("--plm", help="target PLM directory (its input embeddings; needed by salt, procrustes)")
    p.add_argument("--target-tokenizer", help="target tokenizer (default: the --plm directory)")
    p.add_argument("--aux", help="fastText .bin (needed by salt, focus, ofa)")
    p.add_argument(
        "--aux-lookup",
        choices=["token", "word"],
        help="token: the model was trained on tokenized text (`salt-transfer aux`); word: a pretrained "
        "word-level model such as cc.<lang>.300.bin (default: token if --aux has a salt-transfer "
        "sidecar, else word)",
    )
    p.add_argument(
        "--option",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="method option, repeatable (e.g. --option rank=100 for ofa, --option norm_cap=1 for salt)",
    )
    p.add_argument("--out", required=True, help="embeddings.safetensors to write")
    p.add_argument("--report", required=True, help="fit.json to write")
    add_seed(p, "every random draw")
    add_device(p)
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="dtype of the computation and output rows (default: %(default)s)",
    )


def run(args) -> None:
    from ..fit import fit_embeddings
    from .common import LOG

    record = fit_embeddings(
        args.method,
        args.source_model,
        args.overlap,
        args.out,
        args.report,
        plm=args.plm,
        target_tokenizer=args.target_tokenizer,
        aux=args.aux,
        aux_lookup=args.aux_lookup,
        options=dict(args.option or []),
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        progress=progress(args),
        config_hash=args.config_hash,
        name=args.name,
    )
    LOG.info(
        "%s: %d shared copied, %d fitted, %d random, in %.1f s on %s",
        args.method,
        record["n_copied"],
        record["n_fitted"],
        record["n_random"],
        record["timings"]["total_s"],
        record["device"],
    )
