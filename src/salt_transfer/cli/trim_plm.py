"""salt-transfer trim-plm: a multilingual PLM cut down to the tokens of the target-language text."""

from ..options import add_arguments as add_option_flags
from ..settings import TrimOptions

NAME = "trim-plm"
HELP = "trim a multilingual PLM's vocabulary to the tokens of target-language text (tokenizer + model)"
DESCRIPTION = (
    "Keep the tokens that occur in the text (at least --min-count times), the special tokens and any "
    "byte-fallback tokens; write a real tokenizer and model with that smaller vocabulary. The text's "
    "tokenization is unchanged (checked). This approximates the paper's monolingual PLMs with a "
    "multilingual one; it is not the paper's setting."
)


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="PLM directory (a fetched model)")
    p.add_argument(
        "--text", required=True, help="target-language text whose tokens are kept (the training split)"
    )
    p.add_argument("--out", required=True, help="trimmed model directory (replaced atomically)")
    add_option_flags(p, TrimOptions)


def run(args) -> None:
    from ..options import from_args
    from ..trim import trim_plm
    from .common import LOG

    record = trim_plm(
        args.model, args.text, args.out, from_args(TrimOptions, args), config_hash=args.config_hash
    )
    LOG.info(
        "kept %d of %d tokens (%.1f%%); the text is %d tokens before and after",
        record["kept"],
        record["original_vocab"],
        100 * record["kept"] / record["original_vocab"],
        record["text_tokens"],
    )
