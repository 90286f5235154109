"""`stream-mlops demo` and `stream-mlops simulate` as a newcomer runs them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stream_mlops.dev.embedded import free_port
from stream_mlops.dev.simulator import FUNCTIONS
from tests.helpers import metric_sum, scrape, wait_for


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="stream-mlops-demo-"))  # reachable by postgres
    yield base / "pg"
    shutil.rmtree(base, ignore_errors=True)


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.Popen([sys.executable, "-m", "stream_mlops", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**base, **(env or {})})


def test_demo_on_an_embedded_postgres(demo_dir: Path) -> None:
    port = free_port()
    demo = start("demo", "--duration", "8", "--rate", "100", "--metrics-port", str(port),
                 "--data-dir", str(demo_dir), env={"DAILY_COST_THRESHOLD": "0.001"})
    try:
        wait_for(lambda: metric_sum(scrape(port), "mlops_requests_total") > 100, 40,
                 "requests on /metrics")
        m = scrape(port)
        assert metric_sum(m, "mlops_cost_usd_total") > 0
        assert metric_sum(m, "mlops_processor_listening") == 1
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, err
    assert "Traceback" not in err
    lines = out.splitlines()
    # The first line is the page to open.
    assert lines[0].startswith(f"live page: http://127.0.0.1:{port}/?refresh=5")
    assert lines[1].startswith(f"started a private PostgreSQL in {demo_dir}")
    assert sum("req/s" in line and "p95" in line for line in lines) >= 2
    # The demo's A/B test is followed live from the start.
    assert any(line.strip().startswith("experiment demo-shorter-prompt: ") and
               "always-valid p" in line for line in lines)
    # Alerts are printed as they open: a tiny budget is soon spent (once per tenant and
    # level; unit tests pin which levels a jump skips).
    opened = [line.strip().split(": ", 1)[1] for line in lines
              if line.strip().startswith("new alert #")]
    budget = [title for title in opened if title.startswith("Daily budget")]
    assert any(t.startswith("Daily budget 100% used (tenant ") for t in budget), opened
    assert len(budget) == len(set(budget)), opened
    assert "data kept in" in lines[-1]
    # The data directory survives for the next run; the server is stopped.
    assert (demo_dir / "PG_VERSION").exists()
    assert not (demo_dir / "postmaster.pid").exists()


def test_demo_uses_database_url_when_set(db_url: str) -> None:
    port = free_port()
    demo = start("demo", "--duration", "4", "--rate", "50", "--metrics-port", str(port),
                 env={"DATABASE_URL": db_url})
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, err
    assert "private PostgreSQL" not in out
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM mlops.model_performance").fetchone()
        models = conn.execute("SELECT model, count(*) FILTER (WHERE cost_source = 'unpriced'"
                              " OR cost_usd IS NULL) FROM mlops.model_performance"
                              " GROUP BY 1 ORDER BY 1").fetchall()
    assert row is not None and row[0] >= 100
    # Dated model names, as the APIs answer, and every request priced.
    assert {m for m, _ in models} <= {f[1] for f in FUNCTIONS} and len(models) >= 3
    assert all(re.search(r"-(\d{8}|\d{4}-\d{2}-\d{2}|\d{3})$", m) for m, _ in models), models
    assert [n for _, n in models] == [0] * len(models)


def test_simulate_writes_the_scenario(db_url: str) -> None:
    sim = start("simulate", "--rate", "400", "--duration", "3", "--scenario", "error_burst",
                "--change-after", "1.5", "--seed", "4", env={"DATABASE_URL": db_url})
    out, err = sim.communicate(timeout=60)
    assert sim.returncode == 0, err
    assert "scenario 'error_burst' (error rate 2 % -> 20 %)" in out
    sent = int(out.strip().splitlines()[-1].split()[1])
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT count(*), avg((status = 'error')::int) FILTER (WHERE created_at >"
            " (SELECT min(created_at) + interval '1.6 s' FROM mlops.model_performance))"
            " FROM mlops.model_performance").fetchone()
    assert rows is not None
    assert rows[0] == sent and sent >= 1000
    assert rows[1] > 0.12  # the burst is in the data
