"""salt-transfer analyze: word/sentence retrieval and CKA per layer between a transferred model and its source."""

from .common import add_device, add_max_sentences, add_seed

NAME = "analyze"
HELP = "word/sentence retrieval and CKA per layer between a transferred model and its source"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="transferred model directory (init or cpt)")
    p.add_argument("--source-model", required=True, help="the source LLM it was transferred from")
    p.add_argument("--parallel", required=True, help="parallel.test.tsv (target and English sentences)")
    p.add_argument("--lexicon", required=True, help="lexicon TSV from build-lexicon")
    p.add_argument(
        "--source-states", required=True, help="states.safetensors from source-states (same --max-sentences)"
    )
    add_max_sentences(p)
    add_seed(p, "the lexicon's train/test split")
    add_device(p)
    p.add_argument("--out", required=True, help="analysis JSON to write")


def run(args) -> None:
    from ..analysis import analyze
    from .common import LOG

    record = analyze(
        args.model,
        args.source_model,
        args.parallel,
        args.lexicon,
        args.source_states,
        args.out,
        max_sentences=args.max_sentences,
        seed=args.seed,
        device=args.device,
        config_hash=args.config_hash,
    )
    LOG.info(
        "analysis: %s",
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in record["summary"].items()},
    )
