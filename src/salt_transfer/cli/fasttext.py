"""salt-transfer fasttext: token-level fastText trained on the target corpus (the auxiliary vectors)."""

from ..options import add_arguments as add_option_flags
from ..settings import FastTextOptions

NAME = "fasttext"
ALIASES = ["aux"]
HELP = "train token-level fastText on the target corpus (FOCUS's setting): the auxiliary vectors"
DESCRIPTION = (
    "Tokenize the corpus with the target tokenizer and train fastText on the token strings. "
    "Defaults are deepfocus's (cbow, dim 100, 3 epochs, minCount 10)."
)


def add_arguments(p) -> None:
    p.add_argument("--corpus", required=True, help="target-language text, one document or sentence per line")
    p.add_argument("--tokenizer", required=True, help="target (PLM) tokenizer")
    p.add_argument("--out", required=True, help="fasttext.bin to write")
    add_option_flags(p, FastTextOptions, exclude=["threads"])  # --threads is the common flag


def run(args) -> None:
    from ..fasttext_vectors import train_token_fasttext
    from ..options import from_args
    from .common import LOG

    # One fastText thread unless --threads says otherwise: more threads are not reproducible.
    options = from_args(FastTextOptions, args, threads=args.threads or 1)
    stats = train_token_fasttext(args.corpus, args.tokenizer, args.out, options, config_hash=args.config_hash)
    LOG.info("fastText on %d tokens, %d words -> %s", stats["n_tokens"], stats["n_words"], args.out)
