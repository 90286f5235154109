"""``stream-mlops migrate | run | health | status | notify | reset-cursor``: the processor
and its cursor."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
from typing import Any

from stream_mlops import logs
from stream_mlops.cli.common import AddCommand, Conn, column, database, rows, settings
from stream_mlops.db.connect import connect
from stream_mlops.db.migrations import ensure_current
from stream_mlops.errors import DatabaseUnavailable
from stream_mlops.pipeline.repository import Checkpoint, reset_after_restore
from stream_mlops.pipeline.service import Service
from stream_mlops.schema import migrate

# The name `run`'s log lines have always carried (JSON logs show it; filters may match it).
log = logging.getLogger("stream_mlops.cli.main")


def cmd_migrate(args: argparse.Namespace) -> int:
    s = settings(args)
    with connect(s.database_url, timeout=s.connect_timeout_seconds) as conn:
        applied = migrate(conn)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else
                                                     " (schema already up to date)"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    s = settings(args)
    logs.configure(s.log_level, s.log_format)
    try:
        # Fail fast, in one line, on what retrying cannot fix (an unmigrated schema).
        with connect(s.database_url, timeout=s.connect_timeout_seconds) as conn:
            if args.migrate:
                migrate(conn)
            ensure_current(conn)
    except DatabaseUnavailable as exc:
        log.warning("database not reachable yet; will keep retrying", extra={"error": str(exc)})
    service = Service(s)  # binds the metrics port: a clash is reported before any work
    log.info("starting", extra={"database": logs.redact_url(s.database_url),
                                "consumer": s.consumer_name})
    service.install_signal_handlers()
    service.run()
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s):
        pass  # reachable, schema current
    url = f"http://{s.metrics_host}:{s.metrics_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            print(f"healthy: database reachable, schema current, processor ready ({url})")
            return 0 if resp.status == 200 else 1
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode(errors="replace").strip().replace("\n", "; ")
        print(f"unhealthy: {reason}")
        return 1
    except OSError as exc:
        print(f"unhealthy: processor not reachable at {url} ({getattr(exc, 'reason', exc)})")
        return 1


def cmd_status(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s) as conn:
        info = _status(conn, s.consumer_name)
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:24s} {v}")
    return 0


def _status(conn: Conn, consumer: str) -> dict[str, Any]:
    found = rows(conn, "get_checkpoint", Checkpoint, consumer=consumer)
    info: dict[str, Any] = {"consumer": consumer,
                            "firing_alerts": int(column(conn, "firing_alerts", "firing"))}
    now = _database_now(conn)
    if not found:
        info.update(events_processed=0, checkpoint_age_seconds=None, lag_seconds=None,
                    note="the processor has never run for this consumer")
        return info
    cp = found[0]
    pending = _oldest_pending_at(conn, cp)
    info.update(
        events_processed=cp.events_total, rows_quarantined=cp.quarantined_total,
        checkpoint_age_seconds=round(now - cp.updated_at, 3),
        lag_seconds=round(now - pending, 3) if pending is not None else 0.0,
    )
    return info


def _database_now(conn: Conn) -> float:
    return float(column(conn, "database_now", "now"))


def _oldest_pending_at(conn: Conn, cp: Checkpoint) -> float | None:
    """When the oldest row the consumer has not taken yet was created (None: caught up)."""
    at = column(conn, "oldest_pending", "created_at", **cp.cursor.params())
    return None if at is None else float(at)


def cmd_notify(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s, autocommit=True) as conn:
        conn.execute("SELECT mlops.set_notify(%s)", (args.state == "on",))
    print("NOTIFY trigger " + ("enabled" if args.state == "on" else
                               "disabled: the processor now polls every POLL_INTERVAL_SECONDS"))
    return 0


def cmd_reset_cursor(args: argparse.Namespace) -> int:
    s = settings(args)
    if not args.after_restore:
        print("stream-mlops reset-cursor: nothing to do without --after-restore",
              file=sys.stderr)
        return 2
    with database(s) as conn:
        changed = reset_after_restore(conn, s.consumer_name)
    if changed is None:
        print(f"cursor '{s.consumer_name}' already belongs to this cluster: nothing changed")
    else:
        old, new = changed
        print(f"cursor '{s.consumer_name}' moved from cluster {old} to {new};"
              " consumed rows stay consumed, the rest will be processed")
    return 0


def add_commands(add: AddCommand) -> None:
    add("migrate", "apply pending SQL migrations (idempotent)").set_defaults(fn=cmd_migrate)
    _add_run(add)
    _add_health(add)
    _add_status(add)
    notify = add("notify", "switch the NOTIFY trigger on, or off for poll-only mode")
    notify.add_argument("state", choices=["on", "off"])
    notify.set_defaults(fn=cmd_notify)
    reset = add("reset-cursor", "re-base the cursor after a dump/restore into another cluster")
    reset.add_argument("--after-restore", action="store_true",
                       help="rewrite stored transaction ids so they sort correctly here")
    reset.add_argument("--consumer", help="overrides CONSUMER_NAME")
    reset.set_defaults(fn=cmd_reset_cursor)


def _add_run(add: AddCommand) -> None:
    run = add("run", "consume requests and serve /metrics until interrupted")
    run.add_argument("--metrics-host", help="overrides METRICS_HOST (default 127.0.0.1)")
    run.add_argument("--metrics-port", type=int, help="overrides METRICS_PORT (default 9464)")
    run.add_argument("--consumer", help="overrides CONSUMER_NAME (default 'default')")
    run.add_argument("--batch-size", type=int, help="overrides BATCH_SIZE")
    run.add_argument("--poll-interval", type=float, help="overrides POLL_INTERVAL_SECONDS")
    run.add_argument("--migrate", action="store_true", help="apply migrations first")
    run.set_defaults(fn=cmd_run)


def _add_health(add: AddCommand) -> None:
    health = add("health", "exit 0 when the database and the running processor are healthy")
    health.add_argument("--metrics-host", help="where the processor serves (METRICS_HOST)")
    health.add_argument("--metrics-port", type=int, help="its port (METRICS_PORT)")
    health.set_defaults(fn=cmd_health)


def _add_status(add: AddCommand) -> None:
    status = add("status", "events processed, lag, checkpoint age, firing alerts")
    status.add_argument("--consumer", help="overrides CONSUMER_NAME")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(fn=cmd_status)
