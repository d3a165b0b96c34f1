"""salt-transfer fetch-mlqa: MLQA as lm-eval tasks without the hub's loading script (see salt_transfer/mlqa.py)."""

from .common import progress

NAME = "fetch-mlqa"
HELP = (
    "download MLQA_V1.zip and write lm-eval tasks salt_mlqa_X_Y for one language (facebook/mlqa is a script)"
)


def add_arguments(p) -> None:
    p.add_argument("--lang", required=True, help="target language (MLQA has en, de, es, ar, hi, vi, zh)")
    p.add_argument("--out-dir", required=True, help="directory for the task YAMLs and JSONL splits")
    p.add_argument("--url", help="MLQA_V1.zip from here instead of dl.fbaipublicfiles.com (a mirror)")
    p.add_argument("--sha256", help="expected sha256 of MLQA_V1.zip")


def run(args) -> None:
    from ..mlqa import MLQA_URL, fetch_mlqa
    from .common import LOG

    counts = fetch_mlqa(
        args.lang,
        args.out_dir,
        url=args.url or MLQA_URL,
        sha256=args.sha256,
        progress=progress(args),
        config_hash=args.config_hash,
    )
    LOG.info("MLQA tasks -> %s: %s", args.out_dir, counts)
