"""The whole pager path with real servers: Postgres, processor, simulator (error burst),
Prometheus, Alertmanager and an SMTP server, all on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stream_mlops.deployments import store as deployments
from stream_mlops.deployments.store import DeploymentSpec
from stream_mlops.dev.embedded import free_port
from tests.helpers import ProcessorProcess, http_status, wait_for
from tests.integration.test_alerting import SmtpServer, smtp  # noqa: F401 (fixture)
from tests.integration.test_deployments import send
from tests.integration.test_prometheus import ROOT, Prometheus


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Alertmanager is not installed: run scripts/bootstrap.sh")


class Alertmanager:
    def __init__(self, workdir: Path, smtp_port: int) -> None:
        self.port = free_port()
        text = (ROOT / "alertmanager.yml").read_text()
        for slow, fast in {"127.0.0.1:587": f"127.0.0.1:{smtp_port}",
                           "smtp_require_tls: true": "smtp_require_tls: false",
                           "group_wait: 30s": "group_wait: 1s",
                           "group_interval: 5m": "group_interval: 2s"}.items():
            assert slow in text
            text = text.replace(slow, fast)
        config = workdir / "alertmanager.yml"
        config.write_text(text)
        self.log = open(workdir / "alertmanager.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [alertmanager_binary(), f"--config.file={config}",
             f"--storage.path={workdir / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self.log, stderr=self.log)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def stack(db_url: str, smtp: SmtpServer,  # noqa: F811
          tmp_path: Path) -> Iterator[tuple[ProcessorProcess, SmtpServer]]:
    am = Alertmanager(tmp_path, smtp.port)
    p = ProcessorProcess(db_url, log_path=tmp_path / "processor.log", env={
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port),
        "ALERT_EMAIL": "oncall@example.com", "ALERT_WINDOW_SECONDS": "10"}).start()
    prom = Prometheus(tmp_path, p.port, am.port)
    try:
        p.wait_ready()
        wait_for(lambda: http_status(am.port, "/-/ready")[0] == 200, 30, "alertmanager")
        wait_for(lambda: http_status(prom.port, "/-/ready")[0] == 200, 30, "prometheus")
        yield p, smtp
    finally:
        prom.stop()
        p.stop()
        am.stop()


def test_error_burst_pages_through_alertmanager_and_the_processor_then_resolves(
        stack: tuple[ProcessorProcess, SmtpServer], db_url: str) -> None:
    _, mail = stack
    sim = subprocess.Popen(
        [sys.executable, "-m", "stream_mlops", "simulate", "--rate", "100", "--scenario",
         "error_burst", "--change-after", "4", "--end-after", "24", "--duration", "120",
         "--seed", "5"], env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()

    def processor_notices(kind: str) -> list[str]:
        # Budget alerts fire too (the burst costs dollars): messages may be grouped.
        return [line for m in list(mail.inbox.messages)
                if str(m["Subject"]).strip().startswith("[stream-mlops]")
                for line in str(m.get_payload()).splitlines()
                if line.startswith(f"{kind} (") and "High error rate" in line]

    try:
        wait_for(lambda: bool(processor_notices("FIRING")), 40, "the processor's e-mail")
        processor_s = time.monotonic() - started
        wait_for(lambda: any("[FIRING" in s and "MlopsHighErrorRate" in s
                             for s in mail.inbox.subjects()), 60,
                 "Alertmanager's e-mail for MlopsHighErrorRate")
        alertmanager_s = time.monotonic() - started
        wait_for(lambda: bool(processor_notices("RESOLVED")), 60,
                 "the processor's resolved e-mail")
        wait_for(lambda: any("[RESOLVED" in s and "MlopsHighErrorRate" in s
                             for s in mail.inbox.subjects()), 90,
                 "Alertmanager's resolved e-mail")
    finally:
        sim.terminate()
        sim.wait(20)
    # The burst hits every (tenant, function): one episode each, each e-mailed once when
    # it fired and once when it resolved (some grouped into one e-mail).
    fired = [n.split(") ", 1)[1] for n in processor_notices("FIRING")]
    assert len(fired) == len(set(fired)) >= 1
    with psycopg.connect(db_url) as conn:
        episodes = conn.execute("SELECT count(*) FROM mlops.alerts"
                                " WHERE rule = 'error_rate'").fetchone()
    assert episodes is not None and episodes[0] == len(set(fired))
    assert processor_s < 40 and alertmanager_s < 60


def test_a_rolled_back_deployment_pages_once_through_the_processor_and_alertmanager(
        stack: tuple[ProcessorProcess, SmtpServer], db_url: str) -> None:
    _, mail = stack
    send(db_url, 50, seed=0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        deployments.start(conn, DeploymentSpec("summarize", "v2", steps=(50.0, 100.0),
                                               min_samples=100, step_seconds=0))
    wait_for(lambda: _deployment_status(db_url) == "shifting", 20, "the first step")
    deadline, i = time.monotonic() + 90, 0
    while _deployment_status(db_url) != "rolled_back":  # bad traffic until the gate acts
        assert time.monotonic() < deadline, "no rollback within 90 s"
        i += 1
        send(db_url, 300, seed=i, new_error=0.4)
        time.sleep(0.5)

    def processor_notices() -> list[str]:
        # (A long subject comes folded: "\r\n [stream-mlops] ...".)
        return [line for m in list(mail.inbox.messages)
                if str(m["Subject"]).strip().startswith("[stream-mlops]")
                for line in str(m.get_payload()).splitlines()
                if line.startswith("FIRING (") and "Deployment of summarize v2" in line]

    wait_for(lambda: bool(processor_notices()), 90, "the processor's e-mail")
    wait_for(lambda: any("[FIRING" in s and "MlopsDeploymentRolledBack" in s
                         for s in mail.inbox.subjects()), 90,
             "Alertmanager's e-mail for MlopsDeploymentRolledBack")
    assert len(processor_notices()) == 1
    assert _deployment_status(db_url) == "rolled_back"


def _deployment_status(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status FROM mlops.deployments ORDER BY id DESC LIMIT 1"
                           ).fetchone()
    return str(row[0]) if row else ""
