"""Resumable HTTP downloads for large public files (pretrained fastText, the MLQA release).

The bytes go to a `.part` file that survives a failed run; each attempt asks for the rest with an HTTP
Range request, so a dropped connection or a killed job costs only what was in flight. Callers check
the result (length, sha256, archive CRC) before they install anything.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import InputError
from .provenance import is_disk_error

LOG = logging.getLogger(__name__)


def download_resuming(
    url: str, part: Path, progress: bool = True, attempts: int = 5, what: str = "download"
) -> int:
    """Fetch `url` into `part`, continuing from its current size (an HTTP Range request; a server that
    ignores it restarts from 0); up to `attempts` tries when the connection drops. Returns the bytes
    received in this call. `what` names the download in messages."""
    received = 0
    for attempt in range(1, attempts + 1):
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
        try:
            response = urllib.request.urlopen(request)  # noqa: S310 (https, a mirror, or file:// in tests)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # nothing left to fetch: the part file is complete
                return received
            raise InputError(f"{what} {url}: cannot be downloaded (HTTP {exc.code} {exc.reason})") from exc
        except (OSError, ValueError) as exc:
            if attempt == attempts or isinstance(exc, ValueError):
                raise InputError(f"{what} {url}: cannot be downloaded ({exc})") from exc
            time.sleep(min(30, 2**attempt))
            continue
        resumed = getattr(response, "status", 200) == 206
        if offset and not resumed:
            offset = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length else None
        bar = tqdm(
            total=expected,
            initial=offset,
            unit="B",
            unit_scale=True,
            desc=part.name,
            disable=not progress,
            mininterval=2,
        )
        try:
            with response, open(part, "ab" if resumed else "wb") as dst:
                while block := response.read(1 << 22):
                    dst.write(block)
                    received += len(block)
                    bar.update(len(block))
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and is_disk_error(exc):
                raise InputError(f"{part}: cannot write the download ({exc.strerror})") from exc
            LOG.warning(
                "%s %s: connection lost at %d bytes (%s); resuming", what, url, part.stat().st_size, exc
            )
            continue
        finally:
            bar.close()
        size = part.stat().st_size
        if expected is None or size == expected:
            return received
        LOG.warning("%s %s: %d of %d bytes; resuming", what, url, size, expected)
    raise InputError(f"{what} {url}: incomplete after {attempts} attempts ({part} is kept; rerun to resume)")


# fastText's pretrained vectors (the paper's auxiliary embeddings) are the one large download here.
CC_URL = "https://dl.fbaipublicfiles.com/fasttext/vectors-crawl/cc.{lang}.300.bin.gz"


def download_fasttext(
    lang: str,
    out: str | Path,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    config_hash: str | None = None,
    attempts: int = 5,
) -> dict:
    """Download and gunzip a pretrained fastText model (Grave et al. 2018, cc.<lang>.300.bin).

    The paper's auxiliary embeddings (docs/paper.md, section 1). About 4.5 GB compressed per language, so
    the compressed bytes go to `<out>.gz.part` first and a dropped connection resumes where it stopped
    (an HTTP Range request, up to `attempts` times in one call; a later call resumes the same file).
    The download must have the length the server announced and, when `sha256` is given, that digest
    (fasttext.cc publishes none; a mirror may): a mismatch deletes the partial file and is an input
    error. gzip's own CRC is checked while decompressing into a temp file, renamed only when complete.
    `url` may contain `{lang}`.
    """
    import gzip
    import re
    import shutil

    from .provenance import Meta, atomic_path, check_output, sha256_file

    out = check_output(out)
    if url is None and not re.fullmatch(r"[a-z]{2,3}", lang):
        raise InputError(f"fastText language {lang!r}: expected an ISO code such as de, ar or vi")
    url = (url or CC_URL).format(lang=lang)
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise InputError(f"--sha256 {sha256!r}: expected 64 lowercase hex digits")
    part = out.with_name(out.name + ".gz.part")
    received = download_resuming(url, part, progress=progress, attempts=attempts, what="fastText")
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise InputError(f"fastText {url}: sha256 {digest}, expected {sha256}; the download was removed")
    meta = Meta(
        "fetch-fasttext",
        params={"url": url, "lang": lang, "gz_sha256": digest, "gz_bytes": part.stat().st_size},
        config_hash=config_hash,
    )
    try:
        with atomic_path(out, meta) as tmp, gzip.open(part, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        part.unlink()
        raise InputError(
            f"fastText {url}: not a complete gzip file ({exc}); the download was removed"
        ) from exc
    part.unlink()
    return {"url": url, "bytes_downloaded": received, "gz_sha256": digest}
