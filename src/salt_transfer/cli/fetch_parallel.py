"""salt-transfer fetch-parallel: English translations of a corpus's test documents, as a TSV."""

from .common import add_seed
from .fetch_corpus import SPLIT_HELP, split_arg

NAME = "fetch-parallel"
HELP = "English translations of a corpus's test documents, as a TSV"
DESCRIPTION = (
    "Write key, target text and English text for every test document (same split settings as "
    "fetch-corpus) that the English source also has."
)


def add_arguments(p) -> None:
    p.add_argument("--source", required=True, help="target-language corpus source (as for fetch-corpus)")
    p.add_argument(
        "--english", required=True, help="English source with the same document keys, e.g. sword:engWEB2015eb"
    )
    p.add_argument("--split", required=True, help="the target corpus's --split " + SPLIT_HELP)
    add_seed(p, "the hash split")
    p.add_argument("--out", required=True, help="TSV to write")


def run(args) -> None:
    from ..corpora import fetch_parallel
    from .common import LOG

    n = fetch_parallel(
        args.source,
        args.english,
        split_arg(args.split),
        args.out,
        seed=args.seed,
        config_hash=args.config_hash,
    )
    LOG.info("%d parallel test pairs -> %s", n, args.out)
