"""Adaptive batching in the real process: the batch interval applies under load only."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers import ProcessorProcess, insert_requests, wait_for


def test_a_commit_after_a_quiet_spell_is_served_at_once(db_url: str, tmp_path: Path) -> None:
    """With MIN_BATCH_INTERVAL_SECONDS=5 and a poll every 30 s, a lone commit after a
    quiet spell is still consumed within a fraction of the interval: the interval only
    spaces batches while commits keep arriving (the code before waited it out, in the
    listener and in the loop)."""
    p = ProcessorProcess(db_url, log_path=tmp_path / "processor.log", env={
        "MIN_BATCH_INTERVAL_SECONDS": "5", "POLL_INTERVAL_SECONDS": "30"}).start()
    try:
        p.wait_ready()
        insert_requests(db_url, 0, 1)
        wait_for(lambda: p.events() >= 1, 30, "the first row")
        time.sleep(0.5)  # quiet: far more than the 2 ms that count as load
        t0 = time.monotonic()
        insert_requests(db_url, 1, 1)
        wait_for(lambda: p.events() >= 2, 30, "the second row")
        assert time.monotonic() - t0 < 2.5
    finally:
        p.stop()

