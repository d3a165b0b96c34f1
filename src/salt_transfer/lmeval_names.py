"""The task names lm-evaluation-harness knows, read from its task YAML files without importing it.

The workflow checks the config's `evaluate.lm_eval_tasks` against them when it starts, so a typo is
an error in `snakemake -n`, not hours later in a job. lm-eval's own TaskManager indexes the same files
but takes several seconds and imports the harness; this reads the `task:`, `group:` and `tag:` lines
of its ~14,000 YAML files (about a second) and caches the result per lm-eval version.
"""

from __future__ import annotations

import importlib.util
import json
import re
from importlib import metadata
from pathlib import Path

_NAME_LINE = re.compile(r"^(?:task|group|tag):\s*(.+)$", re.M)
_LIST_ITEM = re.compile(r"^\s+-\s*([\w.\-]+)\s*$", re.M)


def _tasks_dir() -> Path | None:
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


def _scan(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for value in _NAME_LINE.findall(text):
            value = value.strip().strip("'\"")
            if value and value[0] not in "[{!":
                names.add(value.split("#")[0].strip().strip("'\""))
        if re.search(r"^tag:\s*$", text, re.M):  # tag: followed by a list
            names.update(_LIST_ITEM.findall(text.split("tag:", 1)[1].split("\n\n", 1)[0]))
    return {n for n in names if n}


def known_task_names(cache_dir: str | Path | None = None) -> set[str] | None:
    """Every task, group and tag name of the installed lm-eval (None when it is not installed)."""
    folder = _tasks_dir()
    if folder is None or not folder.is_dir():
        return None
    version = metadata.version("lm_eval")
    cache = Path(cache_dir) / f"lm_eval-{version}-tasks.json" if cache_dir else None
    if cache is not None and cache.is_file():
        return set(json.loads(cache.read_text()))
    names = _scan(folder)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(names)))
        tmp.replace(cache)
    return names
