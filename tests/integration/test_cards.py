"""Model cards over a real database: numbers equal to the rows, versions, and the
processor's triggers (schedule, drift, promotion, rollback)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from stream_mlops.cards.generate import generate, versions
from stream_mlops.cards.monitor import CardMonitor
from stream_mlops.cards.spec import parse_spec
from stream_mlops.cards.store import ConnectionRows
from stream_mlops.pipeline.repository import Repository
from tests.helpers import ProcessorProcess, metric_sum, scrape, wait_for

DAY = 86400.0
INSERT = (
    "INSERT INTO mlops.model_performance (tenant_id, function_name, model, model_version,"
    " variant, created_at, latency_ms, prompt_tokens, completion_tokens, cost_usd,"
    " confidence, status, error_type) VALUES (%s, %s, %s, %s, %s, to_timestamp(%s), %s, %s,"
    " %s, %s, %s, %s, %s)")


def simulate(url: str, n: int, *, seed: int = 7, now: float | None = None,
             function: str = "summarize", tenant: str = "acme") -> list[tuple[Any, ...]]:
    """n seeded requests over the last 6 days: lognormal latency, 3 % errors of two
    types, confidences in [0, 1] (none for 1 in 10), a few unpriced, two variants."""
    rng = np.random.default_rng(seed)
    now = time.time() if now is None else now
    rows = []
    for i in range(n):
        error = rng.random() < 0.03
        rows.append((
            tenant, function, "gpt-4o-mini", "v1" if i % 3 else "v2",
            "treatment" if i % 2 else "control", now - rng.uniform(60, 6 * DAY),
            float(rng.lognormal(5, 0.6)), int(rng.integers(100, 900)),
            int(rng.integers(10, 300)),
            None if i % 50 == 0 else round(float(rng.uniform(1e-4, 3e-3)), 9),
            None if i % 10 == 0 else float(rng.uniform(0, 1)),
            "error" if error else "success",
            ("timeout" if rng.random() < 0.7 else "rate_limit") if error else None))
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(INSERT, rows)
    return rows


def test_a_card_carries_the_numbers_sql_gives_over_the_same_rows(db_url: str) -> None:
    rows = simulate(db_url, 3000)
    # The model has no price-table entry under this name when cost_usd is None.
    with psycopg.connect(db_url, autocommit=True) as conn:
        (g,) = generate(ConnectionRows(conn), "acme", "summarize", now=time.time(),
                        trigger="manual")
        priced_in_db = conn.execute(
            "SELECT count(cost_usd), sum(cost_usd)::float8 FROM mlops.model_performance"
        ).fetchone()
    assert priced_in_db is not None
    m = g.card["measured"]
    latency = np.array([r[6] for r in rows])
    errors = [r for r in rows if r[11] == "error"]
    conf = np.array([r[10] for r in rows if r[10] is not None])
    assert g.version == 1 and g.card["model"] == "gpt-4o-mini"
    assert m["requests"] == 3000 and m["errors"]["count"] == len(errors)
    # percentile_cont and numpy's default are the same linear interpolation: exact.
    for q, key in ((50, "p50"), (95, "p95"), (99, "p99")):
        assert m["latency_ms"][key] == pytest.approx(np.percentile(latency, q), rel=1e-12)
    assert m["confidence"]["n"] == len(conf)
    assert m["confidence"]["p10"] == pytest.approx(np.percentile(conf, 10), rel=1e-12)
    # Costs: callers' costs where given, the price table's for the others (the trigger).
    assert m["cost"]["priced_requests"] == priced_in_db[0]
    assert m["cost"]["total_usd"] == pytest.approx(priced_in_db[1], rel=1e-12)
    assert m["cost"]["per_request_usd"] == pytest.approx(priced_in_db[1] / priced_in_db[0])
    types = {t["type"]: t["count"] for t in m["errors"]["types"]}
    assert types == {t: sum(1 for r in errors if r[12] == t) for t in ("timeout", "rate_limit")}
    assert sum(d["requests"] for d in m["daily"]) == 3000
    assert sum(b[2] for b in m["latency_histogram_ms"]) == 3000
    assert sum(b[2] for b in m["confidence"]["histogram"]) == len(conf)
    by_variant = {s["name"]: s for s in g.card["slices"]["variant"]}
    control = [r for r in rows if r[4] == "control"]
    assert by_variant["control"]["requests"] == len(control)
    assert by_variant["control"]["latency_p95_ms"] == pytest.approx(
        np.percentile([r[6] for r in control], 95), rel=1e-12)
    assert {s["name"] for s in g.card["slices"]["version"]} == {"v1", "v2"}


def test_an_unchanged_rerun_makes_no_version_and_new_rows_make_one(db_url: str) -> None:
    simulate(db_url, 200)
    with psycopg.connect(db_url, autocommit=True) as conn:
        db = ConnectionRows(conn)
        now = time.time()
        assert [g.version for g in generate(db, "acme", "summarize", now=now,
                                            trigger="manual")] == [1]
        assert [g.version for g in generate(db, "acme", "summarize", now=now + 5,
                                            trigger="manual")] == [None]
        simulate(db_url, 1, seed=8)
        assert [g.version for g in generate(db, "acme", "summarize", now=now + 10,
                                            trigger="manual")] == [2]
        (latest, first) = versions(db, "acme", "summarize")
        assert (latest.version, first.version) == (2, 1)
        assert latest.content_hash != first.content_hash
        assert latest.card["measured"]["requests"] == 201


def test_a_stored_spec_is_carried_through_verbatim(db_url: str) -> None:
    simulate(db_url, 50)
    text = "intended_use: |\n  Summaries for agents.\n  Never for customers.\nlicense: mit\n"
    with psycopg.connect(db_url, autocommit=True) as conn:
        db = ConnectionRows(conn)
        db.put_spec("acme", "summarize", parse_spec(text, "s.yaml"), "s.yaml")
        (g,) = generate(db, "acme", "summarize", now=time.time(), trigger="manual")
    assert g.card["spec"]["intended_use"] == "Summaries for agents.\nNever for customers.\n"
    assert g.card["spec"]["limitations"] == "not provided"
    assert "Summaries for agents.\nNever for customers." in g.markdown


def test_a_function_with_a_spec_and_no_traffic_gets_a_card_saying_so(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        db = ConnectionRows(conn)
        db.put_spec("acme", "new-fn", parse_spec("intended_use: later", "s.yaml"), "s.yaml")
        (g,) = generate(db, "acme", "new-fn", now=time.time(), trigger="manual")
    assert g.card["traffic"] is False and g.card["model"] == "none"
    assert "No traffic in this window" in g.markdown


# -- the processor's triggers -----------------------------------------------------------------


def _run(conn: psycopg.Connection[Any], monitor: CardMonitor) -> None:
    repo = Repository(conn, "default")
    monitor.run(repo)
    assert repo.problems == []


def _triggers(conn: psycopg.Connection[Any]) -> list[tuple[int, str, str | None]]:
    return [(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT version, trigger, trigger_ref FROM mlops.model_cards ORDER BY version")]


def test_each_trigger_makes_exactly_one_version_and_reruns_none(db_url: str) -> None:
    simulate(db_url, 300)
    monitor = CardMonitor(budget_seconds=60.0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        # The processor's totals are how the schedule knows the function.
        conn.execute("INSERT INTO mlops.series_totals (consumer, tenant_id, function_name,"
                     " model, variant, latency_buckets, input_token_buckets,"
                     " output_token_buckets, confidence_buckets) VALUES ('default', 'acme',"
                     " 'summarize', 'gpt-4o-mini', 'control', '{}', '{}', '{}', '{}')")
        _run(conn, monitor)
        period = int(time.time() // monitor.every_seconds)
        assert _triggers(conn) == [(1, "scheduled", f"schedule:{period}")]
        _run(conn, monitor)
        assert len(_triggers(conn)) == 1  # the period's card is made

        conn.execute("INSERT INTO mlops.drift_detection (tenant_id, function_name,"
                     " metric_name, test_name, statistic, p_value, threshold, effect_size,"
                     " drift_detected) VALUES ('acme', 'summarize', 'latency', 'ks', 0.3,"
                     " 1e-9, 0.01, 0.5, true)")
        alert = conn.execute(
            "INSERT INTO mlops.alerts (tenant_id, alert_type, function_name, fingerprint,"
            " title, message) VALUES ('acme', 'drift', 'summarize',"
            " 'drift:summarize:latency', 'latency drifted', 'ks p=1e-9') RETURNING id"
        ).fetchone()
        assert alert is not None
        _run(conn, monitor)
        _run(conn, monitor)
        assert _triggers(conn)[1:] == [(2, "drift", f"alert:{alert[0]}")]

        dep = conn.execute(
            "INSERT INTO mlops.deployments (tenant_id, function_name, version, slot)"
            " VALUES ('acme', 'summarize', 'v2', 'green') RETURNING id").fetchone()
        assert dep is not None
        _run(conn, monitor)
        assert len(_triggers(conn)) == 2  # a deployment that starts is no card event
        conn.execute("UPDATE mlops.deployments SET status = 'promoted', reason = 'by hand'"
                     " WHERE id = %s", dep)
        _run(conn, monitor)
        _run(conn, monitor)
        assert _triggers(conn)[2:] == [(3, "promoted", f"deployment:{dep[0]}:promoted")]
        conn.execute("UPDATE mlops.deployments SET status = 'rolled_back', rolled_back_at ="
                     " now(), reason = 'p95 regression' WHERE id = %s", dep)
        _run(conn, monitor)
        _run(conn, monitor)
        assert _triggers(conn)[3:] == [(4, "rolled_back", f"deployment:{dep[0]}:rolled_back")]
        failed = conn.execute(
            "INSERT INTO mlops.deployments (tenant_id, function_name, version, slot)"
            " VALUES ('acme', 'summarize', 'v3', 'green') RETURNING id").fetchone()
        assert failed is not None
        conn.execute("UPDATE mlops.deployments SET status = 'failed', reason = 'health check"
                     " failed' WHERE id = %s", failed)
        _run(conn, monitor)
        _run(conn, monitor)
        assert _triggers(conn)[4:] == [(5, "rolled_back", f"deployment:{failed[0]}:failed")]
        (card,) = [v.card for v in versions(ConnectionRows(conn), "acme", "summarize",
                                            version=4)]
        assert conn.execute("SELECT count(*) FROM mlops.model_card_triggers").fetchone() == (5,)
    assert card["deployments"][0]["reason"] == "p95 regression"
    assert [(t["from"], t["to"], t["reason"]) for t in card["deployment_history"]] == [
        ("promoted", "rolled_back", "p95 regression"), ("pending", "promoted", "by hand"),
        (None, "pending", "started")]
    assert card["drift"]["confirmed"][0]["p_value"] == 1e-9
    assert [a["title"] for a in card["open_alerts"]] == ["latency drifted"]
    assert monitor.versions == {"scheduled": 1, "drift": 1, "promoted": 1, "rolled_back": 2}
    samples = {(s.name, s.labels["trigger"]): s.value
               for family in monitor.metrics(time.time())() for s in family.samples}
    assert samples[("mlops_model_card_versions_total", "rolled_back")] == 2
    assert not [k for k in samples if k[0] == "mlops_model_card_unchanged_total"]


def test_the_service_makes_cards_on_a_connection_of_their_own(
        db_url: str, tmp_path: Path) -> None:
    """In the running processor the cards job is a worker's, on a connection of its own: a
    card stuck on a lock (as a card reading a busy function's week is stuck on its reads)
    does not stop the consumer, and the card is made once the lock goes."""
    simulate(db_url, 200)
    p = ProcessorProcess(db_url, log_path=tmp_path / "processor.log")
    with psycopg.connect(db_url) as blocker, psycopg.connect(db_url, autocommit=True) as look:
        blocker.execute("LOCK TABLE mlops.model_card_triggers IN ACCESS EXCLUSIVE MODE")
        p.start()
        try:
            p.wait_ready()
            wait_for(lambda: look.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name = 'stream-mlops jobs default'").fetchone() == (1,),
                30, "the cards job waiting for the lock on its own connection")
            simulate(db_url, 50, seed=8)
            wait_for(lambda: p.events() >= 250, 30, "rows consumed while the card waits")
            blocker.rollback()  # the lock goes
            wait_for(lambda: metric_sum(scrape(p.port), "mlops_model_card_versions_total",
                                        trigger="scheduled") == 1, 30, "the scheduled card")
        finally:
            p.stop()
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT tenant_id, function_name, trigger FROM"
                            " mlops.model_cards").fetchall() == [
            ("acme", "summarize", "scheduled")]
    assert "Traceback" not in (tmp_path / "processor.log").read_text()


def test_the_job_stops_at_its_time_budget_and_carries_on_next_run(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        db = ConnectionRows(conn)
        for f in ("a", "b", "c"):
            db.put_spec("acme", f, parse_spec("", "s.yaml"), "s.yaml")
        ticks = iter(range(100))
        monitor = CardMonitor(budget_seconds=1.0, clock=lambda: float(next(ticks)))
        _run(conn, monitor)
        assert conn.execute("SELECT count(*) FROM mlops.model_cards").fetchone() == (1,)
        _run(conn, monitor)
        _run(conn, monitor)
        _run(conn, monitor)
        done = conn.execute("SELECT function_name FROM mlops.model_cards ORDER BY 1").fetchall()
    assert [r[0] for r in done] == ["a", "b", "c"]


def test_the_card_window_is_the_stated_one(db_url: str) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    simulate(db_url, 100, now=now)
    simulate(db_url, 40, now=now - 10 * DAY, seed=9)  # before the window
    with psycopg.connect(db_url, autocommit=True) as conn:
        (g,) = generate(ConnectionRows(conn), "acme", "summarize", now=now, trigger="manual")
    assert g.card["window"] == {"start": "2026-11-24T00:00:00Z", "end": "2026-12-01T00:00:00Z",
                                "days": 7.0}
    assert g.card["measured"]["requests"] == 100


def test_readers_see_only_their_tenants_cards_and_specs(roles: Any) -> None:
    with psycopg.connect(roles.url, autocommit=True) as conn:
        db = ConnectionRows(conn)
        for t in ("a", "b"):
            db.put_spec(t, "f", parse_spec(f"intended_use: {t}", "s.yaml"), "s.yaml")
            generate(db, t, "f", now=time.time(), trigger="manual")
    with roles.as_(roles.reader_a) as conn:
        assert conn.execute("SELECT DISTINCT tenant_id FROM mlops.model_cards").fetchall() == [
            ("a",)]
        assert conn.execute("SELECT tenant_id FROM mlops.model_card_specs").fetchall() == [
            ("a",)]
    with roles.as_(roles.writer_b) as conn:
        conn.execute("INSERT INTO mlops.model_card_specs (tenant_id, function_name, spec)"
                     " VALUES ('b', 'g', '{}')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO mlops.model_card_specs (tenant_id, function_name, spec)"
                         " VALUES ('a', 'g', '{}')")
