"""Hashes, atomic writes, output-location checks and the `*.meta.json` sidecar every artifact gets.

Writes are atomic: an artifact is built under a temporary name in its own directory and renamed
into place only when complete, so a killed job never leaves a half-written artifact under its final
name. An artifact and its sidecar appear together: the sidecar (which records the artifact's own
sha256) is written first, then the artifact is renamed into place; a kill in between leaves a
sidecar without an artifact, which the next run overwrites, never an artifact without a sidecar.

Temporaries are named `.<name>.<host>-<pid>.<random>.tmp`, so a later writer of the same artifact
removes those left by killed processes of this host (`clean_stale`), and a model copy per kill does
not pile up. `check_output` is called by every writer *before* it computes: an output location
that cannot be written (parent is a file, not writable, a directory where a file is meant, a file
or someone's non-empty directory where a model directory is meant) is an InputError naming it, and
nothing the user put there is ever renamed or overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import InputError

_CHUNK = 1 << 20  # 1 MiB reads keep hashing memory flat for multi-GB weight files

META_SUFFIX = ".meta.json"
SNAKEMAKE_MARKER = ".snakemake_timestamp"
# A directory holding one of these was written by a fetch or by this suite: safe to replace.
_OWN_DIR_MARKERS = ("manifest.json",)


# Digests already computed in this process, keyed by what identifies a file's content without
# reading it again: a command hashes its inputs for its checks, its record and its sidecar (a
# 540 MB model three times, 1-2 s each). Only files last modified over 2 s ago are remembered:
# file times tick in jiffies (about 4 ms), so a same-size rewrite right after a hash could keep its
# mtime, while any later rewrite of an older file changes it.
_DIGESTS: dict[tuple, str] = {}
_SETTLED_S = 2.0
# Digests being computed by `prefetch_digests`' thread: a caller wanting one of them waits for it.
_IN_FLIGHT: dict[tuple, Future] = {}
_IN_FLIGHT_LOCK = threading.Lock()


def _digest_key(path: str | os.PathLike, algorithm: str) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, algorithm)


def prefetch_digests(paths: Iterator[str | os.PathLike | None] | list) -> None:
    """Start hashing these inputs (files or directory trees) in a background thread, so the sidecar
    written at the end finds their digests ready: hashing a 2 GB source model took 1.5 s of a 14 s
    fit, while most of a fit's set-up runs on one core (hashlib releases the GIL). Missing paths are
    skipped (the command reports them itself)."""
    files = []
    for p in paths:
        if p is None or not os.path.exists(p):
            continue
        root = Path(p)
        files += [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
    todo = []
    with _IN_FLIGHT_LOCK:
        for f in files:
            key = _digest_key(f, "sha256")
            if key not in _DIGESTS and key not in _IN_FLIGHT:
                _IN_FLIGHT[key] = Future()
                todo.append((f, key))
    if todo:
        threading.Thread(target=_hash_all, args=(todo,), daemon=True, name="prefetch-digests").start()


def _hash_all(todo: list[tuple[Path, tuple]]) -> None:
    for path, key in todo:
        future = _IN_FLIGHT[key]
        try:
            future.set_result(_read_digest(path, key))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)
        finally:
            with _IN_FLIGHT_LOCK:
                _IN_FLIGHT.pop(key, None)


def _read_digest(path: str | os.PathLike, key: tuple) -> str:
    h = hashlib.new(key[-1])
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    # The file must not have changed while it was read; then the digest may be remembered.
    if _digest_key(path, key[-1]) == key and time.time() - key[4] / 1e9 > _SETTLED_S:
        _DIGESTS[key] = h.hexdigest()
    return h.hexdigest()


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (md5 is what DVC records in dvc.lock)."""
    key = _digest_key(path, algorithm)
    if key in _DIGESTS:
        return _DIGESTS[key]
    with _IN_FLIGHT_LOCK:
        pending = _IN_FLIGHT.get(key)
    if pending is not None:
        return pending.result()
    return _read_digest(path, key)


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


# ----------------------------------------------------------------------------------------------
# Output locations and temporaries


def meta_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + META_SUFFIX)


