"""Performance alerts end to end in the processor: episode rows, e-mail through a real
SMTP server (aiosmtpd), retries while it is down, no duplicates after a restart."""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from stream_mlops.dev.embedded import free_port
from tests.helpers import ProcessorProcess, metric_sum, scrape, wait_for


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            # As a mail client reads it: a long subject is folded on the wire (Python's
            # email package folds before its first word; subjects() strips the space).
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]).strip() for m in self.messages]


class SmtpServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None
        self.tls = tls

    def start(self) -> None:
        extra: dict[str, Any] = {"tls_context": self.tls, "require_starttls": True} \
            if self.tls else {}
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **extra)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def insert(url: str, n: int, *, errors: int, function: str = "summarize",
           confidence: float = 0.9) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO mlops.model_performance (function_name, model, latency_ms, status,"
            " confidence) SELECT %s, 'gpt-4o-mini', 300,"
            " CASE WHEN g <= %s THEN 'error' ELSE 'success' END, %s"
            " FROM generate_series(1, %s) g", (function, errors, confidence, n))


def alerts(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT rule, state, severity, message FROM mlops.alerts"
                            " ORDER BY id").fetchall()


def queued(url: str) -> int:
    """E-mail notifications ever queued (sent or not): the source of every message."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM mlops.alert_outbox").fetchone()
    assert row is not None
    return int(row[0])


def outbox(url: str) -> tuple[int, Any, str | None]:
    """(attempts, sent_at, last_error) of the first queued notification."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT attempts, sent_at, last_error FROM mlops.alert_outbox"
                           " ORDER BY id LIMIT 1").fetchone()
    return (0, None, None) if row is None else (int(row[0]), row[1], row[2])


def processor(url: str, smtp: SmtpServer, tmp: Path, name: str,
              window_seconds: int = 10) -> ProcessorProcess:
    return ProcessorProcess(url, log_path=tmp / f"{name}.log", env={
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "ALERT_EMAIL": "oncall@example.com",
        "ALERT_WINDOW_SECONDS": str(window_seconds), "ALERT_MIN_REQUESTS": "50"}).start()


def test_error_burst_fires_once_emails_and_resolves(db_url: str, smtp: SmtpServer,
                                                    tmp_path: Path) -> None:
    p = processor(db_url, smtp, tmp_path, "p1")
    try:
        p.wait_ready()
        insert(db_url, 400, errors=8)  # 2 %: no alert
        p.wait_consumed(400)
        assert alerts(db_url) == []
        for _ in range(3):  # a burst: 30 % errors, in several batches
            insert(db_url, 200, errors=60)
        wait_for(lambda: any(a[0] == "error_rate" for a in alerts(db_url)), 15, "alert row")
        wait_for(lambda: len(smtp.inbox.subjects()) >= 1, 15, "the e-mail")
        rows = alerts(db_url)
        assert [(r[0], r[1], r[2]) for r in rows] == [("error_rate", "firing", "critical")]
        assert "Error rate" in rows[0][3] and "is above 5.0%" in rows[0][3]
        subject = smtp.inbox.subjects()[0]
        assert subject == "[stream-mlops] FIRING critical: High error rate in summarize"
        body = smtp.inbox.messages[0].get_payload()
        assert isinstance(body, str) and "tenant: default" in body
        assert metric_sum(scrape(p.port), "mlops_alert_active", rule="error_rate") == 1
        insert(db_url, 200, errors=60)  # still firing: same episode, no new e-mail
        p.wait_consumed(1200)
        assert len(alerts(db_url)) == 1 and queued(db_url) == 1
        assert len(smtp.inbox.subjects()) == 1
        # The burst leaves the 10 s window: resolved, with one more e-mail.
        wait_for(lambda: alerts(db_url)[0][1] == "resolved", 30, "resolution")
        wait_for(lambda: len(smtp.inbox.subjects()) == 2, 15, "resolved e-mail")
        assert smtp.inbox.subjects()[1].startswith("[stream-mlops] RESOLVED: High error rate")
        assert metric_sum(scrape(p.port), "mlops_alert_active") == 0
    finally:
        assert p.stop() == 0


