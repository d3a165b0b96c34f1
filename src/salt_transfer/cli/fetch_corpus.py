"""salt-transfer fetch-corpus: a corpus split into never-overlapping train/valid/test by whole documents."""

import textwrap

from .common import add_seed

NAME = "fetch-corpus"
HELP = "fetch a corpus and split it into never-overlapping train/valid/test"
DESCRIPTION = textwrap.dedent("""\
    Write OUT_DIR/{train,valid,test}.txt (one document, or with --sentences one sentence, per line)
    and manifest.json. Whole documents go to one split. SOURCE is one of:
      sword:MODULE                   a SWORD Bible module (Debian sword-text-*; needs mod2imp)
      file:PATH                      one document per line (UTF-8)
      hf-dataset:NAME@REV[:CONFIG]   the `text` field of a datasets corpus, streamed""")
SPLIT_HELP = (
    'JSON: {"by": "book", "valid": [books], "test": [books]} or {"by": "hash", "valid": 0.01, "test": 0.01}'
)


def split_arg(text: str) -> dict:
    import json

    from ..errors import InputError

    try:
        split = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--split {text!r}: not JSON ({exc})") from exc
    if not isinstance(split, dict):
        raise InputError(f"--split {text!r}: expected a JSON object")
    return split


def add_arguments(p) -> None:
    p.add_argument("--source", required=True, help="corpus source, see above")
    p.add_argument("--out-dir", required=True, help="output directory")
    p.add_argument(
        "--split",
        default='{"by": "hash", "valid": 0.01, "test": 0.01}',
        help=SPLIT_HELP + " (default: %(default)s)",
    )
    p.add_argument("--max-docs", type=int, help="read at most this many documents (e.g. Wikipedia articles)")
    p.add_argument(
        "--sentences", action="store_true", help="write one sentence per line instead of one document"
    )
    add_seed(p, "the hash split")


def run(args) -> None:
    from ..corpora import fetch_corpus

    fetch_corpus(
        args.source,
        args.out_dir,
        split_arg(args.split),
        max_docs=args.max_docs,
        sentences=args.sentences,
        seed=args.seed,
    )
