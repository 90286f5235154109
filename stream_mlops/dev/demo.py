"""``stream-mlops demo``: a private Postgres, the processor and simulated traffic, with a
live summary in the terminal until Ctrl-C."""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import class_row, dict_row

from stream_mlops import logs
from stream_mlops.db.queries import q
from stream_mlops.dev import simulator as simulate
from stream_mlops.dev.embedded import EmbeddedPostgres
from stream_mlops.experiments import store as experiments
from stream_mlops.experiments.config import ExperimentError, ExperimentSpec
from stream_mlops.experiments.monitor import ExperimentTracker
from stream_mlops.pipeline.service import Service
from stream_mlops.schema import migrate
from stream_mlops.settings import load_settings
from stream_mlops.telemetry.genai import DURATION_BUCKETS_SECONDS

log = logging.getLogger(__name__)
DEMO_DIR = Path(".stream-mlops") / "demo-postgres"
Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class NewAlert:
    """An alert episode opened since the last look (``alerts_after``)."""

    id: int
    severity: str
    title: str


def p95_seconds(buckets: np.ndarray[Any, Any]) -> float:
    """The 95th percentile from bucket counts, interpolated within its bucket the way
    PromQL's histogram_quantile does (the +Inf bucket reports the last finite bound)."""
    cum = np.cumsum(buckets)
    total = float(cum[-1]) if len(cum) else 0.0
    if total == 0:
        return 0.0
    rank = 0.95 * total
    i = int(np.searchsorted(cum, rank))
    if i >= len(DURATION_BUCKETS_SECONDS):
        return DURATION_BUCKETS_SECONDS[-1]
    lower = DURATION_BUCKETS_SECONDS[i - 1] if i > 0 else 0.0
    below = float(cum[i - 1]) if i > 0 else 0.0
    inside = float(buckets[i])
    return lower + (DURATION_BUCKETS_SECONDS[i] - lower) * (rank - below) / inside


def run_demo(*, database_url: str | None, rate: float, metrics_port: int,
             duration: float | None, data_dir: Path, reset: bool) -> int:
    logs.configure("WARNING", "text")
    if metrics_port:  # first, so it is the line to look for (port 0: known once bound)
        print(f"live page: {live_url(metrics_port)}   (open it in a browser)", flush=True)
    server = None
    if database_url is None:
        if reset and data_dir.exists():
            shutil.rmtree(data_dir)
        server = EmbeddedPostgres(data_dir).start()
        database_url = server.url
        print(f"started a private PostgreSQL in {data_dir} ({database_url})")
    stop = threading.Event()
    sent = [0]
    try:
        with psycopg.connect(database_url) as conn:
            migrate(conn)
            arms = _demo_experiment(conn)
            if server is not None:  # least privilege, as a deployment should run it
                processor_url, app_url = _login_roles(conn, server)
            else:
                processor_url = app_url = database_url
        settings = load_settings(database_url=processor_url, metrics_port=metrics_port,
                                 poll_interval_seconds=0.5, log_level="WARNING",
                                 log_format="text", live_sample_seconds=2.0)
        service = Service(settings)
        threads = [
            threading.Thread(target=service.run, name="processor", daemon=True),
            threading.Thread(target=simulate.run, args=(app_url, rate, stop),
                             kwargs={"counter": sent, "experiment": arms,
                                     "scenario": simulate.Scenario("treatment_better", 0.0)},
                             name="simulator", daemon=True),
        ]
        for t in threads:
            t.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if not metrics_port:
            print(f"live page: {live_url(service.server.port)}", flush=True)
        print(f"metrics: http://127.0.0.1:{service.server.port}/metrics   (Ctrl-C stops)")
        _summarise(service, database_url, stop, duration, sent)
        service.request_stop()
        for t in threads:
            t.join(timeout=10)
    finally:
        stop.set()
        if server is not None:
            server.stop()
            print(f"PostgreSQL stopped; data kept in {data_dir} (--reset starts afresh)")
    return 0


def live_url(port: int) -> str:
    """The built-in live page, refreshing every 5 s (the demo samples every 2 s)."""
    return f"http://127.0.0.1:{port}/?refresh=5"


DEMO_EXPERIMENT = "demo-shorter-prompt"
PROCESSOR_ROLE = "stream_mlops_processor"
APP_ROLE = "stream_mlops_app"
DEMO_TENANTS = ("default", "tenant-0", "tenant-1", "tenant-2")


