"""salt-transfer build-tasks: the demo's lm-eval multiple-choice tasks from held-out parallel text."""

from .common import add_seed

NAME = "build-tasks"
HELP = "build the demo's lm-eval multiple-choice tasks from held-out parallel text"


def add_arguments(p) -> None:
    p.add_argument("--parallel", required=True, help="parallel.test.tsv from fetch-parallel")
    p.add_argument("--lang", required=True, help="target language code (used in task names)")
    p.add_argument("--items", type=int, default=40, help="items per task (default: %(default)s)")
    p.add_argument(
        "--max-words",
        type=int,
        default=24,
        help="use verses of at most this many words (default: %(default)s)",
    )
    add_seed(p, "item and distractor choice")
    p.add_argument(
        "--out-dir", required=True, help="folder for the tasks' YAML and JSONL (an lm-eval include path)"
    )


def run(args) -> None:
    from ..errors import InputError
    from ..tasks import build_tasks
    from .common import LOG

    if args.items < 1 or args.max_words < 4:
        raise InputError(
            f"--items {args.items} / --max-words {args.max_words}: need at least 1 item and 4 words"
        )
    counts = build_tasks(
        args.parallel,
        args.lang,
        args.out_dir,
        items=args.items,
        max_words=args.max_words,
        seed=args.seed,
        config_hash=args.config_hash,
    )
    LOG.info("tasks -> %s: %s", args.out_dir, counts)
