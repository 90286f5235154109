"""``stream-mlops features list|define|get|put|stats``: the feature store from a shell."""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stream_mlops.cli.common import AddCommand, database, nonempty, rows, settings
from stream_mlops.errors import MlopsError
from stream_mlops.features.store import VALUE_TYPES, FeatureStore, dumps

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class StatsReportRow:
    """A line of ``stream-mlops features stats`` (``feature_stats_report``)."""

    tenant_id: str
    entity_type: str
    name: str
    value_type: str
    ttl_seconds: float | None
    writes_total: int
    reads_total: int
    missing_total: int
    last_event_time: datetime | None
    last_write_at: datetime | None
    usual_interval_seconds: float | None
    open_alerts: list[str]


def duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d``."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration such as 90s, "
                                         "15m, 2h or 7d")
    return timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])


def timestamp(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as "
                                         "2026-01-31T12:00:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def assignment(text: str) -> tuple[str, Any]:
    """``name=value``: the value as JSON when it parses (3.5, true, [1, 2]), else a string."""
    name, eq, raw = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def _store(args: argparse.Namespace) -> FeatureStore:
    return FeatureStore(settings(args).database_url, tenant_id=args.tenant)


def cmd_features(args: argparse.Namespace) -> int:
    return int({"list": _list, "define": _define, "get": _get, "put": _put,
                "stats": _stats}[args.action](args))


def _list(args: argparse.Namespace) -> int:
    with _store(args) as fs:
        defs = fs.definitions(args.entity_type)
    if args.json:
        print(dumps([asdict(d) for d in defs]))
        return 0
    if not defs:
        print("no features defined (stream-mlops features define NAME ENTITY_TYPE TYPE)")
    for d in defs:
        ttl = "no ttl" if d.ttl_seconds is None else f"ttl {d.ttl_seconds:g} s"
        kind = d.value_type + (f"[{d.vector_length}]" if d.vector_length else "")
        print(f"{d.entity_type}.{d.name:30s} {kind:16s} {ttl:16s} {d.owner:16s} "
              f"{d.description}")
    return 0


def _define(args: argparse.Namespace) -> int:
    if not args.name or not args.entity_type or len(args.value_type_or_ids) != 1:
        raise MlopsError("features define needs NAME ENTITY_TYPE TYPE")
    (value_type,) = args.value_type_or_ids
    with _store(args) as fs:
        fs.define(args.name, args.entity_type, value_type, ttl=args.ttl,
                  description=args.description or "", vector_length=args.vector_length)
    print(f"feature {args.entity_type}.{args.name} ({value_type}) defined")
    return 0


def _get(args: argparse.Namespace) -> int:
    if not args.name or not args.entity_type or not args.features:
        raise MlopsError("features get needs ENTITY_TYPE ENTITY_ID... --features NAME,...")
    entity_type, ids = args.name, [args.entity_type, *args.value_type_or_ids]
    names = [n for n in args.features.split(",") if n]
    with _store(args) as fs:
        if args.at is None:
            online = fs.get_online(entity_type, ids, names)
            out: Any = [{"entity_id": e, **online[e]} for e in ids]
        else:
            out = fs.get_historical(entity_type, [(e, args.at) for e in ids], names)
    for row in out:
        print(dumps(row))
    return 0


def _put(args: argparse.Namespace) -> int:
    if not args.name or not args.entity_type or not args.value_type_or_ids:
        raise MlopsError("features put needs ENTITY_TYPE ENTITY_ID NAME=VALUE...")
    values = dict(assignment(a) for a in args.value_type_or_ids)
    with _store(args) as fs:
        r = fs.put(args.name, args.entity_type, values, event_time=args.event_time)
    print(f"{r.written} value(s) written" + (f", {r.quarantined} quarantined (event time too "
                                             "far in the future)" if r.quarantined else ""))
    return 0


def _stats(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s, autocommit=True) as conn:
        found = rows(conn, "feature_stats_report", StatsReportRow,
                     consumer=s.consumer_name, tenant_id=args.tenant)
    if args.json:
        print(dumps([asdict(r) for r in found]))
        return 0
    if not found:
        print("no features defined")
    now = time.time()
    for r in found:
        fresh = "-" if r.last_event_time is None else \
            f"{now - r.last_event_time.timestamp():.0f} s"
        usual = "-" if r.usual_interval_seconds is None else f"{r.usual_interval_seconds:.3g} s"
        missing = "-" if not r.reads_total else f"{r.missing_total / r.reads_total:.1%}"
        state = ",".join(r.open_alerts).upper() or "ok"
        print(f"{r.tenant_id}/{r.entity_type}.{r.name:24s} writes={r.writes_total:<10d} "
              f"freshness={fresh:10s} every={usual:9s} missing={missing:7s} {state}")
    return 0


def add_commands(add: AddCommand) -> None:
    p = add("features", "the feature store: list, define, get (online or as of a time), "
            "put, stats (freshness, writes, missing, alerts)")
    p.add_argument("action", choices=["list", "define", "get", "put", "stats"])
    p.add_argument("name", nargs="?", metavar="NAME|ENTITY_TYPE",
                   help="define: the feature's name; get/put: the entity type")
    p.add_argument("entity_type", nargs="?", metavar="ENTITY_TYPE|ENTITY_ID",
                   help="define: the entity type; get/put: an entity id")
    p.add_argument("value_type_or_ids", nargs="*", metavar="TYPE|ENTITY_ID|NAME=VALUE",
                   help=f"define: the type ({', '.join(VALUE_TYPES)}); get: more entity ids; "
                        "put: NAME=VALUE (JSON values: 3.5, true, [1, 2]; else a string)")
    p.add_argument("--tenant", type=nonempty, help="default: your only tenant, else default")
    p.add_argument("--entity-type", help="list: only this entity type")
    p.add_argument("--ttl", type=duration, help="define: values expire after this (90s, "
                                                "15m, 2h, 7d); default never")
    p.add_argument("--description", help="define: what the feature is")
    p.add_argument("--vector-length", type=int, help="define: float_list length")
    p.add_argument("--features", help="get: NAME,NAME,...")
    p.add_argument("--at", type=timestamp, help="get: values as of this time (point in "
                                                "time); default: now, online")
    p.add_argument("--event-time", type=timestamp, help="put: the values' time; default now")
    p.add_argument("--json", action="store_true", help="list/stats: JSON")
    p.set_defaults(fn=cmd_features)
