"""Hand freed heap memory back to the operating system between the phases of a large fit.

glibc keeps memory freed by worker threads in per-thread arenas; after the least-squares phase
(2 worker threads, hundreds of MB of per-batch temporaries each) about 1 GB of freed memory stayed
mapped and counted in the process's RSS for the rest of the fit (multilingual bench, issue #12).
`malloc_trim(0)` returns it. Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys


def release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc `malloc_trim`); a no-op where it does not exist."""
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
