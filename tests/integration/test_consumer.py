"""The consumer in-process against real Postgres: ordering, exactly-once, quarantine."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from decimal import Decimal

import psycopg
import pytest
from psycopg import pq

from stream_mlops.alerts.performance import PerformanceAlerts
from stream_mlops.core.alerts import AlertKey, alert_change
from stream_mlops.core.batch import RawBatch
from stream_mlops.core.monitor import Cursor, Write
from stream_mlops.core.series import UNSAFE_LABELS, SeriesKey
from stream_mlops.costs.monitor import CostTracker
from stream_mlops.db.queries import q
from stream_mlops.drift.monitor import DriftMonitor
from stream_mlops.errors import CursorConflict
from stream_mlops.pipeline.consumer import Consumer
from stream_mlops.pipeline.health import Thresholds, readiness
from stream_mlops.pipeline.processor import Effects, Processor
from stream_mlops.pipeline.repository import Fetched, Repository
from stream_mlops.pipeline.scheduler import JobHealth, Worker
from stream_mlops.pipeline.status import PipelineStatus
from tests.helpers import INSERT, db_totals, insert_requests, persisted_totals, request_row


def make_consumer(url: str, batch_size: int = 500, name: str = "default") -> Consumer:
    c = Consumer(url, Processor(), PipelineStatus(consumer=name), consumer=name,
                 batch_size=batch_size)
    assert c.open()
    return c


def drain(c: Consumer) -> int:
    total = 0
    while (n := c.step()) > 0:
        total += n
    return total


def memory_totals(c: Consumer) -> tuple[int, Decimal]:
    t = c.processor.totals
    return int(t.success.sum() + t.error.sum()), Decimal(sum(t.cost_pico)) / Decimal(10**12)


def test_an_open_transaction_delays_only_its_own_rows(db_url: str) -> None:
    """A writer's transaction left open (lower id and xid) does not hold back rows that
    commit after it began; its own row is counted once it commits, and nothing twice."""
    c = make_consumer(db_url)
    with psycopg.connect(db_url) as early, psycopg.connect(db_url) as late:
        early.execute(INSERT, request_row(1))  # lower id and xid; stays open
        late.execute(INSERT, request_row(2))
        late.commit()
        assert c.step() == 1  # the committed row at once, not after the open one ends
        assert c.step() == 0
        time.sleep(1.2)
        c.run_jobs(force=True)
        # The open transaction shows (it holds its own row back) but fails nothing.
        assert c.status.horizon_age_seconds >= 1.0
        reasons = readiness(c.status, time.time(), Thresholds(lag_seconds=0.5))
        assert not any("holding back" in r or r.startswith("lag ") for r in reasons)
        for i in range(3, 6):  # more commits while it stays open: none waits
            late.execute(INSERT, request_row(i))
            late.commit()
            assert c.step() == 1
        early.commit()
    assert drain(c) == 1  # its row, once
    assert memory_totals(c) == db_totals(db_url)
    c.close()
    again = make_consumer(db_url)  # and a restart counts nothing again
    assert drain(again) == 0 and memory_totals(again) == db_totals(db_url)
    again.close()


def test_concurrent_out_of_order_writers_are_all_counted(db_url: str) -> None:
    """8 writers whose transactions commit in random order while the consumer runs."""
    c = make_consumer(db_url, batch_size=200)
    stop = threading.Event()
    per_writer = 150

    def writer(w: int) -> None:
        rng = random.Random(w)
        with psycopg.connect(db_url) as conn:
            for i in range(per_writer):
                with conn.transaction():
                    conn.execute(INSERT, request_row(w * 10_000 + i))
                    time.sleep(rng.random() * 0.004)  # commit after others began

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    consumed = 0
    while any(t.is_alive() for t in threads):
        consumed += c.step()
    for t in threads:
        t.join()
    stop.set()
    consumed += drain(c)
    count, cost = db_totals(db_url)
    assert count == 8 * per_writer
    assert consumed == count
    assert memory_totals(c) == (count, cost)
    assert persisted_totals(db_url)[:2] == (count, cost)
    c.close()


def test_restart_resumes_from_persisted_state(db_url: str) -> None:
    insert_requests(db_url, 0, 700, per_tx=50)
    c = make_consumer(db_url, batch_size=300)
    assert c.step() == 300
    c.close()  # "crash" between batches
    insert_requests(db_url, 700, 300, per_tx=100)
    c2 = make_consumer(db_url, batch_size=300)
    assert c2.status.events_total == 300
    drain(c2)
    assert memory_totals(c2) == db_totals(db_url)
    assert c2.status.events_total == 1000
    c2.close()


def test_catching_up_reads_ahead_and_still_counts_each_row_once(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full batch starts reading the next one on a second connection. Killing that
    connection between batches costs a direct read, never a row or a double count."""
    insert_requests(db_url, 0, 1000, per_tx=100)
    c = make_consumer(db_url, batch_size=100)
    served: list[bool] = []
    take = c.prefetch.take

    def counted(cursor: Cursor, limit: int) -> Fetched | None:
        got = take(cursor, limit)
        served.append(got is not None)
        return got

    monkeypatch.setattr(c.prefetch, "take", counted)
    with psycopg.connect(db_url, autocommit=True) as su:
        for step in range(9):
            assert c.step() == 100
            if step % 3 == 1:
                killed = su.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'stream-mlops reader default'").fetchone()
                assert killed == (1,)
    assert drain(c) == 100
    assert served.count(True) >= 4 and False in served[2:]
    assert memory_totals(c) == db_totals(db_url)
    assert persisted_totals(db_url) == (1000, db_totals(db_url)[1], 1000)
    c.close()


