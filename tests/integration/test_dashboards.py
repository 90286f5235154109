"""Proof of the dashboards without Grafana: every PromQL expression parses in the real
Prometheus and returns data from a real processor that the simulator fed every scenario;
every SQL panel runs as the reader role (row level security on) and returns rows."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml

from stream_mlops.client import RequestLogger
from stream_mlops.dev import dashboards
from stream_mlops.dev.embedded import EmbeddedPostgres
from stream_mlops.dev.simulator import SCENARIOS, ExperimentArms, Scenario, Traffic
from stream_mlops.experiments import store as experiments
from stream_mlops.experiments.config import ExperimentSpec
from tests.conftest import new_database
from tests.helpers import ProcessorProcess, metric_sum, scrape, wait_for
from tests.integration.test_prometheus import Prometheus, tool

ROOT = Path(__file__).resolve().parents[2]
# What Grafana substitutes: "All" for every variable, a rate window of a few scrapes.
ALL = {"$tenant": ".*", "$function": ".*", "$model": ".*", "$__rate_interval": "1m"}
TENANTS = ("default", "tenant-0", "tenant-1", "tenant-2")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    text: str

    def where(self) -> str:
        return f"{self.dashboard} / {self.panel}: {self.text}"


def all_queries(kind: str) -> list[Query]:
    """Every ``expr`` (kind "expr") or ``rawSql`` of every committed dashboard, panels and
    annotations."""
    out = []
    for f in sorted((ROOT / "grafana/dashboards").glob("*.json")):
        doc = json.loads(f.read_text())
        for p in doc["panels"]:
            out += [Query(doc["title"], p["title"], t[kind]) for t in p.get("targets", [])
                    if kind in t]
        for a in doc.get("annotations", {}).get("list", []):
            if kind in a.get("target", {}):
                out.append(Query(doc["title"], f"annotation {a['name']}", a["target"][kind]))
    return out


def promql(expr: str) -> str:
    for var, value in ALL.items():
        expr = expr.replace(var, value)
    return expr


def sql(text: str, tenant: str = ".*") -> str:
    """Grafana's rendering of a SQL panel: ${var:regex} and $__timeFilter(column)."""
    text = text.replace("${tenant:regex}", tenant)
    text = re.sub(r"\$\{\w+:regex\}", ".*", text)
    return re.sub(r"\$__timeFilter\((\w+)\)",
                  r"\1 BETWEEN now() - interval '6 hours' AND now() + interval '1 minute'", text)


def test_every_promql_expression_parses_in_prometheus(tmp_path: Path) -> None:
    exprs = all_queries("expr")
    assert len(exprs) >= 40
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": promql(q.text)} for i, q in enumerate(exprs)]}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    out = subprocess.run([tool("promtool"), "check", "rules", str(tmp_path / "rules.yml")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in out.stdout


def _send(url: str, traffic: Traffic, n: int, elapsed: float) -> None:
    logger = RequestLogger(url, flush_interval=0.05, max_buffer=n + 1)
    for fields in traffic.requests(n, elapsed=elapsed):
        logger.log(**fields)
    logger.close(timeout=60)


def _drift_runs(port: int) -> float:
    return metric_sum(scrape(port), "mlops_job_runs_total", job="drift")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, pg: EmbeddedPostgres
        ) -> Iterator[tuple[str, ProcessorProcess, Prometheus]]:
    """A database the simulator fed: a steady hour for the references, then every scenario
    (an experiment, a deployment row and a pinned reference included), consumed by a real
    processor that a real Prometheus scrapes every second."""
    url = new_database(pg)
    tmp = tmp_path_factory.mktemp("dashboards")
    with psycopg.connect(url, autocommit=True) as conn:
        # A latency guardrail: its lift is defined whatever the few control rows' errors
        # (an error-rate lift is undefined while the control has none).
        experiments.create(conn, ExperimentSpec("dash-exp", "summarize",
                                                guardrails=("latency",)))
        experiments.set_status(conn, "dash-exp", "running")
        e = experiments.get(conn, "dash-exp")
        # As a deployment lives: created pending, rolled back with its reason.
        conn.execute("INSERT INTO mlops.deployments (tenant_id, function_name, version, slot,"
                     " status, traffic_percent) VALUES ('tenant-0', 'summarize', 'v2',"
                     " 'green', 'pending', 0)")
        conn.execute("UPDATE mlops.deployments SET status = 'rolled_back', rolled_back_at ="
                     " now(), reason = 'error rate 30 % vs 2 %, p = 0.001'")
        conn.execute("INSERT INTO mlops.drift_references (tenant_id, function_name, metric,"
                     " pinned) VALUES ('tenant-0', 'summarize', 'latency', true)")
        conn.execute("INSERT INTO mlops.cost_tracking (tenant_id, function_name, model,"
                     " period_start, request_count, cost_usd) VALUES ('tenant-0', 'summarize',"
                     " 'gpt-4o-mini', date_trunc('hour', now()), 10, 0.5)")
    arms = ExperimentArms(e.id, e.tenant_id, e.function_name, e.seed,
                          tuple((v.name, v.weight) for v in e.variants))
    p = ProcessorProcess(url, log_path=tmp / "processor.log").start()
    prom = Prometheus(tmp, p.port)
    try:
        p.wait_ready()
        # tenant-0 gets enough for the drift references (~1,500 per function).
        _send(url, Traffic(seed=1, tenants=1), 6_000, elapsed=0)
        _send(url, Traffic(seed=2, tenants=3), 1_000, elapsed=0)
        runs = _drift_runs(p.port)
        p.wait_consumed(7_000, timeout=60)
        wait_for(lambda: _drift_runs(p.port) > runs, 30, "references learnt")
        sent = {name: 3_000 if name == "input_drift" else 800 for name in SCENARIOS}
        for i, (name, n) in enumerate(sent.items()):
            scenario = Scenario(name, change_after=0)
            _send(url, Traffic(seed=10 + i, scenario=scenario,
                               tenants=1 if name == "input_drift" else 3,
                               experiment=arms if name.startswith("treatment") else None),
                  n, elapsed=10)
        runs = _drift_runs(p.port)
        p.wait_consumed(7_000 + sum(sent.values()), timeout=60)
        wait_for(lambda: _drift_runs(p.port) > runs, 30, "drift tests on the scenarios")
        yield url, p, prom
    finally:
        prom.stop()
        p.stop()


