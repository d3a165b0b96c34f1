"""Hashes, atomic writes and the `*.meta.json` sidecar every artifact gets.

Writes are atomic (temp file in the same directory, then `os.replace`), so a killed job never
leaves a half-written artifact under its final name. Directory artifacts (model directories) are
built in a sibling temp directory and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20  # 1 MiB reads keep hashing memory flat for multi-GB weight files

META_SUFFIX = ".meta.json"
SNAKEMAKE_MARKER = ".snakemake_timestamp"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (md5 is what DVC records in dvc.lock)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def sha256_tree(path: str | os.PathLike) -> str:
    """Hash of a directory: sha256 over sorted (relative path, file sha256) lines.

    Renaming a file, adding one, or changing one byte changes the hash; the directory's own
    location and file times do not. Snakemake's `.snakemake_timestamp` (an empty marker it adds to
    a directory output after the job, i.e. after that job hashed it) is not content and is skipped.
    """
    root = Path(path)
    if root.is_file():
        return sha256_file(root)
    h = hashlib.sha256()
    files = (q for q in root.rglob("*") if q.is_file() and q.name != SNAKEMAKE_MARKER)
    for p in sorted(files):
        h.update(f"{p.relative_to(root).as_posix()}\t{sha256_file(p)}\n".encode())
    return h.hexdigest()


def file_hashes(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file under a directory, keyed by relative POSIX path."""
    root = Path(path)
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `final`; on success rename it onto `final`, on error delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; artifacts get the usual permissions (0666 minus the umask).
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp directory next to `final`; on success it replaces `final` as a whole."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        _usual_modes(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return mask


def _usual_modes(root: Path) -> None:
    """Give a finished artifact tree the usual permissions (0777/0666 minus the umask).

    mkdtemp creates 0700 directories and some writers create 0600 files (transformers'
    save_pretrained does for model.safetensors); an artifact on a shared cluster filesystem or in a
    DVC cache must be readable like any other file. Execute bits of files are kept.
    """
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, 0o777 & ~mask)
        else:
            os.chmod(path, (0o666 | (path.stat().st_mode & 0o111)) & ~mask)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def git_state(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout the command runs in (None outside a checkout)."""
    cwd = Path(cwd or os.getcwd())
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return {"git_sha": sha, "git_dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"git_sha": None, "git_dirty": None}


_VERSIONED = (
    "salt-transfer",
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "numpy",
    "fasttext-wheel",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def meta_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + META_SUFFIX)


def write_meta(
    artifact: str | os.PathLike,
    *,
    command: str,
    inputs: Mapping[str, str | os.PathLike | None],
    params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    device: str | None = None,
    config_hash: str | None = None,
) -> Path:
    """Write `<artifact>.meta.json`: what was computed, from which bytes, by which code.

    `inputs` maps a role ("source_model", "overlap", ...) to a file or directory; each is hashed.
    The artifact's own hash is recorded too so an audit can tell a stale sidecar from a fresh one.
    """
    record = {
        "artifact": Path(artifact).name,
        "artifact_sha256": sha256_tree(artifact),
        "command": command,
        "inputs": {
            role: ({"path": str(p), "sha256": sha256_tree(p)} if p is not None else None)
            for role, p in sorted(inputs.items())
        },
        "params": dict(params or {}),
        "seed": seed,
        "device": device,
        "config_hash": config_hash,
        **git_state(),
        "versions": package_versions(),
    }
    out = meta_path(artifact)
    write_json_atomic(out, record)
    return out
