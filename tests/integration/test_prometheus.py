"""The real Prometheus scrapes /metrics, and every dashboard query runs against it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_mlops.dev.embedded import free_port
from stream_mlops.experiments import store as experiments
from stream_mlops.experiments.config import ExperimentSpec
from tests.helpers import ProcessorProcess, db_totals, insert_requests, scrape, wait_for

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap.sh (Debian 'prometheus')")
    return path


# Rule windows and `for:` durations shrunk so a test can watch alerts fire and resolve.
FAST_RULES = {"[5m]": "[15s]", "[15m]": "[15s]", "[1h]": "[15s]", "for: 5m": "for: 3s",
              "for: 15m": "for: 3s", "for: 1m": "for: 3s"}


class Prometheus:
    """The real Prometheus with the project's prometheus.yml and alert_rules.yml, scraping
    every second and sending alerts to ``alertmanager_port``."""

    def __init__(self, workdir: Path, target_port: int, alertmanager_port: int = 9) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        text = (ROOT / "prometheus.yml").read_text()
        text = text.replace("scrape_interval: 15s", "scrape_interval: 1s")
        text = text.replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        text = text.replace("127.0.0.1:9464", f"127.0.0.1:{target_port}")
        text = text.replace("127.0.0.1:9093", f"127.0.0.1:{alertmanager_port}")
        config.write_text(text)
        rules = (ROOT / "alert_rules.yml").read_text()
        for slow, fast in FAST_RULES.items():
            rules = rules.replace(slow, fast)
        (workdir / "alert_rules.yml").write_text(rules)
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log)

    def query(self, expr: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                doc: dict[str, Any] = json.load(r)
        except urllib.error.HTTPError as e:
            doc = json.load(e)
        return doc

    def value(self, expr: str) -> float:
        res = self.query(expr)["data"]["result"]
        return float(res[0]["value"][1]) if res else float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[tuple[ProcessorProcess, Prometheus]]:
    insert_requests(db_url, 0, 300, per_tx=30)
    with psycopg.connect(db_url, autocommit=True) as conn:  # so experiment metrics exist
        eid = experiments.create(conn, ExperimentSpec("dash", "fn-0"))
        experiments.set_status(conn, "dash", "running")
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, variant,"
                     " experiment_id, latency_ms) SELECT 'fn-0', 'gpt-4o', CASE WHEN g %% 2 = 0"
                     " THEN 'control' ELSE 'treatment' END, %s, 100 + g FROM"
                     " generate_series(1, 40) g", (eid,))
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
    prom = Prometheus(tmp_path, p.port)
    try:
        p.wait_ready()
        yield p, prom
    finally:
        prom.stop()
        p.stop()


@pytest.mark.parametrize("args", [
    ("promtool", "check", "config", "prometheus.yml"),
    ("promtool", "check", "rules", "alert_rules.yml"),
    ("promtool", "test", "rules", "tests/prometheus/alert_rules_test.yml"),
    ("amtool", "check-config", "alertmanager.yml"),
])
def test_config_files_pass_their_checkers(args: tuple[str, ...]) -> None:
    out = subprocess.run([tool(args[0]), *args[1:]], capture_output=True, text=True,
                         check=False, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_prometheus_scrapes_totals_equal_to_the_database(
        stack: tuple[ProcessorProcess, Prometheus], db_url: str) -> None:
    _p, prom = stack
    count, cost = db_totals(db_url)
    wait_for(lambda: prom.value('up{job="stream-mlops"}') == 1, 30, "first scrape")
    wait_for(lambda: prom.value("sum(mlops_requests_total)") == count, 30, "totals")
    assert prom.value("sum(mlops_cost_usd_total)") == pytest.approx(float(cost), rel=1e-9)
    assert prom.value("sum(mlops_request_duration_seconds_count)") == count
    assert prom.value("sum(gen_ai_client_operation_duration_seconds_count)") == count
    assert prom.value("max(mlops_processor_events_total)") == count


def declared(port: int) -> set[str]:
    """Metric families /metrics declares, with or without samples right now (a baseline
    is absent until there is history)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {f.name + ("_total" if f.type == "counter" else "")
            for f in text_string_to_metric_families(text)}


def test_every_dashboard_query_is_valid_and_uses_exported_metrics(
        stack: tuple[ProcessorProcess, Prometheus], db_url: str) -> None:
    p, prom = stack
    # Series of rows not consumed yet are not exported yet: wait for all of them.
    count, _ = db_totals(db_url)
    p.wait_consumed(count)
    exported = {name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
                for name in scrape(p.port)} | set(scrape(p.port)) | declared(p.port)
    from stream_mlops.dev.dashboards import allowed_empty
    from tests.integration.test_dashboards import all_queries, promql

    # Metrics that may be absent (features not exported here yet, history not built):
    # tests/integration/test_dashboards.py checks what they return.
    pending = set(re.findall(r"\b(mlops_[a-z_]+)", " ".join(allowed_empty())))
    exprs = [promql(q.text) for q in all_queries("expr")
             if re.search(r"\bmlops_", q.text)
             and not pending & set(re.findall(r"\b(mlops_[a-z_]+)", q.text))]
    assert len(exprs) >= 40
    wait_for(lambda: prom.value("count(up)") == 1, 30, "first scrape")
    for expr in exprs:
        names = set(re.findall(r"\b(mlops_[a-z_]+|gen_ai_[a-z_]+)", expr))
        assert names, expr
        assert names <= exported, f"{expr}: {names - exported} not exported"
        doc = prom.query(expr)
        assert doc["status"] == "success", (expr, doc)


def test_a_functions_own_threshold_moves_prometheus_alerts_too(db_url: str,
                                                                tmp_path: Path) -> None:
    """3 % errors on two functions: 'strict' has its own 1 % threshold in mlops.thresholds,
    'loose' the default 5 %. The real Prometheus, with alert_rules.yml, pages on 'strict'
    only, because the rules compare against the processor's mlops_alert_threshold."""
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO mlops.thresholds (tenant_id, function_name, metric, value)"
                     " VALUES ('default', 'strict', 'error_rate', 0.01)")
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log").start()
    prom = Prometheus(tmp_path, p.port)
    stop = threading.Event()

    def traffic() -> None:  # 100 requests/s per function, 3 of them errors
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.wait(1.0):
                conn.execute(
                    "INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
                    " status) SELECT f, 'gpt-4o-mini', 200, CASE WHEN g <= 3 THEN 'error'"
                    " ELSE 'success' END FROM unnest(ARRAY['strict', 'loose']) f,"
                    " generate_series(1, 100) g")

    writer = threading.Thread(target=traffic)
    try:
        p.wait_ready()
        writer.start()
        firing = 'ALERTS{alertname="MlopsHighErrorRate",alertstate="firing"}'
        wait_for(lambda: prom.value(f'count({firing[:-1]},function="strict"}})') == 1, 60,
                 "MlopsHighErrorRate for 'strict'")
        # 'loose' has had the same traffic for as long: its series exist, it does not fire.
        assert prom.value('function:mlops_errors:ratio_rate5m{function="loose"}') \
            == pytest.approx(0.03)
        loose = 'ALERTS{alertname="MlopsHighErrorRate",function="loose"}'  # nor pending
        assert prom.query(loose)["data"]["result"] == []
        assert prom.value('function:mlops_alert_threshold:error_rate{function="strict"}') \
            == 0.01
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
        prom.stop()
        p.stop()