def _writable_dir(folder: Path, label: str) -> None:
    """`folder` exists as a writable directory, or can be created: an InputError otherwise."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"{label}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{label}: {probe} is not writable")


def is_own_directory(path: Path) -> bool:
    """A directory this suite wrote (a sidecar beside it, or a fetch manifest in it), or an empty one."""
    return (
        meta_path(path).is_file()
        or any((path / m).is_file() for m in _OWN_DIR_MARKERS)
        or not any(path.iterdir())
    )


def check_output(path: str | os.PathLike, *, directory: bool = False, label: str = "--out") -> Path:
    """Check before computing that `path` can be written as a file (or a directory); return it.

    Refused, by name: a parent that is a file or not writable; a directory where a file is meant;
    a file where a directory is meant; a non-empty directory this suite did not write (replacing it
    would delete the user's files).
    """
    path = Path(path)
    label = f"{label} {path}"
    if path.exists() or path.is_symlink():
        if directory:
            if not path.is_dir():
                raise InputError(f"{label}: exists and is not a directory; remove it or choose another path")
            if not is_own_directory(path):
                raise InputError(
                    f"{label}: a non-empty directory not written by salt-transfer; remove it or choose another path"
                )
        elif path.is_dir():
            raise InputError(f"{label}: is a directory; give a file path")
    _writable_dir(path.parent, label)
    return path


_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(final: Path) -> list[Path]:
    """Remove temporaries of `final` left by dead processes of this host, and a leftover `.old` copy."""
    removed = []
    parent = final.parent
    if not parent.is_dir():
        return removed
    host = _host()
    for entry in parent.glob(f".{final.name}.*.tmp"):
        m = _TMP_RE.match(entry.name)
        if (
            not m
            or m.group("name") != final.name
            or m.group("host") != host
            or pid_alive(int(m.group("pid")))
        ):
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        removed.append(entry)
    old = parent / f".{final.name}.old"
    if old.exists():
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        removed.append(old)
    return removed


def _tmp_prefix(final: Path) -> str:
    return f".{final.name}.{_host()}-{os.getpid()}."


# ----------------------------------------------------------------------------------------------
# Sidecars


@dataclass
class Meta:
    """What a sidecar records besides the artifact's own hash (see `write_meta`)."""

    command: str
    inputs: Mapping[str, str | os.PathLike | None] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    device: str | None = None
    config_hash: str | None = None


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


def meta_record(artifact_name: str, artifact_sha256: str, meta: Meta) -> dict[str, Any]:
    return {
        "artifact": artifact_name,
        "artifact_sha256": artifact_sha256,
        "command": meta.command,
        "inputs": {
            role: ({"path": str(p), "sha256": sha256_tree(p)} if p is not None else None)
            for role, p in sorted(meta.inputs.items())
        },
        "params": dict(meta.params or {}),
        "seed": meta.seed,
        "device": meta.device,
        "config_hash": meta.config_hash,
        **git_state(),
        "versions": package_versions(),
    }


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
    """Write `<artifact>.meta.json` for an artifact already in place: what was computed, from which
    bytes, by which code. Writers use `atomic_path(..., meta=...)` instead, which writes the sidecar
    and the artifact together."""
    meta = Meta(command, inputs, params or {}, seed, device, config_hash)
    artifact = Path(artifact)
    out = meta_path(artifact)
    write_json_atomic(out, meta_record(artifact.name, sha256_tree(artifact), meta))
    return out


# ----------------------------------------------------------------------------------------------
# Atomic writes


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return mask


def _usual_modes(root: Path) -> None:
    """Give a finished artifact the usual permissions (0777/0666 minus the umask).

    mkstemp/mkdtemp create 0600/0700 and some writers create 0600 files (transformers'
    save_pretrained does for model.safetensors); an artifact on a shared cluster filesystem or in a
    DVC cache must be readable like any other file. Execute bits of files are kept.
    """
    mask = _umask()
    if root.is_file():
        os.chmod(root, (0o666 | (root.stat().st_mode & 0o111)) & ~mask)
        return
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, 0o777 & ~mask)
        else:
            os.chmod(path, (0o666 | (path.stat().st_mode & 0o111)) & ~mask)


def _publish(tmp: Path, final: Path, meta: Meta | None) -> None:
    """Move a finished temporary onto `final`; with `meta`, the sidecar lands first (module doc)."""
    _usual_modes(tmp)
    old = final.with_name(f".{final.name}.old")
    if final.is_dir() and not final.is_symlink():
        os.replace(final, old)  # so no old artifact sits beside the new sidecar
    elif meta is not None and final.exists():
        final.unlink()
    if meta is not None:
        write_json_atomic(meta_path(final), meta_record(final.name, sha256_tree(tmp), meta))
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, meta: Meta | None = None) -> Iterator[Path]:
    """Yield a temp path next to `final`; on success rename it onto `final` (its sidecar first when
    `meta` is given), on error delete it."""
    final = Path(final)
    check_output(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(final), suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _publish(tmp_path, final, meta)
    except OSError as exc:
        if is_disk_error(exc):  # a full disk or a read-only file system: name what was being written
            raise InputError(f"--out {final}: cannot be written ({exc.strerror})") from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, meta: Meta | None = None) -> Iterator[Path]:
    """Yield an empty temp directory next to `final`; on success it replaces `final` as a whole
    (its sidecar first when `meta` is given). A file at `final` is never renamed (an InputError);
    library entry points call `check_output(final, directory=True)` before computing, which also
    refuses someone's non-empty directory."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise InputError(f"--out {final}: exists and is not a directory; remove it or choose another path")
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        _publish(tmp, final, meta)
    except OSError as exc:
        if is_disk_error(exc):
            raise InputError(f"--out {final}: cannot be written ({exc.strerror})") from exc
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text_atomic(path: str | os.PathLike, text: str, meta: Meta | None = None) -> None:
    with atomic_path(path, meta) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any, meta: Meta | None = None) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", meta)


def is_disk_error(exc: OSError) -> bool:
    """Errors of the output location (full disk, read-only or unwritable file system), not bugs."""
    return exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM, errno.EFBIG)
