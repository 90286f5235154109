"""One tenant cannot hurt the processor, another tenant, or the operator's secrets: each
finding of the hardening review, reproduced with the role, the row and the request an
attacker would send, now refused or harmless (see docs/security.md)."""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from psycopg.rows import class_row

from stream_mlops.alerts.email import Smtp, compose
from stream_mlops.alerts.outbox import DueNotification
from stream_mlops.alerts.store import write_changes
from stream_mlops.core.alerts import AlertKey, alert_change
from stream_mlops.core.monitor import Cursor
from stream_mlops.db.queries import q
from stream_mlops.dev.embedded import EmbeddedPostgres
from stream_mlops.experiments import store as experiments
from stream_mlops.experiments.config import ExperimentSpec
from stream_mlops.experiments.monitor import ExperimentTracker, LiveExperiment, LiveExperimentRow
from stream_mlops.pipeline.consumer import Consumer
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.status import PipelineStatus
from tests.conftest import Roles, new_database
from tests.helpers import (
    ProcessorProcess,
    http_status,
    insert_requests,
    metric_sum,
    persisted_totals,
    scrape,
    wait_for,
)
from tests.integration.test_cli import cli

UNSAFE = ["\u2028", "\u2029", "\u0085", "\u202e", "\u2066", "\u200f", "\x1b"]
LABEL_COLUMNS = ["function_name", "model", "model_version", "variant", "deployment_slot"]


def consumer(url: str) -> Consumer:
    c = Consumer(url, Processor(), PipelineStatus(), batch_size=1000)
    assert c.open()
    return c


def drain(c: Consumer) -> None:
    while c.step():
        pass


def create_running(conn: psycopg.Connection[Any], name: str, tenant: str) -> str:
    eid = experiments.create(conn, ExperimentSpec(name, "summarize", tenant_id=tenant))
    experiments.set_status(conn, name, "running", tenant)
    conn.commit()
    return eid


def log_rows(conn: psycopg.Connection[Any], tenant: str, eid: str, n: int) -> None:
    conn.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                 " latency_ms, variant, experiment_id, status)"
                 " SELECT %s, 'summarize', 'gpt-4o', 100,"
                 " CASE WHEN g %% 2 = 0 THEN 'control' ELSE 'treatment' END, %s::uuid,"
                 " CASE WHEN g %% 10 = 0 THEN 'error' ELSE 'success' END"
                 " FROM generate_series(1, %s) g", (tenant, eid, n))
    conn.commit()


# -- 1. processor-owned data stays processor-owned ---------------------------------------
@pytest.mark.parametrize("column", ["results", "decision", "concluded_at", "started_at",
                                    "stopped_at", "seed"])
def test_the_writer_cannot_write_what_the_processor_derives(roles: Roles, column: str) -> None:
    value = {"results": "'{\"state\": {\"cursor\": [\"abc\", 5]}}'",
             "decision": "'treatment_better'", "seed": "'mine'"}.get(column, "now()")
    with roles.as_(roles.writer_a) as w:
        create_running(w, "exp", "a")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            w.execute(f"UPDATE mlops.experiments SET {column} = {value}")


def test_the_writer_creates_starts_and_stops_its_experiments_audited(roles: Roles) -> None:
    with roles.as_(roles.writer_a) as w:
        create_running(w, "exp", "a")
        assert experiments.set_status(w, "exp", "stopped", "a") == "stopped"
        w.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            experiments.create(w, ExperimentSpec("theirs", "summarize", tenant_id="b"))
    with psycopg.connect(roles.url) as su:
        rows = su.execute("SELECT operation, actor, row_after->>'status' FROM mlops.audit_log"
                          " WHERE table_name = 'experiments' ORDER BY id").fetchall()
    assert rows == [("INSERT", roles.writer_a, "draft"), ("UPDATE", roles.writer_a, "running"),
                    ("UPDATE", roles.writer_a, "stopped")]
    with roles.as_(roles.writer_a) as w, pytest.raises(psycopg.errors.InsufficientPrivilege):
        w.execute("INSERT INTO mlops.audit_log (table_name, operation) VALUES ('x', 'y')")


