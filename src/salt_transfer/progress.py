"""Progress of long loops: a tqdm bar on a terminal, or a log line at least every 30 s without one.

`salt-transfer --no-progress` (what the workflow's rules pass) turns the bars off, and a step of
several minutes would then print nothing: `track` logs "<what>: i/n (rate)" at most every
`HEARTBEAT_S` seconds instead, so a rule's log shows the job is alive and how far it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

HEARTBEAT_S = 30.0
LOG = logging.getLogger("salt_transfer.progress")


def track(
    items: Iterable[T], desc: str, total: int | None = None, bar: bool = True, unit: str = "it"
) -> Iterator[T]:
    """Iterate `items` with a progress bar (`bar`) or heartbeat log lines (no bar)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if bar:
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=unit, mininterval=2)
        return
    start = last = time.monotonic()
    for done, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= HEARTBEAT_S:
            last = now
            of = f"/{total}" if total else ""
            LOG.info("%s: %d%s %s (%.1f %s/s)", desc, done, of, unit, done / (now - start), unit)
