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
