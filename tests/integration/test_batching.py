"""Adaptive batching in the real process: the batch interval applies under load only."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

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



def test_a_scrape_counts_the_rows_committed_before_it(db_url: str, tmp_path: Path) -> None:
    """Without NOTIFY (poll-only mode) and with a poll every 30 s, rows committed while the
    processor idles are on the very next scrape: the scrape asks for a read and waits for
    its batch (the code before showed them up to 30 s later)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT mlops.set_notify(false)")
    p = ProcessorProcess(db_url, log_path=tmp_path / "processor.log", env={
        "POLL_INTERVAL_SECONDS": "30", "MIN_BATCH_INTERVAL_SECONDS": "5"}).start()
    try:
        p.wait_ready()
        assert p.events() == 0
        for n in range(1, 4):
            insert_requests(db_url, 10 * n, 3 * n, per_tx=n)  # 1, 2, then 3 commits
            assert p.events() == 3 * n * (n + 1) / 2
    finally:
        p.stop()