def test_every_promql_expression_returns_data_from_the_fed_processor(
        fed: tuple[str, ProcessorProcess, Prometheus]) -> None:
    _url, _p, prom = fed
    exprs = all_queries("expr")
    # Rates need two scrapes after the last row; then every series is there.
    now = time.time()
    wait_for(lambda: prom.value('timestamp(up{job="stream-mlops"} == 1)') > now + 2, 30,
             "two scrapes after the last row")
    wait_for(lambda: prom.query(promql(exprs[0].text))["data"]["result"] != [], 30,
             "the first rate")
    allowed = dashboards.allowed_empty()
    empty, errors = [], []
    for q in exprs:
        doc = prom.query(promql(q.text))
        if doc["status"] != "success":
            errors.append(f"{q.where()}: {doc.get('error')}")
        elif not doc["data"]["result"] and q.text not in allowed:
            empty.append(q.where())
    assert errors == []
    assert empty == [], "these panels would show no data:\n" + "\n".join(empty)
    # The allowances are few, named, and each still parses (checked above).
    assert set(allowed) <= {q.text for q in exprs}
    # thresholds 3, baselines 2, deployments 8 (issue 13), drift p-values, alerts by rule
    assert len(allowed) <= 15


def test_every_sql_panel_returns_rows_as_the_reader_role(
        fed: tuple[str, ProcessorProcess, Prometheus], pg: EmbeddedPostgres) -> None:
    url, _p, _prom = fed
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as su:
        su.execute("DROP ROLE IF EXISTS dash_reader")
        su.execute("CREATE ROLE dash_reader LOGIN IN ROLE mlops_reader")
        su.execute("INSERT INTO mlops.tenant_roles (role_name, tenant_id) SELECT"
                   " 'dash_reader', t FROM unnest(%s::text[]) t", (list(TENANTS),))
    reader = pg.url_for(dbname, user="dash_reader")
    queries = all_queries("rawSql")
    assert len(queries) >= 8
    try:
        with psycopg.connect(reader) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("dash_reader",)
            empty = [q.where() for q in queries if not conn.execute(sql(q.text)).fetchall()]
            assert empty == [], "these SQL panels return no rows:\n" + "\n".join(empty)
            # A tenant matching nothing: no rows, not an error (Grafana says "no data").
            for q in queries:
                assert conn.execute(sql(q.text, tenant="no-such-tenant")).fetchall() == []
        with psycopg.connect(url, autocommit=True) as su:  # the reader sees only its own
            su.execute("DELETE FROM mlops.tenant_roles WHERE role_name = 'dash_reader'"
                       " AND tenant_id <> 'tenant-1'")
        with psycopg.connect(reader) as conn:
            alerts = next(q.text for q in queries if "FROM mlops.alerts" in q.text)
            rows = conn.execute(sql(alerts)).fetchall()
            assert rows and {r[1] for r in rows} == {"tenant-1"}  # column 2: tenant
    finally:
        with psycopg.connect(url, autocommit=True) as su:
            su.execute("DELETE FROM mlops.tenant_roles WHERE role_name = 'dash_reader'")
            su.execute("DROP OWNED BY dash_reader")
            su.execute("DROP ROLE dash_reader")


@pytest.mark.parametrize(("script", "group"), [("grafana_role.sql", "mlops_reader"),
                                                ("app_role.sql", "mlops_writer")])
def test_the_compose_logins_are_members_of_one_group_for_the_listed_tenants(
        db_url: str, script: str, group: str) -> None:
    """What the compose stack's `roles` service runs, run by the real psql."""
    for _ in range(2):  # idempotent: `docker compose up` again must not fail
        out = subprocess.run(
            ["psql", "-v", "ON_ERROR_STOP=1", "-v", "pw=s3cret", "-v",
             "tenants=default,tenant-0", "-f", str(ROOT / "deploy" / script), db_url],
            capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
    login = {"grafana_role.sql": "stream_mlops_grafana", "app_role.sql": "stream_mlops_app"}
    with psycopg.connect(db_url) as conn:
        groups = conn.execute(
            "SELECT array_agg(g.rolname ORDER BY g.rolname) FROM pg_auth_members m JOIN"
            " pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member"
            " WHERE r.rolname = %s", (login[script],)).fetchone()
        tenants = conn.execute("SELECT array_agg(tenant_id ORDER BY tenant_id) FROM"
                               " mlops.tenant_roles WHERE role_name = %s",
                               (login[script],)).fetchone()
        config = conn.execute("SELECT rolconfig, rolsuper FROM pg_roles WHERE rolname = %s",
                              (login[script],)).fetchone()
    assert groups == ([group],)
    assert tenants == (["default", "tenant-0"],)
    assert config is not None and config[1] is False
    if group == "mlops_reader":
        assert "default_transaction_read_only=on" in config[0]
    with psycopg.connect(db_url, autocommit=True) as conn:  # roles are cluster-wide
        conn.execute(f"DROP OWNED BY {login[script]}")
        conn.execute("DELETE FROM mlops.tenant_roles WHERE role_name = %s", (login[script],))
        conn.execute(f"DROP ROLE {login[script]}")
