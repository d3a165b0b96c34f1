"""bench/RESULTS.md is shared by the benchmarks: each rewrites only its own section."""

from __future__ import annotations

import subprocess
from pathlib import Path


def write_section(path: Path, name: str, text: str) -> None:
    """Replace (or append) the part of the file between this section's markers."""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    current = path.read_text() if path.is_file() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + ("\n\n" if current else "") + block + "\n"
    path.write_text(current)


def git_version(code: Path) -> str:
    """Short commit of the checkout `code`, with "+dirty" when tracked files differ from it (the
    results file the benchmarks rewrite does not count)."""
    head = subprocess.run(
        ["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [
            "git",
            "-C",
            str(code),
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!bench/RESULTS.md",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (head or "?") + ("+dirty" if dirty else "")
