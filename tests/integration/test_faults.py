"""The processor as a real process under faults: kill -9, cut connections, Postgres restarts.
After each, exported totals equal what the database says."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from stream_mlops.dev.embedded import EmbeddedPostgres
from tests.conftest import new_database
from tests.helpers import (
    ProcessorProcess,
    db_totals,
    http_status,
    insert_requests,
    metric_sum,
    persisted_totals,
    scrape,
    wait_for,
)


def assert_exports_match_database(p: ProcessorProcess, url: str) -> None:
    count, cost = db_totals(url)
    wait_for(lambda: p.events() == count, 60, f"processor to reach {count} events")
    m = scrape(p.port)
    assert metric_sum(m, "mlops_requests_total") == count
    assert metric_sum(m, "mlops_processor_events_total") == count
    assert metric_sum(m, "mlops_cost_usd_total") == pytest.approx(float(cost), rel=1e-12)
    # The persisted state is exact to the pico-dollar, and so are the hourly roll-ups.
    assert persisted_totals(url) == (count, cost, count)
    with psycopg.connect(url) as conn:
        rolled = conn.execute("SELECT coalesce(sum(request_count), 0), coalesce(sum(cost_usd), 0)"
                              " FROM mlops.cost_tracking").fetchone()
    assert rolled is not None and (int(rolled[0]), rolled[1]) == (count, cost)
    assert metric_sum(m, "mlops_cost_window_usd", window="7d") == pytest.approx(float(cost),
                                                                                rel=1e-9)


def test_kill_9_at_random_points_loses_and_duplicates_nothing(db_url: str,
                                                                tmp_path: Path) -> None:
    rng = random.Random(7)
    done = threading.Event()

    def write() -> None:
        i = 0
        while i < 6000:
            n = rng.choice([1, 1, 5, 50])
            insert_requests(db_url, i, n, per_tx=n)
            i += n
        done.set()

    writer = threading.Thread(target=write)
    p = ProcessorProcess(db_url, env={"BATCH_SIZE": "97"}, log_path=tmp_path / "p.log").start()
    writer.start()
    kills = 0
    while not done.is_set() or kills < 4:
        time.sleep(rng.uniform(0.05, 0.6))
        p.kill()
        kills += 1
        p.start()
    writer.join()
    p.wait_ready()
    assert_exports_match_database(p, db_url)
    assert p.stop() == 0
    assert kills >= 4


def test_listener_connection_killed_reconnects_and_catches_up(db_url: str,
                                                             tmp_path: Path) -> None:
    # A long poll interval: only the listener can wake the consumer promptly.
    p = ProcessorProcess(db_url, env={"POLL_INTERVAL_SECONDS": "30"},
                         log_path=tmp_path / "p.log").start()
    p.wait_ready()
    with psycopg.connect(db_url, autocommit=True) as su:
        killed = su.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'stream-mlops listener'").fetchone()
    assert killed is not None and killed[0] == 1
    insert_requests(db_url, 0, 200, per_tx=20)
    wait_for(lambda: metric_sum(scrape(p.port), "mlops_processor_reconnects_total") >= 1, 20,
             "the listener to notice")
    wait_for(lambda: metric_sum(scrape(p.port), "mlops_processor_listening") == 1, 20,
             "the listener to reconnect")
    insert_requests(db_url, 200, 10)
    assert_exports_match_database(p, db_url)  # within a 30 s poll: woken by NOTIFY
    assert p.stop() == 0


def test_consumer_connection_killed_mid_stream(db_url: str, tmp_path: Path) -> None:
    p = ProcessorProcess(db_url, env={"BATCH_SIZE": "50"}, log_path=tmp_path / "p.log").start()
    p.wait_ready()
    writer = threading.Thread(target=insert_requests, args=(db_url, 0, 3000, 10))
    writer.start()
    with psycopg.connect(db_url, autocommit=True) as su:
        for _ in range(5):
            time.sleep(0.3)
            su.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       " WHERE application_name LIKE 'stream-mlops%'")
    writer.join()
    assert_exports_match_database(p, db_url)
    assert p.stop() == 0


def test_postgres_restarted_under_the_processor(own_pg: EmbeddedPostgres,
                                                tmp_path: Path) -> None:
    url = new_database(own_pg)
    p = ProcessorProcess(url, log_path=tmp_path / "p.log").start()
    p.wait_ready()
    insert_requests(url, 0, 500, per_tx=25)
    own_pg.stop("immediate")  # a crash, not a polite shutdown
    wait_for(lambda: http_status(p.port, "/readyz")[0] == 503, 30, "readyz to report it")
    status, body = http_status(p.port, "/healthz")
    assert status == 200, body  # alive, retrying
    own_pg.start()
    insert_requests(url, 500, 500, per_tx=25)
    p.wait_ready(60)
    assert_exports_match_database(p, url)
    assert metric_sum(scrape(p.port), "mlops_processor_reconnects_total") >= 1
    assert p.stop() == 0


def test_restart_continues_counters_from_persisted_totals(db_url: str, tmp_path: Path) -> None:
    insert_requests(db_url, 0, 300, per_tx=30)
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
    p.wait_ready()
    assert_exports_match_database(p, db_url)
    assert p.stop() == 0
    insert_requests(db_url, 300, 100, per_tx=100)
    p2 = ProcessorProcess(db_url, log_path=tmp_path / "p2.log").start()
    p2.wait_ready()
    assert_exports_match_database(p2, db_url)
    count, _ = db_totals(db_url)
    assert count == 400
    assert p2.stop() == 0


def test_cost_totals_are_exact_to_the_pico_dollar(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
                     " cost_usd) SELECT 'f', 'm', 1, 0.000000000001 * g"
                     " FROM generate_series(1, 1000) g")
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
    p.wait_ready()
    assert_exports_match_database(p, db_url)
    assert db_totals(db_url)[1] == Decimal("0.000000500500")
    assert p.stop() == 0
