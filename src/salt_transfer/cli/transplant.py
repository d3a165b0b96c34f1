"""salt-transfer transplant: source LLM + target tokenizer + fitted rows -> an HF causal-LM directory."""

from .common import add_card_arguments, card_args

NAME = "transplant"
HELP = "source LLM + target tokenizer + fitted rows -> HF causal-LM directory"


def add_arguments(p) -> None:
    p.add_argument("--source-model", required=True, help="source LLM directory")
    p.add_argument(
        "--target-tokenizer", required=True, help="target (PLM) tokenizer; becomes the model's tokenizer"
    )
    p.add_argument("--embeddings", required=True, help="embeddings.safetensors from `salt-transfer fit`")
    p.add_argument(
        "--save-dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="dtype of the saved model; auto keeps the source model's (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="output model directory (replaced atomically)")
    add_card_arguments(p)


def run(args) -> None:
    from ..transplant import transplant
    from .common import LOG

    record = transplant(
        args.source_model,
        args.target_tokenizer,
        args.embeddings,
        args.out,
        save_dtype=args.save_dtype,
        config_hash=args.config_hash,
        card=card_args(args),
    )
    LOG.info("transplanted %s rows (vocab %d) -> %s", record["method"], record["vocab_size"], args.out)