def _login_roles(conn: Conn, server: EmbeddedPostgres) -> tuple[str, str]:
    """A processor login with mlops_processor only and an application login with
    mlops_writer for the demo's tenants, with the timeouts docs/security.md recommends;
    returns their URLs (created on the first run)."""
    dbname = conn.info.dbname
    for role, group in ((PROCESSOR_ROLE, "mlops_processor"), (APP_ROLE, "mlops_writer")):
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(role), sql.Identifier(group)))
    for setting, value in (("idle_in_transaction_session_timeout", "30s"),
                           ("statement_timeout", "10s")):
        conn.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(
            sql.Identifier(APP_ROLE), sql.Identifier(setting), sql.Literal(value)))
    conn.execute("INSERT INTO mlops.tenant_roles (role_name, tenant_id)"
                 " SELECT %s, t FROM unnest(%s::text[]) t ON CONFLICT DO NOTHING",
                 (APP_ROLE, list(DEMO_TENANTS)))
    conn.commit()
    return server.url_for(dbname, PROCESSOR_ROLE), server.url_for(dbname, APP_ROLE)


def _demo_experiment(conn: psycopg.Connection[Any]) -> simulate.ExperimentArms | None:
    """A running A/B test on `summarize` (created on the first run), so the demo shows an
    always-valid result forming; None if a previous run concluded it."""
    try:
        e = experiments.get(conn, DEMO_EXPERIMENT)
    except ExperimentError:
        experiments.create(conn, ExperimentSpec(
            DEMO_EXPERIMENT, "summarize", primary_metric="error_rate",
            guardrails=("latency",), min_effect=0.02,
            description="the demo's simulated treatment has 1 % errors against 3 %"))
        experiments.set_status(conn, DEMO_EXPERIMENT, "running")
        e = experiments.get(conn, DEMO_EXPERIMENT)
    conn.commit()
    if e.status != "running":
        return None
    return simulate.ExperimentArms(e.id, e.tenant_id, e.function_name, e.seed,
                                   tuple((v.name, v.weight) for v in e.variants))


def _experiment_line(service: Service) -> str:
    with service.status.lock:
        live = [e for e in service.processor.monitor(ExperimentTracker).live.values()
                if e.name == DEMO_EXPERIMENT]
        if not live:
            return ""
        e = live[0]
        s = e.tests[e.primary]["treatment"].summary()
    lift = "-" if s.lift is None else f"{s.lift:+.0%}"
    return (f"          experiment {e.name}: {s.control.n} control / {s.treatment.n} "
            f"treatment requests, errors {lift}, always-valid p {s.p_value:.3f} -> "
            f"{s.decision}")


def _summarise(service: Service, url: str, stop: threading.Event, duration: float | None,
               sent: list[int]) -> None:
    started = time.monotonic()
    prev_events, prev_t = service.status.events_total, started
    with psycopg.connect(url, autocommit=True) as conn:
        last_alert = _column(conn, "last_alert_id", "last_id")  # earlier runs' are old news
        while not stop.wait(2.0):
            now = time.monotonic()
            st = service.status
            rate = (st.events_total - prev_events) / (now - prev_t)
            prev_events, prev_t = st.events_total, now
            print(f"{time.strftime('%H:%M:%S')}  {rate:7.1f} req/s  {_totals_line(service)}  "
                  f"processed {st.events_total}  lag {st.lag_seconds:4.1f} s  "
                  f"alerts firing {_column(conn, 'firing_alerts', 'firing')}", flush=True)
            experiment = _experiment_line(service)
            if experiment:
                print(experiment, flush=True)
            with conn.cursor(row_factory=class_row(NewAlert)) as cur:
                for a in cur.execute(q("alerts_after"), {"after": last_alert}).fetchall():
                    print(f"          new alert #{a.id} ({a.severity}): {a.title}", flush=True)
                    last_alert = a.id
            if duration is not None and now - started >= duration:
                break


def _totals_line(service: Service) -> str:
    """p95 latency, error rate and cost so far, from the processor's running totals."""
    with service.status.lock:
        t = service.processor.totals
        lat = t.latency_buckets.sum(0) if len(t) else np.zeros(1)
        cost = sum(t.cost_pico) / 1e12
        errors, total = int(t.error.sum()), int(t.success.sum() + t.error.sum())
    return (f"p95 {p95_seconds(lat) * 1000:6.0f} ms  "
            f"errors {100 * errors / max(total, 1):4.1f}%  cost ${cost:9.4f}")


def _column(conn: Conn, query: str, name: str) -> Any:
    """Column ``name`` of the named query's one row."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(q(query)).fetchone()
    assert row is not None
    return row[name]

