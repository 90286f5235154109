"""Alert changes into mlops.alerts and the e-mail outbox, one transaction per set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from stream_mlops.core.alerts import AlertChange
from stream_mlops.db.queries import q

Conn = psycopg.Connection[tuple[Any, ...]]
QUERIES = {"fire": "fire_alert", "update": "update_alert", "resolve": "resolve_alert"}


@dataclass(frozen=True)
class WrittenAlert:
    """The episode an alert change wrote (``fire_alert``, ``update_alert``, ``resolve_alert``;
    each returns the columns it knows)."""

    id: int
    created: bool | None = None  # fire_alert: False when it only refreshed an open episode
    state: str | None = None  # update_alert: the episode's state (acknowledged or not)


def write_changes(conn: Conn, changes: Sequence[AlertChange], *, notify: bool) -> int:
    """Apply alert changes; queue a message for those that warrant one (when ``notify``).

    Idempotent under replay: a "fire" for an episode that is already open only refreshes
    it (and queues nothing), a "resolve" of a closed episode matches no row.
    Returns the number of messages queued.
    """
    queued = 0
    with conn.transaction():
        for c in changes:
            params = {"tenant_id": c.tenant_id, "function_name": c.function_name,
                      "fingerprint": c.fingerprint, "rule": c.rule, "severity": c.severity,
                      "title": c.title, "message": c.message, "details": Jsonb(dict(c.details)),
                      "value": c.value, "threshold": c.threshold,
                      "notify": c.notify is not None, "alert_type": c.alert_type}
            with conn.cursor(row_factory=class_row(WrittenAlert)) as cur:
                row = cur.execute(q(QUERIES[c.action]), params).fetchone()
            if row is None:
                continue  # nothing open to update or resolve
            kind = c.notify
            if c.action == "fire" and not row.created:
                kind = None  # replayed: the episode and its message exist already
            elif c.action == "update" and row.state == "acknowledged" and kind == "still firing":
                kind = None  # somebody is on it: no reminders
            if kind is not None and notify:
                conn.execute(q("queue_notification"),
                             {"alert_id": row.id, "tenant_id": c.tenant_id, "kind": kind})
                queued += 1
    return queued
