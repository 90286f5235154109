"""Adaptive batching in the real process: the batch interval applies under load only."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg

from tests.helpers import (
    INSERT,
    ProcessorProcess,
    insert_requests,
    metric_sum,
    request_row,
    scrape,
    wait_for,
)


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
        "POLL_INTERVAL_SECONDS": "30"}).start()
    try:
        p.wait_ready()
        assert p.events() == 0
        for n in range(1, 4):
            insert_requests(db_url, 10 * n, 3 * n, per_tx=n)  # three commits of n rows
            assert p.events() == 3 * n * (n + 1) / 2
    finally:
        p.stop()


def test_under_load_a_scrape_does_not_wait_for_the_batch_interval(
        db_url: str, tmp_path: Path) -> None:
    """Busy writers with MIN_BATCH_INTERVAL_SECONDS=5: batches are 5 s apart, yet every
    scrape counts every row committed before it started (a scrape cuts the coalescing wait
    short; without that it would give up after a second and show rows seconds old)."""
    p = ProcessorProcess(db_url, log_path=tmp_path / "processor.log", env={
        "MIN_BATCH_INTERVAL_SECONDS": "5"}).start()
    committed, stop = [0], threading.Event()

    def writer() -> None:  # commits of 5 rows: every batch finds more than one
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(INSERT, [request_row(committed[0] + i) for i in range(5)])
                committed[0] += 5
                time.sleep(0.002)

    th = threading.Thread(target=writer)
    try:
        p.wait_ready()
        th.start()
        wait_for(lambda: committed[0] >= 1000, 30, "writers busy")
        for _ in range(5):
            before = committed[0]
            assert p.events() >= before
            time.sleep(0.3)
        # The interval was in force: a few batches (two per scrape at most), not one per
        # commit or so.
        batches = metric_sum(scrape(p.port), "mlops_processor_batches_total")
        assert batches < committed[0] / 10
    finally:
        stop.set()
        if th.is_alive():
            th.join(10)
        p.stop()
