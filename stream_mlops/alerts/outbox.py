"""Sends queued alert e-mails: reads the outbox (Postgres edge), sends (e-mail edge).

A message is queued in the transaction that changes the alert, so a crash never loses
it; rows are claimed with FOR UPDATE SKIP LOCKED and marked sent in the same transaction
after the SMTP server accepted them. If the process dies between the two, that message
is sent once more on restart (at-least-once: SMTP offers nothing stronger). While the
SMTP server is unreachable, messages are retried with exponential backoff (up to 5 min).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import aiosmtplib
import psycopg
from psycopg.rows import class_row

from stream_mlops.alerts.email import Notice, Smtp, compose, send
from stream_mlops.backoff import Backoff
from stream_mlops.db.connect import connect, first_line
from stream_mlops.db.queries import q
from stream_mlops.errors import DatabaseUnavailable
from stream_mlops.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueNotification:
    """A queued message that is due, with its alert (``claim_notifications``)."""

    id: int
    kind: str  # firing | escalated | still firing | resolved
    attempts: int
    tenant_id: str
    severity: str
    function_name: str | None
    title: str
    message: str
    rule: str | None
    state: str
    first_seen: float

    @property
    def notice(self) -> Notice:
        return Notice(kind=self.kind, tenant_id=self.tenant_id, severity=self.severity,
                      function_name=self.function_name, title=self.title,
                      message=self.message, first_seen=self.first_seen)


def smtp_from_settings(s: Settings) -> Smtp:
    assert s.smtp_host and s.alert_email
    return Smtp(host=s.smtp_host, port=s.smtp_port, sender=s.smtp_from,
                recipients=tuple(a.strip() for a in s.alert_email.split(",") if a.strip()),
                user=s.smtp_user, password=s.smtp_password, timeout=s.smtp_timeout_seconds,
                ca_file=s.smtp_ca_file)


class DeliveryCounts(Protocol):
    """Where the notifier counts its e-mails (the pipeline's status, exported)."""

    emails_sent_total: int
    emails_failed_total: int


class Notifier(threading.Thread):
    def __init__(self, settings: Settings, stop: threading.Event, status: DeliveryCounts,
                 poll_seconds: float = 1.0) -> None:
        super().__init__(name="stream-mlops-notifier", daemon=True)
        self.url = settings.database_url
        self.connect_timeout = settings.connect_timeout_seconds
        self.smtp = smtp_from_settings(settings)
        self.stop, self.poll_seconds = stop, poll_seconds
        self.status = status

    def run(self) -> None:
        backoff = Backoff(base=0.5, cap=30)
        conn: psycopg.Connection[tuple[Any, ...]] | None = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect(self.url, timeout=self.connect_timeout,
                                   application_name="stream-mlops notifier")
                while self.send_due(conn):
                    pass
                backoff.reset()
                self.stop.wait(self.poll_seconds)
            except (DatabaseUnavailable, psycopg.Error) as exc:
                log.warning("notifier: database error; retrying", extra={"error": str(exc)})
                if conn is not None:
                    conn.close()
                conn = None
                self.stop.wait(backoff.next())
        if conn is not None:
            conn.close()

    def send_due(self, conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
        """Send every due message as one e-mail; True if something was due."""
        with conn.transaction():
            with conn.cursor(row_factory=class_row(DueNotification)) as cur:
                due = cur.execute(q("claim_notifications")).fetchall()
            if not due:
                return False
            ids = [n.id for n in due]
            notices = [n.notice for n in due]
            try:
                asyncio.run(send(compose(notices, self.smtp), self.smtp))
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                self.status.emails_failed_total += 1
                conn.execute(q("mark_failed"), {"ids": ids, "error": first_line(exc)})
                log.warning("alert e-mail not sent; will retry",
                            extra={"messages": len(ids), "error": first_line(exc)})
                return False
            conn.execute(q("mark_sent"), {"ids": ids})
        self.status.emails_sent_total += 1
        log.info("alert e-mail sent", extra={"notices": len(ids),
                                             "to": ", ".join(self.smtp.recipients)})
        return True
