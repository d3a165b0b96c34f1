"""salt-transfer source-states: the source LLM's mean-pooled states on the English side of parallel text."""

from .common import add_device, add_max_sentences

NAME = "source-states"
HELP = "mean-pooled hidden states of the source LLM on the English side of parallel text"


def add_arguments(p) -> None:
    p.add_argument("--source-model", required=True, help="source LLM directory")
    p.add_argument("--parallel", required=True, help="parallel.test.tsv")
    add_max_sentences(p)
    add_device(p)
    p.add_argument("--out", required=True, help="states.safetensors to write")


def run(args) -> None:
    from ..analysis import source_states
    from .common import LOG

    info = source_states(
        args.source_model,
        args.parallel,
        args.out,
        max_sentences=args.max_sentences,
        device=args.device,
        config_hash=args.config_hash,
    )
    LOG.info("source states: %s -> %s", info, args.out)
