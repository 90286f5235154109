"""The command line as a user meets it: one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from stream_mlops.dev.embedded import free_port
from tests.helpers import (
    ProcessorProcess,
    http_status,
    insert_requests,
    metric_sum,
    scrape,
    wait_for,
)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "stream_mlops", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, timeout=60, check=False)


def assert_one_line_error(out: subprocess.CompletedProcess[str], *needles: str,
                          code: int = 2) -> None:
    assert out.returncode == code, out
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for n in needles:
        assert n in lines[0]


def test_missing_database_url() -> None:
    assert_one_line_error(cli("migrate"), "DATABASE_URL is not set", code=78)


def test_malformed_setting_names_the_variable() -> None:
    out = cli("run", env={"DATABASE_URL": "postgresql://x@127.0.0.1:1/db", "METRICS_PORT": "abc"})
    assert_one_line_error(out, "METRICS_PORT='abc' is invalid", code=78)


def test_unreachable_database_hides_the_password() -> None:
    port = free_port()
    out = cli("status", env={"DATABASE_URL": f"postgresql://u:s3cret@127.0.0.1:{port}/db"})
    assert_one_line_error(out, "cannot connect to Postgres", f"port={port}")
    assert "s3cret" not in out.stderr


def test_metrics_port_in_use_is_one_line(db_url: str) -> None:
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = cli("run", env={"DATABASE_URL": db_url, "METRICS_PORT": str(port)})
    assert_one_line_error(out, f"cannot serve metrics on 127.0.0.1:{port}", code=78)


def test_unmigrated_database_tells_what_to_do(pg: object) -> None:
    import psycopg

    from stream_mlops.dev.embedded import EmbeddedPostgres
    assert isinstance(pg, EmbeddedPostgres)
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS blank_cli")
        conn.execute("CREATE DATABASE blank_cli")
    out = cli("run", env={"DATABASE_URL": pg.url_for("blank_cli"), "METRICS_PORT": "0"})
    assert_one_line_error(out, "run `stream-mlops migrate`")


def test_migrate_status_health_and_notify(db_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url}
    out = cli("migrate", env=env)
    assert out.returncode == 0 and "already up to date" in out.stdout
    insert_requests(db_url, 0, 25)
    never = cli("status", "--json", env=env)
    assert json.loads(never.stdout)["events_processed"] == 0
    port = free_port()
    down = cli("health", env={**env, "METRICS_PORT": str(port)})
    assert down.returncode == 1 and "processor not reachable" in down.stdout
    p = ProcessorProcess(db_url, port=port, log_path=tmp_path / "p.log").start()
    try:
        p.wait_ready()
        up = cli("health", env={**env, "METRICS_PORT": str(port)})
        assert up.returncode == 0, up.stdout
        st = json.loads(cli("status", "--json", env=env).stdout)
        assert st["events_processed"] == 25 and st["lag_seconds"] == 0.0
        # The rows include a model with no price: it is named in an alert per tenant.
        wait_for(lambda: json.loads(cli("status", "--json", env=env).stdout)[
            "firing_alerts"] == 3, 10, "the unpriced-model alerts")
        listed = cli("alerts", env=env).stdout
        assert "Model no-such-model has no price (tenant tenant-0)" in listed
        # Poll-only mode: no NOTIFY, the poll interval still delivers.
        assert cli("notify", "off", env=env).returncode == 0
        insert_requests(db_url, 25, 5)
        wait_for(lambda: p.events() == 30, 10, "poll-only delivery")
        assert cli("notify", "on", env=env).returncode == 0
    finally:
        assert p.stop() == 0


def test_series_cardinality_is_bounded_per_tenant(db_url: str, tmp_path: Path) -> None:
    import psycopg
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                     " latency_ms) SELECT 'a', 'fn-' || g, 'gpt-4o', 1"
                     " FROM generate_series(1, 50) g")
        conn.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                     " latency_ms) SELECT 'b', 'fn-' || g, 'gpt-4o', 1"
                     " FROM generate_series(1, 3) g")
    p = ProcessorProcess(db_url, env={"MAX_SERIES_PER_TENANT": "10"},
                         log_path=tmp_path / "p.log").start()
    try:
        p.wait_ready()
        p.wait_consumed(53)
        m = scrape(p.port)
        functions = {(labels["tenant"], labels["function"])
                     for labels, _ in m["mlops_requests_total"]}
        assert len({f for t, f in functions if t == "a"}) == 11 and ("a", "__other__") in functions
        assert {f for t, f in functions if t == "b"} == {"fn-1", "fn-2", "fn-3"}  # untouched
        assert metric_sum(m, "mlops_requests_total") == 53
        assert metric_sum(m, "mlops_requests_total", tenant="a", function="__other__") == 40
        assert metric_sum(m, "mlops_tenant_series_folded_total", tenant="a") == 40
        assert metric_sum(m, "mlops_tenant_series_folded_total", tenant="b") == 0
        with psycopg.connect(db_url) as conn:
            alerts = conn.execute("SELECT tenant_id, fingerprint FROM mlops.alerts").fetchall()
        assert alerts == [("a", "pipeline:series_budget")]
        assert http_status(p.port, "/nope")[0] == 404
    finally:
        assert p.stop() == 0


def test_restore_into_another_cluster_is_refused_then_rebased(db_url: str,
                                                              tmp_path: Path) -> None:
    import psycopg

    from tests.helpers import db_totals, persisted_totals, wait_for
    insert_requests(db_url, 0, 100, per_tx=10)
    p = ProcessorProcess(db_url, log_path=tmp_path / "p1.log").start()
    p.wait_ready()
    wait_for(lambda: p.events() == 100, 20, "first pass")
    assert p.stop() == 0
    with psycopg.connect(db_url) as conn:
        # What a restore into another cluster looks like: the cursor names another
        # cluster and the restored rows carry xids far above this cluster's counter.
        conn.execute("UPDATE mlops.model_performance"
                     " SET xid = (xid::text::bigint + 1000000)::text::xid8")
        frontier, window_end = conn.execute(
            "SELECT frontier::text, window_end::text FROM mlops.consumer_checkpoints"
            ).fetchone() or ("", None)

        def shifted(snapshot: str | None) -> str | None:
            if snapshot is None:
                return None
            xmin, xmax, xip = snapshot.split(":")
            return ":".join([str(int(xmin) + 10**6), str(int(xmax) + 10**6),
                             ",".join(str(int(x) + 10**6) for x in xip.split(",") if x)])

        conn.execute("UPDATE mlops.consumer_checkpoints SET system_identifier = '42',"
                     " last_xid = (last_xid::text::bigint + 1000000)::text::xid8,"
                     " frontier = %s::pg_snapshot, window_end = %s::pg_snapshot",
                     (shifted(frontier), shifted(window_end)))
    insert_requests(db_url, 100, 50, per_tx=10)  # real, lower xids
    env = {"DATABASE_URL": db_url, "METRICS_PORT": "0"}
    refused = cli("run", env=env)
    assert refused.returncode == 2
    assert "restored from a dump?" in refused.stderr.strip().splitlines()[-1]
    assert "Traceback" not in refused.stderr
    out = cli("reset-cursor", "--after-restore", env=env)
    assert out.returncode == 0 and "moved from cluster 42" in out.stdout
    again = cli("reset-cursor", "--after-restore", env=env)
    assert "nothing changed" in again.stdout
    p2 = ProcessorProcess(db_url, log_path=tmp_path / "p2.log").start()
    try:
        p2.wait_ready()
        wait_for(lambda: p2.events() == 150, 20, "the 50 new rows, once")
        count, cost = db_totals(db_url)
        assert count == 150
        assert persisted_totals(db_url) == (150, cost, 150)
        assert metric_sum(scrape(p2.port), "mlops_requests_total") == 150
    finally:
        assert p2.stop() == 0


@pytest.mark.parametrize(("args", "message"), [
    (("costs", "--days", "-3"), "argument --days: must be between 1 and 3,660, got -3"),
    (("costs", "--days", "0"), "argument --days: must be between 1 and 3,660, got 0"),
    (("alerts", "--limit", "0"), "argument --limit: must be between 1 and 100,000, got 0"),
    (("simulate", "--rate", "nan"), "argument --rate: must be between 0.01 and 100,000, got nan"),
    (("simulate", "--rate", "inf"), "argument --rate: must be between 0.01 and 100,000, got inf"),
    (("simulate", "--rate", "-5"), "argument --rate: must be between 0.01 and 100,000, got -5"),
    (("simulate", "--duration", "nan"),
     "argument --duration: must be between 0.001 and 1,000,000,000, got nan"),
    (("experiment", "create", "x", "--min-samples", "99999999999"),
     "argument --min-samples: must be between 10 and 1,000,000,000, got 99999999999"),
    (("costs", "--days", "two"), "argument --days: expected an integer, got 'two'"),
])
def test_out_of_range_arguments_are_refused_by_name(args: tuple[str, ...],
                                                    message: str) -> None:
    out = cli(*args, env={"DATABASE_URL": "postgresql://127.0.0.1:1/none"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith(message), out.stderr


def test_every_help_page_renders() -> None:
    for command in ("migrate", "run", "health", "status", "notify", "reset-cursor", "alerts",
                    "costs", "experiment", "drift", "prices", "simulate", "demo"):
        out = cli(command, "--help")
        assert out.returncode == 0 and "Traceback" not in out.stderr, (command, out.stderr)
    assert "error rate 2 % -> 20 %" in " ".join(cli("simulate", "--help").stdout.split())


def test_simulate_says_when_requests_were_not_stored() -> None:
    out = cli("simulate", "--rate", "50", "--duration", "0.5", "--change-after", "0",
              env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none",
                   "CONNECT_TIMEOUT_SECONDS": "1"})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("sent ") and ", 0 stored; " in last and " not stored (" in last


def test_a_closed_pipe_ends_quietly(db_url: str) -> None:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    p = subprocess.Popen([sys.executable, "-m", "stream_mlops", "prices", "list"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**base, "DATABASE_URL": db_url})
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # like `| head -0`: gone before the first line is written
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == ""


def test_alert_acknowledged_twice_says_so(db_url: str) -> None:
    env = {"DATABASE_URL": db_url}
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO mlops.alerts (alert_type, fingerprint, title, message)"
                           " VALUES ('cost', 'cost:test', 't', 'm') RETURNING id").fetchone()
    assert row is not None
    assert cli("alerts", "ack", str(row[0]), env=env).returncode == 0
    again = cli("alerts", "ack", str(row[0]), env=env)
    assert again.returncode == 1 and again.stderr == f"alert {row[0]} is already acknowledged\n"
    missing = cli("alerts", "ack", "999999", env=env)
    assert "no alert with id 999999" in missing.stderr