def test_a_read_ahead_serves_only_the_cursor_it_was_started_from(db_url: str) -> None:
    insert_requests(db_url, 0, 300, per_tx=100)
    c = make_consumer(db_url, batch_size=100)
    assert c.repo is not None
    direct = c.repo.fetch(100)
    assert direct.rows is not None
    c.prefetch.start(c.repo.cursor, 100)
    assert c.prefetch.take(Cursor(c.repo.cursor.frontier, direct.window_end), 100) is None
    assert c.prefetch.take(c.repo.cursor, 100) is None  # dropped, not kept for later
    c.prefetch.start(c.repo.cursor, 100)
    assert c.prefetch.take(c.repo.cursor, 50) is None  # another limit: another batch
    c.prefetch.start(c.repo.cursor, 100)
    ahead = c.prefetch.take(c.repo.cursor, 100)
    assert ahead is not None and ahead.rows is not None
    assert ahead.rows.id.tolist() == direct.rows.id.tolist()
    c.close()


@pytest.mark.parametrize("committed", [False, True])
def test_connection_lost_around_commit_neither_loses_nor_double_counts(
        db_url: str, monkeypatch: pytest.MonkeyPatch, committed: bool) -> None:
    """The connection dies just before the batch's write, or just after it committed but
    before the process heard back: either way a restart ends with exact totals."""
    insert_requests(db_url, 0, 400, per_tx=100)
    c = make_consumer(db_url, batch_size=250)
    assert c.repo is not None
    original = c.repo.persist

    def lost(e: Effects, keys: Sequence[SeriesKey], version: int, cursor: Cursor) -> float:
        if committed:
            original(e, keys, version, cursor)
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(c.repo, "persist", lost)
    with pytest.raises(psycopg.OperationalError):
        c.step()
    assert c.status.events_total == 0  # nothing moved in memory either way
    c.close()
    c2 = make_consumer(db_url, batch_size=250)
    assert c2.status.events_total == (250 if committed else 0)
    assert drain(c2) == (150 if committed else 400)
    assert memory_totals(c2) == db_totals(db_url)
    assert persisted_totals(db_url) == (400, db_totals(db_url)[1], 400)
    c2.close()


