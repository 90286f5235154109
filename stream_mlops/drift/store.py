"""The user's drift reference decisions (pin, unpin, relearn) and the drift status table."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from stream_mlops.db.queries import q
from stream_mlops.errors import MlopsError


def set_reference(conn: psycopg.Connection[Any], tenant: str, function: str, metric: str,
                  action: str) -> float | None:
    """``pin``, ``unpin`` or ``relearn`` one metric's reference (``*``: every metric) of a
    function that has had requests; returns the relearn time."""
    tenants = _names(conn, "function_tenants", "tenant_id", function=function)
    if tenant not in tenants:
        if tenants:
            raise MlopsError(f"function {function!r} has no requests under tenant {tenant!r}"
                             f" but has under {', '.join(tenants)} (pass --tenant)")
        known = _names(conn, "functions_seen", "function_name", tenant=tenant)
        raise MlopsError(f"no requests from function {function!r} yet"
                         + (f" (tenant {tenant!r} has: {', '.join(known)})" if known else ""))
    args = {"tenant": tenant, "function": function, "metric": metric}
    if action == "relearn":
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(q("relearn_reference"), args).fetchone()
        return None if row is None else float(row["relearn_from"].timestamp())
    conn.execute(q("pin_reference"), args | {"pinned": action == "pin"})
    return None


def _names(conn: psycopg.Connection[Any], query: str, column: str, **params: Any) -> list[str]:
    """Column ``column`` of every row of the named query."""
    with conn.cursor(row_factory=dict_row) as cur:
        return [r[column] for r in cur.execute(q(query), params)]


def drift_status(conn: psycopg.Connection[Any], tenant: str | None = None
                 ) -> list[dict[str, Any]]:
    """Per function and metric: latest evidence, reference decision, open alert.

    Keys: tenant, function, metric, test, p_value, threshold, effect_size, drift_detected,
    tested_at, pinned, relearn_from, alert_open (the query's columns).
    """
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(q("drift_status"), {"tenant": tenant}).fetchall()