def test_smtp_down_then_up_delivers_once_and_restart_does_not_resend(
        db_url: str, smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.stop()
    # A window longer than the test: the episode must outlive the restart however slowly
    # this machine runs (with 10 s it could empty and rightly resolve in between).
    p = processor(db_url, smtp, tmp_path, "p1", window_seconds=120)
    try:
        p.wait_ready()
        insert(db_url, 300, errors=90)
        wait_for(lambda: len(alerts(db_url)) == 1, 15, "alert row")
        wait_for(lambda: outbox(db_url)[0] >= 1, 15, "a failed attempt")
        attempts, sent_at, last_error = outbox(db_url)
        assert attempts >= 1 and sent_at is None and last_error
        assert metric_sum(scrape(p.port), "mlops_alert_emails_failed_total") >= 1
        smtp.start()
        wait_for(lambda: len(smtp.inbox.subjects()) == 1, 30, "delivery after retry")
        wait_for(lambda: metric_sum(scrape(p.port), "mlops_alert_emails_sent_total") == 1, 10,
                 "the sent counter")
    finally:
        assert p.stop() == 0
    p2 = processor(db_url, smtp, tmp_path, "p2", window_seconds=120)
    try:
        p2.wait_ready()
        insert(db_url, 100, errors=30)  # still firing after the restart
        p2.wait_consumed(400)
        assert len(alerts(db_url)) == 1  # the same episode
        assert queued(db_url) == 1  # and no second "firing" e-mail
        assert len(smtp.inbox.subjects()) == 1
    finally:
        assert p2.stop() == 0


def test_low_confidence_and_per_function_threshold(db_url: str, smtp: SmtpServer,
                                                   tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO mlops.thresholds (tenant_id, function_name, metric, value)"
                     " VALUES ('default', 'lenient', 'error_rate', 0.5)")
    p = processor(db_url, smtp, tmp_path, "p1")
    try:
        p.wait_ready()
        insert(db_url, 300, errors=90, function="lenient")  # 30 % < its own 50 % limit
        insert(db_url, 300, errors=0, function="unsure", confidence=0.4)
        wait_for(lambda: len(alerts(db_url)) >= 1, 15, "alert")
        p.wait_consumed(600)
        rows = alerts(db_url)
        assert [(r[0], r[1]) for r in rows] == [("confidence_mean", "firing")]
        assert "Mean confidence 0.400" in rows[0][3]
        # Prometheus's rules read the same thresholds (alert_rules.yml).
        samples = scrape(p.port)
        limit = {(labels["function"], labels["rule"]): v
                 for labels, v in samples["mlops_alert_threshold"]}
        assert limit == {("lenient", "error_rate"): 0.5, ("lenient", "latency_p95"): 5.0,
                         ("lenient", "confidence_mean"): 0.7,
                         ("unsure", "error_rate"): 0.05, ("unsure", "latency_p95"): 5.0,
                         ("unsure", "confidence_mean"): 0.7}
    finally:
        assert p.stop() == 0


def test_alerts_cli_lists_acknowledges_and_resolves(db_url: str) -> None:
    import json

    from tests.integration.test_cli import cli
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "INSERT INTO mlops.alerts (alert_type, severity, function_name, fingerprint,"
            " title, message, rule) VALUES ('performance', 'warning', 'summarize', 'fp',"
            " 'High error rate in summarize', 'Error rate 9.0% ...', 'error_rate')"
            " RETURNING id").fetchone()
    assert row is not None
    env = {"DATABASE_URL": db_url}
    listed = cli("alerts", env=env)
    assert listed.returncode == 0 and "High error rate in summarize" in listed.stdout
    assert cli("alerts", "ack", str(row[0]), env=env).returncode == 0
    assert json.loads(cli("alerts", "--json", env=env).stdout)[0]["state"] == "acknowledged"
    assert cli("alerts", "ack", str(row[0]), env=env).returncode == 1  # not firing any more
    assert cli("alerts", "resolve", str(row[0]), env=env).returncode == 0
    assert cli("alerts", env=env).stdout.strip() == "no open alerts"
    assert json.loads(cli("alerts", "--all", "--json", env=env).stdout)[0]["state"] == \
        "resolved"


def test_starttls_is_used_when_the_server_offers_it(db_url: str, tmp_path: Path) -> None:
    """The relay refuses mail without STARTTLS; its self-signed certificate is trusted
    through SMTP_CA_FILE (and checked: it names 127.0.0.1)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = SmtpServer(tls=ctx)
    server.start()
    p = ProcessorProcess(db_url, log_path=tmp_path / "p.log", env={
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port),
        "ALERT_EMAIL": "oncall@example.com", "SMTP_CA_FILE": str(cert),
        "ALERT_WINDOW_SECONDS": "10"}).start()
    try:
        p.wait_ready()
        insert(db_url, 300, errors=90)
        wait_for(lambda: len(server.inbox.subjects()) == 1, 20, "an e-mail over STARTTLS")
        assert "High error rate" in server.inbox.subjects()[0]
    finally:
        p.stop()
        server.stop()