def test_an_unreadable_stored_state_is_rebuilt_and_nothing_stops(roles: Roles) -> None:
    """A state no version of ours wrote (here by the superuser, as a restored dump or a
    hand edit would) is reported and rebuilt from the rows; the numbers come out the same."""
    with roles.as_(roles.writer_a) as w:
        eid = create_running(w, "exp", "a")
        log_rows(w, "a", eid, 400)
    c = consumer(roles.url)
    drain(c)
    c.run_jobs("experiments")
    honest = c.processor.monitor(ExperimentTracker).live[eid].samples()
    c.close()
    with psycopg.connect(roles.url) as su:
        su.execute("UPDATE mlops.experiments SET results ="
                   " '{\"state\": {\"cursor\": [\"abc\", 5]}}'")
    c = consumer(roles.url)  # the crash loop of the review: exit 70 on every start
    assert c.status.monitor_errors_total == 1
    e = c.processor.monitor(ExperimentTracker).live[eid]
    assert e.discarded is not None and "cursor" in e.discarded
    assert e.samples() == honest == {"control": 200, "treatment": 200}
    c.run_jobs("experiments")
    with psycopg.connect(roles.url) as su:
        row = su.execute("SELECT results->'state'->'cursor' FROM mlops.experiments").fetchone()
    assert row is not None and row[0] == c.cursor.to_json()  # its own state again
    c.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30))
def test_no_stored_json_makes_an_experiment_fail_to_load(garbage: Any) -> None:
    for results in (garbage, {"state": garbage}):
        e = LiveExperiment.from_row(LiveExperimentRow(
            "e", "t", "exp", "f", "running",
            [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
            "error_rate", [], 0.05, None, 100, False, None, results))
        assert e.cursor == Cursor() or e.discarded is None  # rebuilt, or a sound state
        json.dumps(e.results(e.cursor), allow_nan=False)  # what it writes is valid JSON
    tracker = ExperimentTracker()  # garbage as the configuration: refused, never raised
    tracker.sync([LiveExperimentRow("g", "t", "bad", "f", "running", garbage, "error_rate",
                                    [], 0.05, None, 100, False, None, {})])
    assert tracker.live == {} or list(tracker.live) == ["g"]


# -- 2. names are safe everywhere they go -------------------------------------------------
@pytest.mark.parametrize("char", UNSAFE)
@pytest.mark.parametrize("column", LABEL_COLUMNS)
def test_names_with_control_separator_or_bidi_characters_are_refused(
        roles: Roles, column: str, char: str) -> None:
    row = {"tenant_id": "a", "function_name": "f", "model": "gpt-4o", "variant": "control"}
    row[column] = f"sum{char}marize"
    cols = ", ".join(row)
    with roles.as_(roles.writer_a) as w, pytest.raises(psycopg.errors.CheckViolation,
                                                       match=column):
        w.execute(f"INSERT INTO mlops.model_performance ({cols}, latency_ms)"
                  f" VALUES ({', '.join(['%s'] * len(row))}, 1)", list(row.values()))


@pytest.mark.parametrize("char", UNSAFE)
def test_tenant_names_are_checked_too(db_url: str, char: str) -> None:
    """A writer can only write its own tenants (RLS), whose names the operator chose: the
    check is for everybody else who inserts."""
    with psycopg.connect(db_url) as su, pytest.raises(psycopg.errors.CheckViolation,
                                                      match="tenant_id"):
        su.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                   " latency_ms) VALUES (%s, 'f', 'm', 1)", (f"t{char}",))


