"""``stream-mlops drift``: drift status per function and metric; pin, unpin or relearn a
reference."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC
from typing import Any

from stream_mlops.cli.common import AddCommand, Conn, database, nonempty, settings, utc
from stream_mlops.drift.monitor import METRICS
from stream_mlops.drift.store import drift_status, set_reference
from stream_mlops.errors import MlopsError

HEADER = (f"{'tenant/function':30s} {'metric':17s} {'state':6s} {'latest test':20s} "
          f"{'p':10s} {'effect':15s} {'tested (UTC)':20s} reference")


def cmd_drift(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s, autocommit=True) as conn:
        if args.action != "list":
            _set_reference(conn, args)
            return 0
        found = [r for r in drift_status(conn, args.tenant)
                 if args.function in (None, r["function"])]
    if args.json:
        print(json.dumps(found, default=str))
        return 0
    if not found:
        print("no drift evidence yet" + (f" for {args.function}" if args.function else "")
              + " (the processor tests each function every 15 minutes and on every alarm)")
    else:
        print(HEADER)
    for r in found:
        print(_status_line(r))
    return 0


def _set_reference(conn: Conn, args: argparse.Namespace) -> None:
    """``pin``, ``unpin`` or ``relearn`` the reference of one function's metric(s)."""
    if not args.function:
        raise MlopsError(f"drift {args.action} needs the FUNCTION")
    at = set_reference(conn, args.tenant or "default", args.function, args.metric,
                       args.action)
    what = "every metric" if args.metric == "*" else args.metric
    print(f"{args.function} ({what}): " + {
        "pin": "reference pinned: kept after a drift, whose alert stays open while "
               "the data stay away from it",
        "unpin": "reference unpinned: a confirmed drift becomes the new reference",
        "relearn": f"a new reference is learned from the requests after "
                   f"{utc(at or time.time())} UTC; open drift alerts resolve",
    }[args.action] + " (the processor picks it up within 30 s)")


def _status_line(r: dict[str, Any]) -> str:
    """One row of :func:`drift_status` under :data:`HEADER`."""
    reference = "pinned" if r["pinned"] else "learns"
    if r["relearn_from"] is not None:
        reference += f", relearned {r['relearn_from'].astimezone(UTC):%Y-%m-%d %H:%M}"
    p = "-" if r["p_value"] is None else f"{r['p_value']:.2g}"
    effect = "-" if r["effect_size"] is None else f"{r['effect_size']:.3g}"
    return (f"{r['tenant'] + '/' + r['function']:30s} {r['metric']:17s} "
            f"{'DRIFT' if r['alert_open'] else 'ok':6s} {r['test']:20s} p={p:8s} "
            f"effect={effect:8s} {r['tested_at'].astimezone(UTC):%Y-%m-%d %H:%M:%S}  "
            f"({reference})")


def add_commands(add: AddCommand) -> None:
    drift = add("drift", "drift status per function and metric; pin, unpin or relearn a "
                "reference")
    drift.add_argument("action", nargs="?", default="list",
                       choices=["list", "pin", "unpin", "relearn"])
    drift.add_argument("function", nargs="?",
                       help="the function (list: only this one; required otherwise)")
    drift.add_argument("--metric", default="*", choices=["*", *METRICS],
                       help="pin/unpin/relearn: one metric (default: every metric)")
    drift.add_argument("--tenant", type=nonempty,
                       help="tenant (default; list: every tenant)")
    drift.add_argument("--json", action="store_true", help="list: JSON")
    drift.set_defaults(fn=cmd_drift)
