"""salt-transfer overlap: shared tokens of a target (PLM) and a source (LLM) tokenizer."""

NAME = "overlap"
HELP = "shared tokens of a target (PLM) and a source (LLM) tokenizer"
DESCRIPTION = (
    "Match target tokens to source tokens by canonical byte form (SentencePiece ▁ and <0xNN>, "
    "byte-level Ġ, WordPiece ##) and special tokens by role."
)


def add_arguments(p) -> None:
    p.add_argument(
        "--target-tokenizer",
        required=True,
        help="PLM tokenizer: HF dir, .gguf, tokenizer.json or ORG/NAME@REV",
    )
    p.add_argument("--source-tokenizer", required=True, help="source LLM tokenizer (same forms)")
    p.add_argument(
        "--out", required=True, help="overlap.parquet: target_id, source_id, canonical form, match kind"
    )
    p.add_argument(
        "--stats",
        required=True,
        help="stats.json: counts, coverage of the target vocabulary, per-kind counts",
    )
    p.add_argument(
        "--fuzzy",
        action="store_true",
        help="also match remaining tokens case-insensitively (FOCUS's fuzzy_match_all); default: exact only",
    )


def run(args) -> None:
    from ..tokens import overlap_files
    from .common import LOG

    result = overlap_files(
        args.target_tokenizer,
        args.source_tokenizer,
        args.out,
        args.stats,
        fuzzy=args.fuzzy,
        config_hash=args.config_hash,
    )
    s = result.stats
    LOG.info(
        "shared %d of %d target tokens (%.1f%%): %s",
        s["n_shared"],
        s["n_target"],
        100 * s["target_coverage"],
        s["by_match"],
    )
