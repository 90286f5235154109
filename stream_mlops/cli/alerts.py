"""``stream-mlops alerts``: list open alerts; acknowledge or resolve one."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream_mlops.cli.common import AddCommand, Conn, column, database, number, rows, settings
from stream_mlops.labels import printable


@dataclass(frozen=True)
class AlertRow:
    """One alert episode as the command lists it (``list_alerts``)."""

    id: int
    state: str
    severity: str
    tenant_id: str
    function_name: str | None
    rule: str | None
    title: str
    message: str
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        # The keys `alerts --json` has always printed (tenant and function, not the columns).
        return {"id": self.id, "state": self.state, "severity": self.severity,
                "tenant": self.tenant_id, "function": self.function_name, "rule": self.rule,
                "title": self.title, "message": self.message, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "resolved_at": self.resolved_at}


def cmd_alerts(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s, autocommit=True) as conn:
        if args.action in ("ack", "resolve"):
            return _change(conn, args.action, args.id)
        listed = rows(conn, "list_alerts", AlertRow, all=args.all, limit=args.limit)
    if args.json:
        print(json.dumps([a.as_json() for a in listed], default=str))
        return 0
    if not listed:
        print("no open alerts" if not args.all else "no alerts")
    for a in listed:
        # Titles and messages carry names and error types from tenants' rows.
        print(f"#{a.id:<5} {a.state:<12} {a.severity:<8} "
              f"{printable(a.tenant_id)}/{printable(a.function_name or '-')}"
              f"  {printable(a.title)}\n       {printable(a.message)}\n"
              f"       since {a.first_seen:%Y-%m-%d %H:%M:%S %Z}")
    return 0


def _change(conn: Conn, action: str, alert_id: int | None) -> int:
    """Acknowledge (``ack``) or resolve one alert."""
    if alert_id is None:
        print(f"stream-mlops alerts {action}: give the alert id (see "
              "`stream-mlops alerts`)", file=sys.stderr)
        return 2
    query = "acknowledge_alert" if action == "ack" else "close_alert"
    if column(conn, query, "id", id=alert_id) is None:
        state = column(conn, "alert_state", "state", id=alert_id)
        print(f"alert {alert_id} is already {state}" if state is not None else
              f"no alert with id {alert_id} (see `stream-mlops alerts --all`)",
              file=sys.stderr)
        return 1
    print(f"alert {alert_id} " + ("acknowledged: no reminders until it resolves"
                                  if action == "ack" else "resolved"))
    return 0


def add_commands(add: AddCommand) -> None:
    al = add("alerts", "list open alerts; acknowledge or resolve one")
    al.add_argument("action", nargs="?", default="list", choices=["list", "ack", "resolve"])
    al.add_argument("id", nargs="?", type=int, help="alert id (for ack and resolve)")
    al.add_argument("--all", action="store_true", help="include resolved alerts")
    al.add_argument("--limit", type=number(int, 1, 100_000), default=50)
    al.add_argument("--json", action="store_true", help="print JSON")
    al.set_defaults(fn=cmd_alerts)