# -- 5. an experiment counts only its own tenant's rows -----------------------------------
def test_another_tenants_rows_are_not_counted_in_an_experiment(roles: Roles) -> None:
    with roles.as_(roles.writer_a) as wa:
        eid = create_running(wa, "exp", "a")
        log_rows(wa, "a", eid, 40)
    with roles.as_(roles.writer_b) as wb:  # B sends 400 rows naming A's experiment, all
        wb.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                   " latency_ms, variant, experiment_id) SELECT 'b', 'summarize', 'gpt-4o',"
                   " 1, 'control', %s::uuid FROM generate_series(1, 400)", (eid,))
        wb.commit()
    c = consumer(roles.url)
    drain(c)
    c.run_jobs("experiments", "rules")
    e = c.processor.monitor(ExperimentTracker).live[eid]
    assert e.samples() == {"control": 20, "treatment": 20}  # the review saw 440 for 40
    assert e.foreign_tenant == 400
    assert e.srm is not None and not e.srm.mismatch
    with psycopg.connect(roles.url) as su:
        alerts = su.execute("SELECT fingerprint FROM mlops.alerts WHERE fingerprint LIKE"
                            " 'experiment:%'").fetchall()
    assert alerts == []  # no sample-ratio alert for A
    c.close()
    c = consumer(roles.url)  # the same after a restart (replayed from the stored state)
    assert c.processor.monitor(ExperimentTracker).live[eid].foreign_tenant == 400
    c.close()


def test_hostile_open_alert_rows_do_not_break_metrics(roles: Roles) -> None:
    with psycopg.connect(roles.url) as su:
        su.execute("INSERT INTO mlops.alerts (tenant_id, alert_type, fingerprint, title,"
                   " message) VALUES ('a', 'performance', 'fp', 't', 'm'),"
                   " ('a', 'drift', 'drift:nometric', 't', 'm')")
    c = consumer(roles.url)
    assert c.status.monitor_errors_total == 2
    families = [m for build in c.processor.metrics(0.0) for m in build()]
    active = next(f for f in families if f.name == "mlops_alert_active")
    assert [s.labels["function"] for s in active.samples] == ["f", "f"]  # the fixture's
    c.close()


