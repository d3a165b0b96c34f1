"""How long a `salt-transfer` command takes to start, per command (median of several runs).

    .venv/bin/python bench/bench_startup.py            # writes the "startup" section of bench/RESULTS.md

For every command: the wall time of `salt-transfer COMMAND --help` in a fresh process, and the time to
import what the command's handler imports when it runs (its `from ..module import` lines, read from
the handler's source), with whether that pulls in torch, transformers or lm-eval. Each figure is the
median of REPEATS fresh processes, interleaved across commands so drift hits all of them alike.
"""

from __future__ import annotations

import ast
import inspect
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))
from results_md import write_section  # noqa: E402
from salt_transfer.cli import COMMANDS  # noqa: E402

REPEATS = 7
HEAVY = ("torch", "transformers", "lm_eval")
EXE = [sys.executable, "-m", "salt_transfer"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT.parent / "src"), "HF_HUB_OFFLINE": "1"}


def handler_imports(module_name: str) -> list[str]:
    """salt_transfer modules the command's `run` imports (relative `from ..x import` lines)."""
    import importlib

    module = importlib.import_module(f"salt_transfer.cli.{module_name}")
    tree = ast.parse(inspect.getsource(module.run).strip() if hasattr(module, "run") else "")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
            found.append(f"salt_transfer.{node.module}")
    return sorted(set(found))


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=ENV, capture_output=True, check=True)
    return time.perf_counter() - t


def import_probe(modules: list[str]) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; "
        + "; ".join(f"import {m}" for m in modules)
        + f"; print(*[m for m in {HEAVY!r} if m in sys.modules])",
    ]


def main() -> None:
    commands = {}
    for module_name in COMMANDS:
        module = __import__(f"salt_transfer.cli.{module_name}", fromlist=["NAME"])
        commands[module.NAME] = handler_imports(module_name)
    help_times = {name: [] for name in ["(none)", *commands]}
    import_times = {name: [] for name in commands}
    for _ in range(REPEATS):
        help_times["(none)"].append(timed([*EXE, "--help"]))
        for name, modules in commands.items():
            help_times[name].append(timed([*EXE, name, "--help"]))
            import_times[name].append(timed(import_probe(modules)) if modules else 0.0)
    heavy = {}
    for name, modules in commands.items():
        out = subprocess.run(
            import_probe(modules), env=ENV, capture_output=True, text=True, check=True
        ).stdout
        heavy[name] = out.split()
    rows = [
        "| command | `--help` (s) | imports of its handler (s) | heavy modules they load |",
        "|---|---|---|---|",
    ]
    for name in help_times:
        med = statistics.median(help_times[name])
        if name == "(none)":
            rows.append(f"| `salt-transfer --help` | {med:.2f} | - | - |")
            continue
        imp = statistics.median(import_times[name])
        rows.append(f"| `{name}` | {med:.2f} | {imp:.2f} | {', '.join(heavy[name]) or 'none'} |")
    worst = max(statistics.median(v) for v in help_times.values())
    light = [name for name in commands if not heavy[name]]
    text = "\n".join(
        [
            "## Start-up per command (`bench/bench_startup.py`)",
            "",
            f"Run on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPU cores ({platform.machine()}), Python "
            f"{platform.python_version()}; each figure is the median of {REPEATS} fresh processes, interleaved.",
            "`--help` builds the whole parser (every command's flags, the method catalog) without importing torch;",
            "the import columns are what loading the modules a command's handler imports costs and pulls in (read",
            "from its handler's source). Heavy packages are imported inside the functions that use them, so a",
            "command may import more once it works: loading a tokenizer imports transformers (`overlap`), fitting",
            "imports torch (`transfer`).",
            "",
            *rows,
            "",
            f"Slowest `--help`: **{worst:.2f} s** (target < 1 s). Commands whose handler's modules load none of "
            f"torch, transformers and lm-eval: {', '.join(f'`{n}`' for n in light) or 'none'}.",
        ]
    )
    print(text)
    write_section(ROOT / "RESULTS.md", "startup", text)


if __name__ == "__main__":
    main()
