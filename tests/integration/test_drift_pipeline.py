"""Drift detection in the processor against a real PostgreSQL: the simulator's input drift
is found, confirmed by the guide's tests, stored as evidence, alerted and exported; a
steady stream is not; the on-demand report agrees."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from stream_mlops.client import RequestLogger
from stream_mlops.dev.simulator import Scenario, Traffic
from stream_mlops.drift.monitor import DriftMonitor
from stream_mlops.drift.report import DataDriftDetector
from stream_mlops.pipeline.consumer import Consumer
from tests.integration.test_cli import assert_one_line_error, cli
from tests.integration.test_consumer import drain, make_consumer


def _send(url: str, traffic: Traffic, n: int, elapsed: float,
          created_at: datetime | None = None) -> None:
    logger = RequestLogger(url, flush_interval=0.05, max_buffer=n + 1)
    for fields in traffic.requests(n, elapsed=elapsed):
        logger.log(**fields, **({"created_at": created_at} if created_at else {}))
    logger.close(timeout=60)


def _tick(c: Consumer) -> None:
    c.run_jobs(force=True)


def test_input_drift_is_confirmed_stored_and_alerted(db_url: str) -> None:
    traffic = Traffic(seed=4, scenario=Scenario("input_drift", change_after=100), tenants=1)
    c = make_consumer(db_url)
    _send(db_url, traffic, 6_000, elapsed=0)  # ~1,500 per function: references learnt
    drain(c)
    _tick(c)
    _send(db_url, traffic, 4_000, elapsed=200)  # query length (and prompts) x3
    drain(c)
    _tick(c)
    with psycopg.connect(db_url) as conn:
        alerts = conn.execute("SELECT function_name, title, message FROM mlops.alerts"
                              " WHERE alert_type = 'drift' AND state <> 'resolved'"
                              " ORDER BY 1, 2").fetchall()
        evidence = conn.execute(
            "SELECT DISTINCT function_name, test_name FROM mlops.drift_detection"
            " WHERE metric_name = 'query_length' AND drift_detected").fetchall()
    functions = {"summarize", "classify-ticket", "generate-insight", "extract-entities"}
    drifted = {(f, t.split(" in ")[1].split(" of ")[0]) for f, t, _ in alerts}
    assert {(f, "query_length") for f in functions} <= drifted
    # Latency, errors and models did not change: no alert names them.
    assert not {m for _, m in drifted} & {"latency", "error_rate", "model", "confidence"}
    message = next(m for f, t, m in alerts if f == "summarize" and "query_length" in t)
    # The numbers behind it: the shift in the distribution, the test, p and effect size.
    assert message.startswith("query_length of summarize drifted (")
    assert "median " in message and " -> " in message and "ks p = " in message
    assert "effect size" in message
    assert {t for _, t in evidence} == {"ks", "mann_whitney", "anderson_darling"}
    gauges = {(g[1], g[2]): g for g in c.processor.monitor(DriftMonitor).gauges().metrics()}
    assert gauges[("summarize", "query_length")][3] is True  # mlops_drift_detected
    assert gauges[("summarize", "query_length")][5] == 1  # one confirmed drift
    c.close()


def _drift_alerts(url: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(function, metric) -> (state, message) of the latest drift alert of each."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT DISTINCT ON (fingerprint) fingerprint, state, message"
                            " FROM mlops.alerts WHERE alert_type = 'drift'"
                            " ORDER BY fingerprint, id DESC").fetchall()
    return {tuple(fp.split(":")[1:]): (state, message) for fp, state, message in rows}


def test_pinned_and_relearned_references_from_the_cli(db_url: str) -> None:
    traffic = Traffic(seed=4, scenario=Scenario("input_drift", change_after=100), tenants=1)
    env = {"DATABASE_URL": db_url}
    tenant = ("--tenant", "tenant-0")
    c = make_consumer(db_url)
    _send(db_url, traffic, 6_000, elapsed=0)
    drain(c)
    _tick(c)
    assert_one_line_error(cli("drift", "pin", "summarise", *tenant, env=env),
                          "no requests from function 'summarise'", "summarize")
    assert_one_line_error(cli("drift", "pin", "summarize", env=env),
                          "no requests under tenant 'default' but has under tenant-0")
    out = cli("drift", "pin", "summarize", "--metric", "query_length", *tenant, env=env)
    assert out.returncode == 0 and "reference pinned" in out.stdout, out
    c.close()
    c = make_consumer(db_url)  # a restart reads the decisions (a running processor: 30 s)
    _send(db_url, traffic, 4_000, elapsed=200)  # query length x3
    drain(c)
    _tick(c)
    alerts = _drift_alerts(db_url)
    state, message = alerts[("summarize", "query_length")]
    assert state == "firing" and "The reference is pinned" in message
    assert "The detector now learns" in alerts[("classify-ticket", "query_length")][1]
    listed = {(r["function"], r["metric"]): r
              for r in json.loads(cli("drift", "--json", env=env).stdout)}
    row = listed[("summarize", "query_length")]
    assert row["pinned"] and row["alert_open"] and row["drift_detected"]
    assert not listed[("classify-ticket", "query_length")]["pinned"]
    table = cli("drift", env=env).stdout
    only = cli("drift", "list", "summarize", env=env).stdout.splitlines()
    assert len(only) > 1 and all("/summarize " in line for line in only[1:])
    assert any(line.startswith("tenant-0/summarize") and "query_length" in line
               and "DRIFT" in line and "(pinned)" in line for line in table.splitlines())

    out = cli("drift", "relearn", "summarize", *tenant, env=env)
    assert out.returncode == 0 and "a new reference is learned" in out.stdout, out
    c.close()
    c = make_consumer(db_url)  # every consumed row predates the request: none is learnt
    f = c.processor.monitor(DriftMonitor).index.function_keys.index(("tenant-0", "summarize"))
    learnt = c.processor.monitor(DriftMonitor).series[f].detectors.get("latency")
    assert learnt is None or learnt.warming_up
    _tick(c)
    state, message = _drift_alerts(db_url)[("summarize", "query_length")]
    assert state == "resolved" and "relearned from the requests after" in message
    assert _drift_alerts(db_url)[("classify-ticket", "query_length")][0] == "firing"
    _send(db_url, traffic, 6_000, elapsed=200)  # the new level, after the request
    drain(c)
    _tick(c)
    assert not c.processor.monitor(DriftMonitor).series[f].detectors["latency"].warming_up
    assert _drift_alerts(db_url)[("summarize", "query_length")][0] == "resolved"
    c.close()


def test_steady_traffic_raises_no_drift_alert_and_restart_keeps_references(
        db_url: str) -> None:
    traffic = Traffic(seed=8, tenants=1)
    c = make_consumer(db_url)
    for _ in range(4):
        _send(db_url, traffic, 4_000, elapsed=0)
        drain(c)
        _tick(c)
    c.close()
    c = make_consumer(db_url)  # references re-learnt from the last consumed rows
    states = {(g[1], g[2]) for g in c.processor.monitor(DriftMonitor).gauges().metrics()}
    assert ("summarize", "latency") in states
    det = c.processor.monitor(DriftMonitor).series[0].detectors["latency"]
    assert not det.warming_up
    _send(db_url, traffic, 4_000, elapsed=0)
    drain(c)
    _tick(c)
    with psycopg.connect(db_url) as conn:
        alerts = conn.execute("SELECT count(*) FROM mlops.alerts WHERE alert_type = 'drift'"
                              ).fetchone()
    assert alerts == (0,)
    c.close()


def offset(m: DriftMonitor, f: int, hour: int) -> float:
    profile = m.hour_profile(f, hour)
    return math.nan if profile is None else float(profile[0])


def test_hour_of_day_latency_is_rolled_up_and_back_after_a_restart(db_url: str) -> None:
    """The cost roll-ups carry each hour's summed latency with the cursor; a restarted
    processor rebuilds the drift monitor's hour-of-day profile (and volume baselines)
    from them, so a daily cycle is not drift after a restart either."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(11)
    logger = RequestLogger(db_url, flush_interval=0.05, max_buffer=10_000)
    sent: dict[int, float] = {}
    # The last 26 whole hours, slowest at this hour of the day: x exp(0.3 cos(...)).
    cycle = [math.exp(0.3 * math.cos(2 * math.pi * k / 24)) for k in range(24)]
    for back in range(26, 0, -1):
        start = now - timedelta(hours=back)
        for x in np.round(cycle[back % 24] * rng.lognormal(5.0, 0.5, 120), 3).tolist():
            logger.log(function_name="seasonal", model="m", latency_ms=x,
                       created_at=start + timedelta(seconds=float(rng.uniform(0, 3599))))
            hour = int(start.timestamp() // 3600)
            sent[hour] = sent.get(hour, 0.0) + x
    logger.close(timeout=60)
    c = make_consumer(db_url)
    drain(c)
    with psycopg.connect(db_url) as conn:
        rolled: dict[int, float] = dict(conn.execute(
            "SELECT (date_part('epoch', period_start) / 3600)::bigint, latency_ms_sum"
            " FROM mlops.cost_tracking WHERE function_name = 'seasonal'").fetchall())
    assert rolled.keys() == sent.keys()
    assert all(abs(rolled[h] - sent[h]) < 1e-6 * sent[h] for h in sent)
    before = c.processor.monitor(DriftMonitor)
    f = before.index.function_id("default", "seasonal")
    hours = np.array(sorted(sent), np.int64)
    hour = int(now.timestamp() // 3600)
    profile = [offset(before, f, h) for h in range(hour, hour + 3)]
    assert all(math.isfinite(p) for p in profile)
    c.close()

    c = make_consumer(db_url)  # a restart: the rings come back from the roll-ups
    after = c.processor.monitor(DriftMonitor)
    g = after.index.function_id("default", "seasonal")
    for ring in ("requests", "latency_us"):
        assert getattr(after, ring).at(g, hours).tolist() == \
            getattr(before, ring).at(f, hours).tolist(), ring
    assert [offset(after, g, h) for h in range(hour, hour + 3)] == \
        pytest.approx(profile, abs=1e-9)
    # This hour and its neighbours over the whole day's mean, within sampling error.
    assert profile[0] == pytest.approx(
        math.log((cycle[23] + cycle[0] + cycle[1]) / 3 / np.mean(cycle)), abs=0.08)
    c.close()


def test_on_demand_report_as_in_the_guide(db_url: str) -> None:
    traffic = Traffic(seed=2, scenario=Scenario("latency_regression", change_after=100),
                      tenants=1)
    now = datetime.now(UTC)
    _send(db_url, traffic, 4_000, elapsed=0, created_at=now - timedelta(days=2))
    _send(db_url, traffic, 2_000, elapsed=200, created_at=now - timedelta(minutes=10))
    results = DataDriftDetector(db_url).detect_all_drift_sync()
    by = {(r.function_name, r.metric_name, r.test_name): r for r in results}
    ks = by[("summarize", "latency", "ks")]
    assert ks.drift_detected and ks.p_value < ks.threshold and ks.n_current > 400
    assert not by[("summarize", "query_length", "ks")].drift_detected
