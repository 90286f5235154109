"""Deployments end to end on a real PostgreSQL: the gate in the processor steps, promotes,
retires and rolls back on the request stream, holds without traffic, resumes after a
restart with the same evidence, and alerts once."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stream_mlops.client import RequestLogger, Router
from stream_mlops.deployments import store as deployments
from stream_mlops.deployments.store import DeploymentSpec
from stream_mlops.dev.simulator import Scenario, Traffic
from stream_mlops.pipeline.consumer import Consumer
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.status import PipelineStatus
from tests.helpers import ProcessorProcess, metric_sum, scrape, wait_for
from tests.integration.test_consumer import drain

INSERT = ("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
          " model_version, deployment_slot, latency_ms, confidence, status)"
          " VALUES (%s, %s, 'gpt-4o-mini', %s, %s, %s, %s, %s)")


def send(url: str, n: int, *, seed: int, function: str = "summarize",
         tenant: str = "default", new_error: float = 0.03, live_error: float = 0.03,
         new_latency: float = 1.0) -> dict[str, int]:
    """``n`` requests, each routed by the deployment in place (as a caller would);
    returns how many each slot served."""
    rng = random.Random(seed)
    with psycopg.connect(url) as conn:
        route = deployments.route(conn, function, tenant)
        rows: list[tuple[Any, ...]] = []
        served: dict[str, int] = {}
        for _ in range(n):
            slot, version = route.of(f"user-{rng.randrange(1_000_000)}")
            new = slot == route.new_slot
            error = rng.random() < (new_error if new else live_error)
            latency = 700 * rng.lognormvariate(0, 0.5) * (new_latency if new else 1.0)
            rows.append((tenant, function, version, slot, latency,
                         None if error else rng.betavariate(8, 2),
                         "error" if error else "success"))
            served[slot] = served.get(slot, 0) + 1
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(INSERT, rows)
    return served


def make_consumer(url: str) -> Consumer:
    """A processor that queues alert e-mails (one per notification, in the outbox)."""
    c = Consumer(url, Processor(), PipelineStatus(), notify=True)
    assert c.open()
    return c


def look(c: Consumer) -> None:
    drain(c)
    c.run_jobs("deployments")


def status(url: str, function: str = "summarize", tenant: str = "default"
           ) -> deployments.DeploymentInfo:
    with psycopg.connect(url) as conn:
        return deployments.latest(conn, function, tenant)


def start(url: str, **kw: Any) -> int:
    spec = DeploymentSpec("summarize", kw.pop("version", "v2"), **kw)
    with psycopg.connect(url, autocommit=True) as conn:
        return deployments.start(conn, spec)


def alerts(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT fingerprint, state, title FROM mlops.alerts"
                            " WHERE alert_type = 'deployment' ORDER BY id").fetchall()


def test_a_good_version_steps_promotes_and_retires(db_url: str) -> None:
    send(db_url, 50, seed=0)  # the function exists
    c = make_consumer(db_url)
    start(db_url, steps=(20.0, 50.0), min_samples=100, step_seconds=0)
    look(c)
    assert (status(db_url).status, status(db_url).traffic_percent) == ("shifting", 20)
    shares = []
    for i in range(12):
        send(db_url, 800, seed=i + 1)
        look(c)
        d = status(db_url)
        shares.append(d.traffic_percent)
        if d.status == "retired":
            break
    assert status(db_url).status == "retired", shares
    assert shares == sorted(shares)
    with psycopg.connect(db_url) as conn:
        outcomes = [r[0] for r in conn.execute(
            "SELECT outcome FROM mlops.deployment_gate_results WHERE outcome <> 'hold'"
            " ORDER BY id")]
        route = deployments.route(conn, "summarize")
    assert outcomes == ["step", "step", "promote", "retire"]
    assert (route.live_slot, route.live_version, route.new_slot) == ("green", "v2", None)
    assert alerts(db_url) == []


@pytest.mark.parametrize(("bad", "metric"), [
    ({"new_error": 0.25}, "error_rate"), ({"new_latency": 2.0}, "latency")])
def test_a_regression_rolls_back_once_with_its_numbers_and_one_alert(
        db_url: str, bad: dict[str, Any], metric: str) -> None:
    send(db_url, 50, seed=0)
    c = make_consumer(db_url)
    dep = start(db_url, steps=(50.0, 100.0), min_samples=100, step_seconds=0)
    look(c)
    for i in range(10):
        send(db_url, 400, seed=i + 1, **bad)
        look(c)
        if status(db_url).status != "shifting":
            break
    d = status(db_url)
    assert (d.status, d.traffic_percent) == ("rolled_back", 0)
    assert d.reason is not None and d.reason.startswith(f"harm established: {metric}")
    c.run_jobs("deployments")  # looking again changes nothing
    c.close()
    c2 = make_consumer(db_url)  # nor does a restarted processor
    c2.run_jobs("deployments")
    assert alerts(db_url) == [(f"deployment:summarize:{dep}:rolled_back", "firing",
                               "Deployment of summarize v2 rolled back")]
    with psycopg.connect(db_url) as conn:
        moves = conn.execute("SELECT to_status FROM mlops.deployment_transitions"
                             " WHERE deployment_id = %s ORDER BY id", (dep,)).fetchall()
        outbox = conn.execute("SELECT count(*) FROM mlops.alert_outbox o JOIN mlops.alerts a"
                              " ON a.id = o.alert_id WHERE a.alert_type = 'deployment'"
                              ).fetchone()
    assert moves == [("pending",), ("shifting",), ("rolled_back",)]
    assert outbox == (1,)


def test_no_traffic_holds_and_says_so(db_url: str) -> None:
    send(db_url, 50, seed=0)
    c = make_consumer(db_url)
    start(db_url, steps=(10.0, 100.0), min_samples=200, step_seconds=0)
    for _ in range(3):
        look(c)
    d = status(db_url)
    assert (d.status, d.traffic_percent) == ("shifting", 10)
    assert d.last_gate["message"] == "waiting for samples: 0 of 200 on the new version at 10 %"
    send(db_url, 300, seed=1)  # about 30 on the new version: still too few
    look(c)
    d = status(db_url)
    assert d.status == "shifting"
    assert d.last_gate["message"].startswith("waiting for samples: ")
    assert 10 < d.last_gate["samples"]["step_new"] < 60


def test_a_restart_mid_step_resumes_with_the_same_evidence(db_url: str) -> None:
    send(db_url, 50, seed=0)
    c = make_consumer(db_url)
    dep = start(db_url, steps=(50.0, 100.0), min_samples=5000, step_seconds=0)
    look(c)
    for i in range(3):
        send(db_url, 500, seed=i + 1)
        look(c)
    before = status(db_url).last_gate["samples"]
    send(db_url, 500, seed=9)
    drain(c)  # consumed, not yet looked at by the gate: then the processor stops
    c.close()
    c2 = make_consumer(db_url)
    c2.run_jobs("deployments")
    after = status(db_url).last_gate["samples"]
    with psycopg.connect(db_url) as conn:
        total = conn.execute("SELECT count(*) FROM mlops.model_performance m,"
                             " mlops.deployments d WHERE d.id = %s"
                             " AND m.created_at >= d.started_at", (dep,)).fetchone()
    assert total is not None
    assert before["live"] + before["new"] == 1500
    assert after["live"] + after["new"] == total[0] == 2000


def _log(url: str, traffic: Traffic, n: int) -> None:
    logger = RequestLogger(url, flush_interval=0.05, max_buffer=n + 1)
    for fields in traffic.requests(n, elapsed=1e9):
        logger.log(**fields)
    logger.close(timeout=60)
    assert logger.stats.dropped == 0 and logger.stats.rejected == 0


def test_the_running_processor_gates_resumes_after_kill_9_and_rolls_back_once(
        db_url: str, tmp_path: Path) -> None:
    """The simulator routes through the client's Router (slot and version logged with
    each request); the real processor steps, is killed mid-step, resumes with the same
    evidence, rolls back the bad version once, and exports it all."""
    router = Router(db_url, ttl_seconds=0.2)
    fn, tenant = "summarize", "tenant-0"
    _log(db_url, Traffic(seed=1, tenants=1), 200)  # the function exists
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
    try:
        p.wait_ready()
        with psycopg.connect(db_url, autocommit=True) as conn:
            dep = deployments.start(conn, DeploymentSpec(
                fn, "v2", tenant_id=tenant, steps=(50.0, 100.0), min_samples=100_000,
                step_seconds=0))
        wait_for(lambda: status(db_url, fn, tenant).status == "shifting", 20, "shifting")
        time.sleep(0.3)  # the router's cache expires
        _log(db_url, Traffic(seed=2, tenants=1, route=router.route), 4000)
        p.wait_consumed(4200)
        served = _served(db_url, dep)
        wait_for(lambda: sum(_gate_of(db_url, fn, tenant)["samples"].values()) >= 1, 20,
                 "the gate's look")
        wait_for(lambda: _gate_of(db_url, fn, tenant)["samples"]["live"]
                 + _gate_of(db_url, fn, tenant)["samples"]["new"] == sum(served.values()),
                 20, "every request of the period counted")
        m = scrape(p.port)
        assert metric_sum(m, "mlops_deployment_traffic_ratio", function=fn, slot="green",
                          version="v2") == 0.5
        assert metric_sum(m, "mlops_deployment_status", function=fn, status="shifting") == 1
        assert {s[0]["metric"] for s in m["mlops_deployment_gate_p_value"]} == {
            "error_rate", "latency", "confidence"}
        assert metric_sum(m, "mlops_deployment_min_samples", function=fn) == 100_000
        before = _gate_of(db_url, fn, tenant)["samples"]
        p.kill()  # mid-step
        _log(db_url, Traffic(seed=3, tenants=1, route=router.route), 2000)
        p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
        p.wait_ready()
        p.wait_consumed(2000)  # this process's count
        served = _served(db_url, dep)
        wait_for(lambda: _gate_of(db_url, fn, tenant)["samples"]["live"]
                 + _gate_of(db_url, fn, tenant)["samples"]["new"] == sum(served.values()),
                 20, "the same evidence plus the new requests, each once")
        d = status(db_url, fn, tenant)
        assert (d.status, d.step_index) == ("shifting", 0)  # the same step
        assert _gate_of(db_url, fn, tenant)["samples"]["new"] > before["new"]
        # Now the new version goes bad: 30 % errors and twice the latency.
        bad = Traffic(seed=4, tenants=1, route=router.route,
                      scenario=Scenario("bad_deployment", change_after=0))
        _log(db_url, bad, 4000)
        wait_for(lambda: status(db_url, fn, tenant).status == "rolled_back", 30, "rollback")
        wait_for(lambda: metric_sum(scrape(p.port), "mlops_deployment_alert_active",
                                    function=fn, rule="deployment_rolled_back") == 1, 20,
                 "the alert on /metrics")
        m = scrape(p.port)
        assert metric_sum(m, "mlops_deployment_rollbacks_total", function=fn) == 1
        assert metric_sum(m, "mlops_deployment_traffic_ratio", function=fn,
                          slot="blue") == 1
        time.sleep(0.3)
        assert router.route(fn, "user-1", tenant) == ("blue", None)
    finally:
        p.stop()
    with psycopg.connect(db_url) as conn:
        fired = conn.execute("SELECT count(*) FROM mlops.alerts WHERE alert_type ="
                             " 'deployment'").fetchone()
        moves = conn.execute("SELECT count(*) FROM mlops.deployment_transitions"
                             " WHERE deployment_id = %s AND to_status = 'rolled_back'",
                             (dep,)).fetchone()
    assert fired == (1,) and moves == (1,)


def _gate_of(url: str, fn: str, tenant: str) -> dict[str, Any]:
    last = status(url, fn, tenant).last_gate
    assert isinstance(last, dict)
    return last


def _served(url: str, dep: int) -> dict[str, int]:
    """Requests of the deployment's function and period, per slot."""
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "SELECT coalesce(m.deployment_slot, '-'), count(*)"
            " FROM mlops.model_performance m JOIN mlops.deployments d"
            " ON d.tenant_id = m.tenant_id AND d.function_name = m.function_name"
            " WHERE d.id = %s AND m.created_at >= d.started_at GROUP BY 1", (dep,)).fetchall())