def test_connection_lost_while_loading_leaves_the_previous_state_whole(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reconnect cut half-way through loading must not leave totals loaded and cost
    windows empty (what /metrics showed until the next successful load)."""
    insert_requests(db_url, 0, 400, per_tx=100)
    c = make_consumer(db_url)
    drain(c)
    before = memory_totals(c)
    windows = cost_windows(c)
    assert windows > 0
    c.close()

    def cut(self: CostTracker, store: Repository) -> None:
        store.conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(CostTracker, "restore", cut)  # after the totals are read
    with pytest.raises(psycopg.OperationalError):
        c.open()
    assert memory_totals(c) == before
    assert cost_windows(c) == windows
    monkeypatch.undo()
    c.close()
    assert c.open()
    assert memory_totals(c) == before == db_totals(db_url)
    assert cost_windows(c) == windows
    c.close()


def cost_windows(c: Consumer) -> float:
    return float(c.processor.monitor(CostTracker).window_usd(time.time())[1]["7d"].sum())


@pytest.mark.parametrize("reloaded", [False, True])
def test_background_results_of_a_replaced_state_are_dropped(db_url: str,
                                                            reloaded: bool) -> None:
    """What a worker computed before a reload belongs to the state the reload replaced:
    its alert changes are never written (the new state knows nothing of them)."""
    c = make_consumer(db_url)
    generation, job = c._current("drift")
    assert job is not None
    worker = Worker("drift", 10.0, lambda: c._current("drift"), threading.Event(),
                    JobHealth("drift"))
    c.scheduler.workers["drift"] = worker
    c.background = True
    fire = alert_change("fire", AlertKey("default", "drift:f:latency"), "drift", rule="drift")
    worker.results.put((generation, ([], [fire])))
    if reloaded:
        c.close()
        assert c.open()
    c.run_jobs()
    assert worker.results.empty()
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM mlops.alerts").fetchone()
    assert row is not None and row[0] == (0 if reloaded else 1)
    c.close()


def batch_rows_landed(url: str) -> tuple[int, int, int]:
    """(the checkpoint's last id, series totals rows, hourly cost rows)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT last_id FROM mlops.consumer_checkpoints),"
            " (SELECT count(*) FROM mlops.series_totals),"
            " (SELECT count(*) FROM mlops.cost_tracking)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_cursor_moved_by_another_process_is_detected(db_url: str) -> None:
    """... by the persist statement itself, which takes the monitors' writes sent after it
    down with it (one implicit transaction)."""
    insert_requests(db_url, 0, 100, per_tx=100)
    c = make_consumer(db_url, batch_size=50)
    with psycopg.connect(db_url) as other:
        other.execute("UPDATE mlops.consumer_checkpoints SET last_id = last_id + 1")
    with pytest.raises(CursorConflict, match="moved by another process"):
        c.step()
    assert batch_rows_landed(db_url) == (1, 0, 0)
    c.close()


def test_a_failing_write_rolls_back_the_whole_batch(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cursor, the series totals and the writes before the failing one: none lands."""
    insert_requests(db_url, 0, 100, per_tx=100)
    c = make_consumer(db_url)
    monkeypatch.setattr("stream_mlops.pipeline.repository.q",
                        lambda name: "SELECT 1 / 0" if name == "boom" else q(name))
    prepare = c.processor.prepare

    def with_a_bad_write(batch: RawBatch) -> Effects:
        effects = prepare(batch)
        assert [w.query for w in effects.writes][:1] == ["add_hourly_costs"]
        effects.writes.append(Write("boom", {}))
        return effects

    monkeypatch.setattr(c.processor, "prepare", with_a_bad_write)
    with pytest.raises(psycopg.errors.DivisionByZero):
        c.step()
    assert batch_rows_landed(db_url) == (0, 0, 0)
    assert c.conn is not None and c.conn.info.transaction_status == pq.TransactionStatus.IDLE
    c.close()
    monkeypatch.undo()
    again = make_consumer(db_url)
    assert drain(again) == 100 and memory_totals(again) == db_totals(db_url)
    again.close()


def test_second_processor_is_standby(db_url: str) -> None:
    c = make_consumer(db_url)
    standby = Consumer(db_url, Processor(), PipelineStatus())
    assert standby.open() is False
    standby.close()
    c.close()
    assert standby.open() is True  # takes over once the first is gone
    standby.close()


def test_unprocessable_rows_are_quarantined_and_the_rest_processed(db_url: str) -> None:
    insert_requests(db_url, 0, 20)
    with psycopg.connect(db_url) as conn:
        # A client clock a day ahead: no CHECK can know, the processor does.
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
                     " created_at) VALUES ('f', 'gpt-4o', 5, now() + interval '1 day')")
        # Rows that slipped past constraints (e.g. restored from an old dump).
        conn.execute("ALTER TABLE mlops.model_performance"
                     " DROP CONSTRAINT latency_ms_must_be_finite_between_0_and_86400000,"
                     " DROP CONSTRAINT confidence_must_be_between_0_and_1,"
                     " DROP CONSTRAINT function_name_must_be_1_to_200_chars,"
                     " DROP CONSTRAINT function_name_must_not_contain_control_or_bidi_characters")
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms)"
                     " VALUES ('f', 'gpt-4o', 'NaN'), ('f', 'gpt-4o', -4)")
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
                     " confidence) VALUES ('f', 'gpt-4o', 1, 7)")
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms)"
                     " VALUES (E'bad\\x1fname', 'gpt-4o', 1), (%s, 'gpt-4o', 1)",
                     ("summa\u2028rize",))
    insert_requests(db_url, 20, 20)
    c = make_consumer(db_url)
    assert drain(c) == 46
    with psycopg.connect(db_url) as conn:
        q = conn.execute("SELECT reason, row_data->>'function_name' FROM mlops.quarantine"
                         " ORDER BY source_id").fetchall()
        good = conn.execute("SELECT count(*), sum(cost_usd) FROM mlops.model_performance"
                            " WHERE id NOT IN (SELECT source_id FROM mlops.quarantine)").fetchone()
    reasons = [r[0] for r in q]
    assert len(reasons) == 6
    assert "in the future" in reasons[0]
    assert reasons[1] == reasons[2] == "latency_ms must be a finite number >= 0"
    assert reasons[3] == "confidence must be between 0 and 1"
    assert reasons[4] == reasons[5] == "unprocessable row: " + UNSAFE_LABELS
    assert good is not None
    assert memory_totals(c) == (good[0], good[1])
    assert c.status.quarantined_total == 6
    assert c.status.events_total == 46
    c.close()


def test_processor_role_can_consume(pg: object, db_url: str) -> None:
    dbname = db_url.rsplit("/", 1)[1]
    role = f"proc_{dbname}"
    with psycopg.connect(db_url, autocommit=True) as su:
        su.execute(f"CREATE ROLE {role} LOGIN IN ROLE mlops_processor")
    insert_requests(db_url, 0, 30)
    url = db_url.replace("postgres@", f"{role}@")
    c = make_consumer(url)
    assert drain(c) == 30
    assert memory_totals(c) == db_totals(db_url)
    c.close()


def test_hourly_costs_and_windows_reconcile_exactly_and_survive_a_restart(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO mlops.model_performance (tenant_id, function_name, model, latency_ms,"
            " prompt_tokens, completion_tokens, created_at)"
            " SELECT 't' || (g % 2), 'f' || (g % 3), 'gpt-4o', 1, 100 + g % 997, g % 61,"
            "        now() - make_interval(secs => (g * 37) % (3 * 86400))"
            " FROM generate_series(1, 3000) g")
    c = make_consumer(db_url)
    drain(c)
    with psycopg.connect(db_url) as conn:
        diff = conn.execute(
            "SELECT count(*) FROM (SELECT tenant_id, function_name, model,"
            " date_trunc('hour', created_at) AS h, count(*) AS n, sum(cost_usd) AS cost"
            " FROM mlops.model_performance GROUP BY 1, 2, 3, 4) m"
            " FULL JOIN mlops.cost_tracking c ON (c.tenant_id, c.function_name, c.model,"
            " c.period_start) = (m.tenant_id, m.function_name, m.model, m.h)"
            " WHERE m.n IS DISTINCT FROM c.request_count OR m.cost IS DISTINCT FROM c.cost_usd"
            ).fetchone()
    assert diff is not None and diff[0] == 0  # every (group, hour) identical to the rows
    c.close()
    again = make_consumer(db_url)  # windows rebuilt from the roll-ups and the last hour
    now = time.time()
    keys, usd = again.processor.monitor(CostTracker).window_usd(now)
    with psycopg.connect(db_url) as conn:
        for window, start in (("1h", "date_trunc('minute', to_timestamp(%s))"
                                     " - interval '59 minutes'"),
                              ("24h", "date_trunc('hour', to_timestamp(%s))"
                                      " - interval '23 hours'"),
                              ("7d", "date_trunc('hour', to_timestamp(%s))"
                                     " - interval '167 hours'")):
            want = dict(((r[0], r[1], r[2]), r[3]) for r in conn.execute(
                "SELECT tenant_id, function_name, model, sum(cost_usd) FROM"
                " mlops.model_performance WHERE created_at >= " + start + " GROUP BY 1, 2, 3",
                (now,)).fetchall())
            got = dict(zip(keys, usd[window].tolist(), strict=True))
            for k, v in want.items():
                assert got[k] == pytest.approx(float(v), rel=1e-12), (window, k)
    again.close()


def test_cost_report_per_function_with_trend(db_url: str) -> None:
    import asyncio
    import csv
    import io
    import json

    from stream_mlops.costs.report import CostMonitor, render
    with psycopg.connect(db_url) as conn:
        # summarize: $1 yesterday, $3 today; classify: only today.
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
                     " cost_usd, created_at) VALUES"
                     " ('summarize', 'm', 1, 1, now() - interval '30 hours'),"
                     " ('summarize', 'm', 1, 1, now() - interval '1 hour'),"
                     " ('summarize', 'm', 1, 2, now() - interval '2 hours'),"
                     " ('classify', 'm', 1, 0.5, now() - interval '3 hours')")
    c = make_consumer(db_url)
    drain(c)
    c.close()
    report = asyncio.run(CostMonitor(db_url).analyze_costs(days=1))
    s = report["default/summarize"]
    assert (s.total_cost, s.request_count, s.cost_per_request) == (3.0, 2, 1.5)
    assert s.previous_cost == 1.0 and s.trend == 2.0  # +200 %
    assert report["default/classify"].trend is None  # new: nothing to compare with
    assert list(report) == ["default/summarize", "default/classify"]  # costliest first
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert rows[0]["function_name"] == "summarize" and float(rows[0]["total_cost"]) == 3.0
    assert json.loads(render(report, "json"))[1]["function_name"] == "classify"
    assert "+200%" in render(report, "table")


def test_a_failed_persist_leaves_no_monitor_state_of_its_batch(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare() moves the monitors before the commit; when the commit fails, the consumer
    reloads every monitor from the database, where the batch does not exist."""
    insert_requests(db_url, 0, 300, per_tx=300)
    c = make_consumer(db_url)
    assert c.repo is not None

    def fail(e: Effects, keys: Sequence[SeriesKey], version: int, cursor: Cursor) -> float:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(c.repo, "persist", fail)
    with pytest.raises(psycopg.OperationalError):
        c.step()
    now = time.time()
    # The batch did reach the monitors' memory ...
    assert cost_windows(c) > 0
    assert c.processor.monitor(PerformanceAlerts).windows.totals(now)["n"].sum() == 300
    assert c.processor.monitor(DriftMonitor)._pending_rows == 300
    c.close()
    assert c.open()  # ... and the reload leaves none of it
    assert cost_windows(c) == 0
    assert c.processor.monitor(PerformanceAlerts).windows.totals(now)["n"].sum() == 0
    assert c.processor.monitor(DriftMonitor)._pending_rows == 0
    assert c.status.events_total == 0
    assert drain(c) == 300 and memory_totals(c) == db_totals(db_url)
    c.close()


def test_label_values_with_array_syntax_round_trip_exactly(db_url: str) -> None:
    """The series keys go to Postgres as text[] literals: quotes, backslashes, commas,
    braces, spaces, a NULL-like word and non-ASCII come back as they were sent, and a
    restart loads the same series."""
    odd = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "ü ✓", "i\\\"j"]
    with psycopg.connect(db_url) as conn:
        for k, name in enumerate(odd):
            conn.execute(INSERT, ("tenant-odd", f"fn{name}", name, name, 100.0, 10, 5, 0,
                                  0.5, "success", None))
            conn.execute(INSERT, ("tenant-odd", f"fn{name}", name, name, 200.0 + k, 10, 5,
                                  0, 0.5, "success", None))
    c = make_consumer(db_url)
    assert drain(c) == 2 * len(odd)
    with psycopg.connect(db_url) as conn:
        stored = {(r[0], r[1], r[2]): r[3] for r in conn.execute(
            "SELECT function_name, model, variant, success_count FROM mlops.series_totals"
            " WHERE tenant_id = 'tenant-odd'")}
    assert stored == {(f"fn{n}", n, n): 2 for n in odd}
    c.close()
    again = make_consumer(db_url)
    keys = {k for k in again.processor.index.keys if k[0] == "tenant-odd"}
    assert keys == {("tenant-odd", f"fn{n}", n, n) for n in odd}
    again.close()
