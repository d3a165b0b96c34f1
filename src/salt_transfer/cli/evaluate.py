"""salt-transfer evaluate: bits per byte, lm-eval tasks and alignment analyses of one model."""

from .common import add_device, add_max_sentences, add_seed, key_value, progress

NAME = "evaluate"
HELP = "evaluate a model: bits per byte, lm-eval tasks, alignment analyses"
DESCRIPTION = "Write OUT_DIR/NAME.json per task, with the model's and the text's sha256 and the cell labels."


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument(
        "--task",
        action="append",
        required=True,
        metavar="NAME=KIND[:ARG]",
        help="task, repeatable: NAME=bpb:PATH scores the text file PATH in bits per byte; "
        "NAME=lm-eval:TASK runs an lm-evaluation-harness task; NAME=alignment runs word/sentence "
        "retrieval and CKA per layer against the source LLM (needs the alignment options below)",
    )
    p.add_argument("--out-dir", required=True, help="directory for NAME.json files")
    p.add_argument(
        "--label",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="cell label recorded in every JSON (stage=init|cpt|source, llm=..., plm=..., method=..., "
        "language=...); the report reads a record's cell from these",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        default=0,
        help="score only the first documents fitting in this many UTF-8 bytes (0: all; default: %(default)s)",
    )
    p.add_argument(
        "--seq-len", type=int, default=1024, help="max tokens per forward pass (default: %(default)s)"
    )
    add_device(p)
    p.add_argument(
        "--include-path",
        action="append",
        default=[],
        help="folder of lm-eval task YAML (repeatable), e.g. the demo tasks from build-tasks",
    )
    p.add_argument("--lm-eval-limit", type=int, help="evaluate at most this many documents per lm-eval task")
    p.add_argument(
        "--num-fewshot", type=int, help="few-shot examples for lm-eval tasks (default: the task's)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="lm-eval batch size (default: %(default)s)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="bf16: forward passes under bfloat16 autocast (log-probabilities summed in float32), about "
        "1.5-2x faster where bfloat16 is native; auto: bf16 on a GPU that supports it or a CPU with "
        "AVX512-BF16/AMX, else fp32. Recorded in every JSON (default: %(default)s)",
    )
    add_seed(p, "lm-eval's random draws and the lexicon's train/test split")
    group = p.add_argument_group("alignment task (Conneau, Wu et al. 2020)")
    group.add_argument("--source-model", help="the source LLM the model was transferred from")
    group.add_argument("--parallel", help="parallel.test.tsv (target and English sentences)")
    group.add_argument("--lexicon", help="lexicon TSV (target word, English word)")
    group.add_argument("--source-states", help="states.safetensors from source-states (same --max-sentences)")
    add_max_sentences(group)


def run(args) -> None:
    from ..errors import InputError
    from ..evaluate import AlignmentInputs, evaluate_model
    from .common import LOG

    given = [args.source_model, args.parallel, args.lexicon, args.source_states]
    if any(given) and not all(given):
        raise InputError(
            "the alignment task needs all of --source-model, --parallel, --lexicon, --source-states"
        )
    alignment = (
        AlignmentInputs(
            args.source_model, args.parallel, args.lexicon, args.source_states, args.max_sentences
        )
        if all(given)
        else None
    )
    records = evaluate_model(
        args.model,
        args.task,
        args.out_dir,
        max_bytes=args.max_bytes,
        seq_len=args.seq_len,
        device=args.device,
        progress=progress(args),
        include_paths=args.include_path,
        lm_eval_limit=args.lm_eval_limit,
        num_fewshot=args.num_fewshot,
        batch_size=args.batch_size,
        seed=args.seed,
        alignment=alignment,
        labels=dict(args.label),
        precision=args.precision,
    )
    for name, rec in records.items():
        LOG.info("%s: %s", name, {k: round(v, 4) for k, v in rec["metrics"].items()})