def test_promoted_by_hand_from_pending_is_validated_then_retired(db_url: str) -> None:
    send(db_url, 50, seed=0)
    c = make_consumer(db_url)
    start(db_url, steps=(50.0,), min_samples=100, step_seconds=0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        deployments.move(conn, "summarize", "promoted", "by hand")
    for i in range(5):
        send(db_url, 300, seed=i + 1)
        look(c)
        if status(db_url).status == "retired":
            break
    d = status(db_url)
    assert d.status == "retired", d.last_gate
    assert d.reason is not None and d.reason.startswith("validated for one more period")


def test_a_stored_gate_it_cannot_read_is_reported_and_rebuilt_from_the_rows(
        db_url: str) -> None:
    send(db_url, 50, seed=0)
    c = make_consumer(db_url)
    dep = start(db_url, steps=(50.0, 100.0), min_samples=5000, step_seconds=0)
    look(c)
    send(db_url, 600, seed=1)
    look(c)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("""UPDATE mlops.deployments SET gate = '{"state": {"tests": 1}}'"""
                     " WHERE id = %s", (dep,))
    c.close()
    c = make_consumer(db_url)
    errors = c.status.monitor_errors_total
    c.run_jobs("deployments")
    samples = status(db_url).last_gate["samples"]
    assert samples["live"] + samples["new"] == 600  # every row once, from the start
    assert c.status.monitor_errors_total == errors + 1
