"""Long loops under --no-progress log a line at least every HEARTBEAT_S seconds (a rule's log shows life)."""

from __future__ import annotations

import logging

from salt_transfer import progress


def test_without_a_bar_a_long_loop_logs_a_heartbeat(monkeypatch, caplog):
    clock = iter(float(t) for t in range(0, 1000, 10))  # each item takes 10 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="salt_transfer.progress"):
        assert list(progress.track(range(12), "fitting", bar=False, unit="batch")) == list(range(12))
    beats = [r.getMessage() for r in caplog.records]
    assert len(beats) == 12 * 10 // 30  # one line per 30 s of a 120 s loop
    assert beats[0].startswith("fitting: 3/12 batch")


def test_a_short_loop_stays_quiet(caplog):
    with caplog.at_level(logging.INFO, logger="salt_transfer.progress"):
        list(progress.track(range(1000), "quick", bar=False))
    assert not caplog.records
