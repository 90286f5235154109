"""Alert changes into mlops.alerts and the e-mail outbox, one transaction per set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from stream_mlops.core.alerts import AlertChange
from stream_mlops.db.queries import q

Conn = psycopg.Connection[tuple[Any, ...]]


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
            kind = c.notify
            if c.action == "fire":
                row = conn.execute(q("fire_alert"), params).fetchone()
                if row is not None and not row[1]:
                    kind = None  # replayed: the episode and its message exist already
            elif c.action == "update":
                row = conn.execute(q("update_alert"), params).fetchone()
                if row is not None and row[1] == "acknowledged" and kind == "still firing":
                    kind = None  # somebody is on it: no reminders
            else:
                row = conn.execute(q("resolve_alert"), params).fetchone()
            if row is not None and kind is not None and notify:
                conn.execute(q("queue_notification"),
                             {"alert_id": row[0], "tenant_id": c.tenant_id, "kind": kind})
                queued += 1
    return queued