@pytest.mark.parametrize("covariate", [None, "query_length"])
def test_values_survive_the_json_state_round_trip(covariate: str | None) -> None:
    """What the tracker writes is what the schema accepts (no rebuild after a restart)."""
    def experiment(results: Any, covariate: str | None = covariate) -> LiveExperiment:
        return LiveExperiment.from_row(LiveExperimentRow(
            "e", "t", "exp", "f", "running",
            [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
            "latency", ["error_rate"], 0.05, None, 10, False, covariate, results))

    e = experiment({})
    rng = np.random.default_rng(1)
    from stream_mlops.experiments.monitor import ArmRows
    e.observe(["control", "treatment"] * 50, ArmRows(
        rng.lognormal(5, 1, 100), rng.random(100) < 0.1, np.full(100, -1.0),
        np.full(100, 10**6, np.int64), rng.lognormal(6, 0.5, 100).round()))
    at = Cursor("100:103:101", "110:110:", "104", 45)
    stored = json.loads(json.dumps(e.results(at)))
    again = experiment(stored)
    assert again.discarded is None and again.cursor == at
    assert again.samples() == e.samples()
    assert again.tests["latency"]["treatment"].state() == e.tests["latency"]["treatment"].state()
    # A state adjusted differently from the experiment is rebuilt from the rows, not mixed.
    other = experiment(stored, None if covariate else "query_length")
    assert other.discarded is not None and "latency test is" in other.discarded
    assert other.cursor == Cursor()


# -- 8. secrets never leave ---------------------------------------------------------------
@pytest.mark.parametrize("url", ["postgresql://u:pa%zzss-s3cret@127.0.0.1:1/db",
                                 "postgresql://u:pa ss-s3cret@127.0.0.1:1/db",
                                 "host=127.0.0.1 password=pa ss-s3cret"])
@pytest.mark.parametrize("command", ["run", "status", "migrate"])
def test_a_malformed_url_is_a_configuration_error_that_shows_no_secret(
        command: str, url: str) -> None:
    out = cli(command, env={"DATABASE_URL": url, "METRICS_PORT": "0"})
    assert out.returncode == 78, out  # at once: no retry loop
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL" in lines[0] and "percent-encode" in lines[0]
    assert "s3cret" not in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_an_outage_shows_as_unreachable_and_no_address_or_password_leaves(
        own_pg: EmbeddedPostgres, tmp_path: Path) -> None:
    url = new_database(own_pg).replace("postgres@", "postgres:pw-s3cret@")
    log = tmp_path / "p.log"
    p = ProcessorProcess(url, log_path=log).start()
    try:
        p.wait_ready()
        own_pg.stop("immediate")
        wait_for(lambda: "database unreachable" in http_status(p.port, "/readyz")[1], 30,
                 "/readyz to say so")
        status, body = http_status(p.port, "/readyz")
        assert status == 503 and "standby" not in body
        assert str(own_pg.port) not in body and "127.0.0.1" not in body
        wait_for(lambda: "database error; retrying" in log.read_text(), 30, "a retry")
        own_pg.start()
        p.wait_ready(60)
    finally:
        p.stop()
    text = log.read_text()
    assert "pw-s3cret" not in text
    for line in text.splitlines():  # JSON lines, tracebacks included
        json.loads(line)


# -- 11. the small ones -------------------------------------------------------------------
def test_reset_cursor_says_when_there_is_no_such_cursor(db_url: str) -> None:
    out = cli("reset-cursor", "--after-restore", "--consumer", "nobody",
              env={"DATABASE_URL": db_url})
    assert out.returncode == 2 and "there is no cursor named 'nobody'" in out.stderr
    assert "nothing changed" not in out.stdout


def test_a_late_email_shows_the_alert_as_it_was_when_queued(db_url: str) -> None:
    """Queued while firing, sent after the alert resolved: the FIRING e-mail still reads
    as the firing alert did (the review saw a FIRING mail reading 'Resolved')."""
    key = AlertKey("default", "performance:error_rate:summarize")
    fire = alert_change("fire", key, "performance", rule="error_rate", severity="critical",
                        function="summarize", title="High error rate in summarize",
                        message="Error rate 30.0% over the last 60 s is above 5.0%.")
    resolve = alert_change("resolve", key, "performance", rule="error_rate",
                           message="Resolved: error rate back at 1.0%.")
    with psycopg.connect(db_url) as conn:
        write_changes(conn, [fire], notify=True)
        write_changes(conn, [resolve], notify=True)
        with conn.cursor(row_factory=class_row(DueNotification)) as cur:
            due = cur.execute(q("claim_notifications")).fetchall()
    assert [(d.kind, d.message) for d in due] == [
        ("firing", "Error rate 30.0% over the last 60 s is above 5.0%."),
        ("resolved", "Resolved: error rate back at 1.0%.")]
    mail = compose([due[0].notice], Smtp("127.0.0.1", 25, "a@example.com", ("b@example.com",)))
    assert "FIRING critical" in str(mail["Subject"]) and "Resolved" not in mail.as_string()


# -- 9. the metrics port cannot be used to stall the processor ---------------------------
def test_held_open_connections_neither_stall_consuming_nor_the_endpoint(
        db_url: str, tmp_path: Path) -> None:
    """The review held 250 connections to the port open and processing stalled ~45 s."""
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
    held: list[socket.socket] = []
    try:
        p.wait_ready()
        for _ in range(250):  # half a request each, then silence
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        insert_requests(db_url, 0, 500, per_tx=50)
        started = time.monotonic()
        wait_for(lambda: persisted_totals(db_url)[2] == 500, 10, "rows consumed meanwhile")
        consumed_s = time.monotonic() - started
        wait_for(lambda: http_status(p.port, "/healthz")[0] == 200, 15, "the endpoint")
        assert consumed_s < 5, consumed_s
        assert p.events() == 500
    finally:
        for s in held:
            s.close()
        p.stop()


def test_a_client_flooding_metrics_neither_stalls_nor_double_counts(
        db_url: str, tmp_path: Path) -> None:
    """Every scrape asks the consumer for a read: 12 clients scraping back to back, as
    fast as the port answers, while 1,000 rows arrive, make it batch often but one batch
    at a time. Every row is counted once, the probes answer, and each scrape counts at
    least the rows committed before it started."""
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
    stop, stale, answered = threading.Event(), [], [0]
    committed = [0]

    def flood() -> None:
        while not stop.is_set():
            before = committed[0]
            try:
                seen = metric_sum(scrape(p.port), "mlops_processor_events_total")
            except OSError:  # refused past the port's 16 slots: that is the design
                continue
            answered[0] += 1
            if seen < before:
                stale.append((before, seen))

    threads = [threading.Thread(target=flood) for _ in range(12)]
    try:
        p.wait_ready()
        for th in threads:
            th.start()
        for lo in range(0, 1000, 50):
            insert_requests(db_url, lo, 50, per_tx=50)
            committed[0] = lo + 50
        wait_for(lambda: persisted_totals(db_url)[2] == 1000, 30, "rows consumed meanwhile")
        wait_for(lambda: http_status(p.port, "/healthz")[0] == 200, 15, "the endpoint")
        stop.set()
        for th in threads:
            th.join(10)
        assert answered[0] > 0
        assert stale == []
        assert persisted_totals(db_url)[0] == 1000  # requests in the totals: no double count
        assert p.events() == 1000
    finally:
        stop.set()
        p.stop()


def test_metrics_are_compressed_and_speak_openmetrics_when_asked(db_url: str,
                                                                 tmp_path: Path) -> None:
    insert_requests(db_url, 0, 50)
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
    try:
        p.wait_ready()
        p.wait_consumed(50)
        req = urllib.request.Request(f"http://127.0.0.1:{p.port}/metrics", headers={
            "Accept-Encoding": "gzip",
            "Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 (http://127.0.0.1)
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            text = gzip.decompress(r.read()).decode()
        families = {f.name for f in text_string_to_metric_families(text)}  # type: ignore[no-untyped-call]
        assert {"mlops_requests", "mlops_job_runs", "process_resident_memory_bytes"} <= families
        with urllib.request.urlopen(f"http://127.0.0.1:{p.port}/metrics?name[]="
                                    "mlops_processor_events_total", timeout=5) as r:
            only = r.read().decode()
        assert "mlops_processor_events_total" in only and "mlops_requests_total" not in only
    finally:
        p.stop()


# -- 9/10. readers see no other tenant's volume or names ---------------------------------
def test_explain_shows_a_reader_nothing_of_other_tenants(roles: Roles) -> None:
    """With column statistics, EXPLAIN's row estimate would tell a reader that another
    tenant logs 'secret-launch' (244 estimated rows against 1 for an unknown name)."""
    with psycopg.connect(roles.url) as su:
        su.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                   " latency_ms) SELECT 'b', 'secret-launch', 'gpt-4o', 1"
                   " FROM generate_series(1, 5000)")
        su.commit()
        su.execute("ANALYZE mlops.model_performance")

    def estimate(conn: psycopg.Connection[Any], function: str) -> str:
        """The planner's row estimates: what a probe of the name would read."""
        plan = conn.execute("EXPLAIN SELECT * FROM mlops.model_performance"
                            " WHERE function_name = %s", (function,)).fetchall()
        return " ".join(re.findall(r"rows=\d+", " ".join(r[0] for r in plan)))

    with roles.as_(roles.reader_a) as a:
        assert estimate(a, "secret-launch") == estimate(a, "does-not-exist")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            a.execute("SELECT events_total FROM mlops.consumer_checkpoints")


# -- 10. least privilege in what we ship --------------------------------------------------
def test_the_stacks_processor_login_has_mlops_processor_only(pg: EmbeddedPostgres,
                                                             db_url: str) -> None:
    """deploy/processor_role.sql (the compose stack's `roles` step), run twice, makes a
    login that is a member of mlops_processor only, and the processor runs as it."""
    script = Path(__file__).resolve().parents[2] / "deploy" / "processor_role.sql"
    dbname = db_url.rsplit("/", 1)[1]
    for _ in range(2):  # idempotent: the stack runs it on every `up`
        out = subprocess.run([str(pg.bindir / "psql"), "-X", "-v", "ON_ERROR_STOP=1",
                              "-v", "pw=s3cret", "-f", str(script), pg.url_for(dbname)],
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
    with psycopg.connect(db_url) as su:
        role = su.execute("SELECT rolsuper, rolbypassrls, rolcanlogin,"
                          " ARRAY(SELECT b.rolname FROM pg_auth_members m"
                          "  JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid)"
                          " FROM pg_roles r WHERE rolname = 'stream_mlops_processor'"
                          ).fetchone()
    assert role == (False, False, True, ["mlops_processor"])
    c = Consumer(pg.url_for(dbname, "stream_mlops_processor"), Processor(), PipelineStatus())
    assert c.open()
    c.close()
