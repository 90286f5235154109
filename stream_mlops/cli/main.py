"""Command line: ``stream-mlops migrate | run | health | status | notify``."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from stream_mlops import logs
from stream_mlops.costs.price_store import import_prices, load_price_map, price_versions, recompute
from stream_mlops.costs.report import analyze, recommend, render, render_report
from stream_mlops.db.connect import connect, first_line
from stream_mlops.db.migrations import ensure_current, migrate
from stream_mlops.db.queries import q
from stream_mlops.dev import simulator as simulate
from stream_mlops.dev.demo import DEMO_DIR, run_demo
from stream_mlops.dev.simulator import SCENARIOS, Scenario
from stream_mlops.drift.monitor import METRICS
from stream_mlops.drift.store import drift_status, set_reference
from stream_mlops.errors import DatabaseUnavailable, MlopsError
from stream_mlops.experiments import store as experiments
from stream_mlops.experiments.config import ExperimentSpec, parse_variants
from stream_mlops.experiments.report import render_experiment
from stream_mlops.pipeline.repository import reset_after_restore
from stream_mlops.pipeline.service import Service
from stream_mlops.settings import Settings, load_settings

log = logging.getLogger("stream_mlops.cli.main")
Conn = psycopg.Connection[tuple[Any, ...]]


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        database_url=getattr(args, "database_url", None),
        metrics_host=getattr(args, "metrics_host", None),
        metrics_port=getattr(args, "metrics_port", None),
        consumer_name=getattr(args, "consumer", None),
        batch_size=getattr(args, "batch_size", None),
        poll_interval_seconds=getattr(args, "poll_interval", None),
    )


@contextmanager
def _database(s: Settings, *, autocommit: bool = False) -> Iterator[Conn]:
    """A connection to a database whose schema is current (else a one-line error)."""
    with connect(s.database_url, timeout=s.connect_timeout_seconds,
                 autocommit=autocommit) as conn:
        ensure_current(conn)
        yield conn


def cmd_migrate(args: argparse.Namespace) -> int:
    s = _settings(args)
    with connect(s.database_url, timeout=s.connect_timeout_seconds) as conn:
        applied = migrate(conn)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else
                                                     " (schema already up to date)"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    s = _settings(args)
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
    s = _settings(args)
    with _database(s):
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
    s = _settings(args)
    with _database(s) as conn:
        cp = conn.execute(q("get_checkpoint"), {"consumer": s.consumer_name}).fetchone()
        alerts = conn.execute(q("firing_alerts")).fetchone()
        now = conn.execute("SELECT date_part('epoch', now())").fetchone()
        assert now is not None and alerts is not None
        info: dict[str, Any] = {"consumer": s.consumer_name, "firing_alerts": int(alerts[0])}
        if cp is None:
            info.update(events_processed=0, checkpoint_age_seconds=None, lag_seconds=None,
                        note="the processor has never run for this consumer")
        else:
            pending = conn.execute(q("oldest_pending"), {"xid": cp[1], "id": cp[2]}).fetchone()
            info.update(
                events_processed=int(cp[3]), rows_quarantined=int(cp[4]),
                checkpoint_age_seconds=round(float(now[0]) - float(cp[5]), 3),
                lag_seconds=round(float(now[0]) - float(pending[0]), 3) if pending else 0.0,
            )
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:24s} {v}")
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    s = _settings(args)
    with _database(s, autocommit=True) as conn:
        conn.execute("SELECT mlops.set_notify(%s)", (args.state == "on",))
    print("NOTIFY trigger " + ("enabled" if args.state == "on" else
                               "disabled: the processor now polls every POLL_INTERVAL_SECONDS"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(database_url=args.database_url or os.environ.get("DATABASE_URL"),
                    rate=args.rate, metrics_port=args.metrics_port, duration=args.duration,
                    data_dir=Path(args.data_dir or DEMO_DIR), reset=args.reset)


def cmd_reset_cursor(args: argparse.Namespace) -> int:
    s = _settings(args)
    if not args.after_restore:
        print("stream-mlops reset-cursor: nothing to do without --after-restore",
              file=sys.stderr)
        return 2
    with _database(s) as conn:
        changed = reset_after_restore(conn, s.consumer_name)
    if changed is None:
        print(f"cursor '{s.consumer_name}' already belongs to this cluster: nothing changed")
    else:
        print(f"cursor '{s.consumer_name}' moved from cluster {changed[0]} to {changed[1]};"
              " consumed rows stay consumed, the rest will be processed")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    s = _settings(args)
    logs.configure(s.log_level, "text")
    scenario = Scenario(args.scenario, change_after=args.change_after, end_after=args.end_after)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    arms = None
    if args.experiment is not None:
        with _database(s) as conn:
            e = experiments.get(conn, args.experiment, args.tenant)
        if e.status != "running":
            raise MlopsError(f"experiment {e.name} is {e.status}, not running: "
                             f"`stream-mlops experiment start {e.name}` first")
        arms = simulate.ExperimentArms(e.id, e.tenant_id, e.function_name, e.seed,
                                       tuple((v.name, v.weight) for v in e.variants))
    change = (f"scenario {scenario.name!r} ({SCENARIOS[scenario.name]}) after "
              f"{scenario.change_after:g} s" if scenario.name != "steady" else "steady traffic")
    print(f"simulating {args.rate:g} requests/s, {change}; Ctrl-C stops", flush=True)
    if arms is not None:
        print(f"{arms.function_name} traffic goes through experiment {args.experiment}")
    try:
        st = simulate.run(s.database_url, args.rate, stop, seed=args.seed,
                          scenario=scenario, duration=args.duration, experiment=arms)
    except KeyboardInterrupt:
        stop.set()
        raise
    lost = st.logged - st.written
    print(f"sent {st.logged} requests, {st.written} stored"
          + (f"; {lost} not stored ({st.dropped} dropped from a full buffer, {st.rejected} "
             f"refused; last error: {st.last_error or 'none'})" if lost else ""))
    return 1 if lost else 0


def cmd_alerts(args: argparse.Namespace) -> int:
    s = _settings(args)
    with _database(s, autocommit=True) as conn:
        if args.action in ("ack", "resolve"):
            if args.id is None:
                print(f"stream-mlops alerts {args.action}: give the alert id (see "
                      "`stream-mlops alerts`)", file=sys.stderr)
                return 2
            name = "acknowledge_alert" if args.action == "ack" else "close_alert"
            row = conn.execute(q(name), {"id": args.id}).fetchone()
            if row is None:
                state = conn.execute(q("alert_state"), {"id": args.id}).fetchone()
                print(f"alert {args.id} is already {state[0]}" if state else
                      f"no alert with id {args.id} (see `stream-mlops alerts --all`)",
                      file=sys.stderr)
                return 1
            print(f"alert {args.id} " + ("acknowledged: no reminders until it resolves"
                                         if args.action == "ack" else "resolved"))
            return 0
        rows = conn.execute(q("list_alerts"), {"all": args.all, "limit": args.limit}).fetchall()
    if args.json:
        keys = ("id", "state", "severity", "tenant", "function", "rule", "title", "message",
                "first_seen", "last_seen", "resolved_at")
        print(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], default=str))
        return 0
    if not rows:
        print("no open alerts" if not args.all else "no alerts")
    for r in rows:
        print(f"#{r[0]:<5} {r[1]:<12} {r[2]:<8} {r[3]}/{r[4] or '-'}  {r[6]}\n"
              f"       {r[7]}\n       since {r[8]:%Y-%m-%d %H:%M:%S %Z}")
    return 0


def cmd_costs(args: argparse.Namespace) -> int:
    s = _settings(args)
    days = args.days or (7 if args.recommend else 1)
    with _database(s) as conn:
        costs = analyze(conn, days)
        text = (render_report(costs, recommend(conn, days), args.format) if args.recommend
                else render(costs, args.format))
        print(text, end="" if text.endswith("\n") else "\n")  # CSV ends its last row
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    s = _settings(args)
    with _database(s, autocommit=True) as conn:
        if args.action == "create":
            if not args.name or not args.function:
                raise MlopsError("experiment create needs NAME and --function")
            spec = ExperimentSpec(
                args.name, args.function,
                **({"variants": parse_variants(args.variants)} if args.variants else {}),
                primary_metric=args.primary, guardrails=tuple(args.guardrail or ()),
                alpha=args.alpha, min_effect=args.min_effect, min_samples=args.min_samples,
                auto_stop=args.auto_stop, tenant_id=args.tenant, description=args.description)
            eid = experiments.create(conn, spec)
            print(f"experiment {spec.name} created as draft ({eid}); "
                  f"`stream-mlops experiment start {spec.name}` starts it")
            return 0
        if args.action == "list":
            rows = experiments.list_all(conn)
            if args.json:
                print(json.dumps([_experiment_json(e) for e in rows], default=str))
                return 0
            if not rows:
                print("no experiments")
            for e in rows:
                print(f"{e.name:24s} {e.tenant_id:10s} {e.function_name:20s} {e.status:10s} "
                      f"{e.primary_metric:16s} {e.decision}")
            return 0
        if not args.name:
            raise MlopsError(f"experiment {args.action} needs the experiment's NAME")
        if args.action in ("start", "stop"):
            status = ("running" if args.action == "start"
                      else "concluded" if args.conclude else "stopped")
            if experiments.get(conn, args.name, args.tenant).status == status:
                print(f"experiment {args.name} is already {status}: nothing changed")
                return 0
            print(f"experiment {args.name}: "
                  f"{experiments.set_status(conn, args.name, status, args.tenant)}")
            return 0
        e = experiments.get(conn, args.name, args.tenant)
        if args.json:
            print(json.dumps(_experiment_json(e), default=str))
        else:
            print(render_experiment(e))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    s = _settings(args)
    with _database(s, autocommit=True) as conn:
        if args.action != "list":
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
                           f"{_utc(at or time.time())} UTC; open drift alerts resolve",
            }[args.action] + " (the processor picks it up within 30 s)")
            return 0
        rows = [r for r in drift_status(conn, args.tenant)
                if args.function in (None, r["function"])]
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        print("no drift evidence yet" + (f" for {args.function}" if args.function else "")
              + " (the processor tests each function every 15 minutes and on every alarm)")
    else:
        print(f"{'tenant/function':30s} {'metric':17s} {'state':6s} {'latest test':20s} "
              f"{'p':10s} {'effect':15s} {'tested (UTC)':20s} reference")
    for r in rows:
        reference = "pinned" if r["pinned"] else "learns"
        if r["relearn_from"] is not None:
            reference += f", relearned {r['relearn_from'].astimezone(UTC):%Y-%m-%d %H:%M}"
        p = "-" if r["p_value"] is None else f"{r['p_value']:.2g}"
        effect = "-" if r["effect_size"] is None else f"{r['effect_size']:.3g}"
        print(f"{r['tenant'] + '/' + r['function']:30s} {r['metric']:17s} "
              f"{'DRIFT' if r['alert_open'] else 'ok':6s} {r['test']:20s} p={p:8s} "
              f"effect={effect:8s} {r['tested_at'].astimezone(UTC):%Y-%m-%d %H:%M:%S}  "
              f"({reference})")
    return 0


def _experiment_json(e: experiments.Experiment) -> dict[str, Any]:
    out = {k: v for k, v in e.__dict__.items() if k != "results"}
    out["variants"] = [v.as_json() for v in e.variants]
    out["results"] = {k: v for k, v in e.results.items() if k != "state"}
    return out


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def cmd_prices(args: argparse.Namespace) -> int:
    s = _settings(args)
    with _database(s) as conn:
        if args.action == "list":
            rows = price_versions(conn)
            if args.model:
                rows = [p for p in rows if p.model == args.model]
            print(f"{'model':28s} {'tenant':10s} {'from (UTC)':16s} {'input':>9s} "
                  f"{'cached':>9s} {'write':>9s} {'output':>9s}  USD per 1M tokens")
            for p in rows:
                print(f"{p.model:28s} {p.tenant_id or '*':10s} {_utc(p.effective_from):16s} "
                      f"{p.input:>9} {p.cached_input if p.cached_input is not None else '-':>9} "
                      f"{p.cache_write if p.cache_write is not None else '-':>9} {p.output:>9}")
            return 0
        if args.action == "import":
            if not args.file:
                raise MlopsError("prices import needs a FILE (our format or LiteLLM's map)")
            prices = load_price_map(Path(args.file), effective_from=time.time())
            if args.effective_from is not None:  # over the map's own as_of and dates
                at = _parse_time(args.effective_from)
                prices = [replace(p, effective_from=at) for p in prices]
            new = import_prices(conn, prices)
            print(f"{len(new)} price version(s) added or corrected"
                  + (": " + ", ".join(sorted({p.model for p in new})) if new else
                     " (every price already in force)"))
            if new:
                print("rows already priced keep their cost; run `stream-mlops prices recompute "
                      "--since DATE` to re-cost them")
            return 0
        if not args.since:
            raise MlopsError("prices recompute needs --since (e.g. --since 2026-11-01)")
        r = recompute(conn, datetime.fromtimestamp(_parse_time(args.since), UTC),
                      s.consumer_name)
        print(f"{r.rows} row(s) re-costed ({r.newly_priced:+d} priced), cost changed by "
              f"${r.delta_usd:,.6f}; {r.consumed_rows} already consumed: their hourly "
              "roll-ups and totals moved with them")
    return 0


def _parse_time(text: str) -> float:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise MlopsError(f"expected an ISO date or time such as 2026-11-01, got {text!r}"
                         ) from None
    try:
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).timestamp()
    except (OverflowError, ValueError):
        raise MlopsError(f"{text!r} is out of the range of dates") from None


def _number(kind: type[int] | type[float], lo: float, hi: float) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` within [lo, hi]."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
                ) from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(
                f"must be between {_plain(lo)} and {_plain(hi)}, got {text}")
        return value
    return parse


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _plain(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stream-mlops",
        description="Live monitoring of AI/LLM-backed functions on PostgreSQL.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--database-url", help="overrides DATABASE_URL")
        return sp

    add("migrate", "apply pending SQL migrations (idempotent)").set_defaults(fn=cmd_migrate)

    run = add("run", "consume requests and serve /metrics until interrupted")
    run.add_argument("--metrics-host", help="overrides METRICS_HOST (default 127.0.0.1)")
    run.add_argument("--metrics-port", type=int, help="overrides METRICS_PORT (default 9464)")
    run.add_argument("--consumer", help="overrides CONSUMER_NAME (default 'default')")
    run.add_argument("--batch-size", type=int, help="overrides BATCH_SIZE")
    run.add_argument("--poll-interval", type=float, help="overrides POLL_INTERVAL_SECONDS")
    run.add_argument("--migrate", action="store_true", help="apply migrations first")
    run.set_defaults(fn=cmd_run)

    health = add("health", "exit 0 when the database and the running processor are healthy")
    health.add_argument("--metrics-host", help="where the processor serves (METRICS_HOST)")
    health.add_argument("--metrics-port", type=int, help="its port (METRICS_PORT)")
    health.set_defaults(fn=cmd_health)

    status = add("status", "events processed, lag, checkpoint age, firing alerts")
    status.add_argument("--consumer", help="overrides CONSUMER_NAME")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(fn=cmd_status)

    notify = add("notify", "switch the NOTIFY trigger on, or off for poll-only mode")
    notify.add_argument("state", choices=["on", "off"])
    notify.set_defaults(fn=cmd_notify)
    reset = add("reset-cursor", "re-base the cursor after a dump/restore into another cluster")
    reset.add_argument("--after-restore", action="store_true",
                       help="rewrite stored transaction ids so they sort correctly here")
    reset.add_argument("--consumer", help="overrides CONSUMER_NAME")
    reset.set_defaults(fn=cmd_reset_cursor)

    al = add("alerts", "list open alerts; acknowledge or resolve one")
    al.add_argument("action", nargs="?", default="list", choices=["list", "ack", "resolve"])
    al.add_argument("id", nargs="?", type=int, help="alert id (for ack and resolve)")
    al.add_argument("--all", action="store_true", help="include resolved alerts")
    al.add_argument("--limit", type=_number(int, 1, 100_000), default=50)
    al.add_argument("--json", action="store_true", help="print JSON")
    al.set_defaults(fn=cmd_alerts)

    costs = add("costs", "cost, requests, cost per request and trend per function")
    costs.add_argument("--days", type=_number(int, 1, 3660),
                       help="period length in days (1; 7 with --recommend)")
    costs.add_argument("--recommend", action="store_true",
                       help="add recommendations with estimated monthly savings")
    costs.add_argument("--format", choices=["table", "json", "csv"], default="table")
    costs.set_defaults(fn=cmd_costs)

    exp = add("experiment", "create, start, stop and follow A/B experiments")
    exp.add_argument("action", choices=["create", "start", "stop", "status", "list"])
    exp.add_argument("name", nargs="?", help="experiment name")
    exp.add_argument("--tenant", default="default", help="tenant (default)")
    exp.add_argument("--function", help="create: the function under test")
    exp.add_argument("--variants", help="create: 'control:0.5:gpt-4o-mini,treatment:0.5:gpt-4o'"
                     " or a JSON list of {name, weight, model, prompt_version, params}; "
                     "the first is the control (default control/treatment 50/50)")
    exp.add_argument("--primary", default="error_rate",
                     help="create: error_rate (default), latency, confidence, cost_per_request "
                          "or cost_per_successful_request")
    exp.add_argument("--guardrail", action="append",
                     help="create: a metric that must not get worse (repeatable)")
    exp.add_argument("--alpha", type=float, default=0.05, help="create: 0.05")
    exp.add_argument("--min-effect", type=float,
                     help="create: smallest difference of interest, in the primary metric's "
                          "units (0.02 = 2 points of error rate, 100 = 100 ms)")
    exp.add_argument("--min-samples", type=_number(int, 10, 1_000_000_000), default=100,
                     help="create: per arm before any decision (100)")
    exp.add_argument("--auto-stop", action="store_true",
                     help="create: conclude by itself once the primary metric is decided")
    exp.add_argument("--description", help="create: free text")
    exp.add_argument("--conclude", action="store_true", help="stop: as concluded (final)")
    exp.add_argument("--json", action="store_true", help="status/list: JSON")
    exp.set_defaults(fn=cmd_experiment)

    drift = add("drift", "drift status per function and metric; pin, unpin or relearn a "
                "reference")
    drift.add_argument("action", nargs="?", default="list",
                       choices=["list", "pin", "unpin", "relearn"])
    drift.add_argument("function", nargs="?",
                       help="the function (list: only this one; required otherwise)")
    drift.add_argument("--metric", default="*", choices=["*", *METRICS],
                       help="pin/unpin/relearn: one metric (default: every metric)")
    drift.add_argument("--tenant", type=_nonempty,
                       help="tenant (default; list: every tenant)")
    drift.add_argument("--json", action="store_true", help="list: JSON")
    drift.set_defaults(fn=cmd_drift)

    prices = add("prices", "list price versions, import a JSON price map, re-cost rows")
    prices.add_argument("action", choices=["list", "import", "recompute"])
    prices.add_argument("file", nargs="?", help="price map to import (JSON)")
    prices.add_argument("--model", help="list: only this model")
    prices.add_argument("--effective-from",
                        help="import: when the imported prices apply from (default: now, "
                             "or the map's as_of)")
    prices.add_argument("--since", help="recompute: re-cost rows created since this time")
    prices.set_defaults(fn=cmd_prices)

    sim = add("simulate", "write realistic synthetic AI traffic to DATABASE_URL")
    sim.add_argument("--rate", type=_number(float, 0.01, 100_000), default=50.0,
                     help="requests per second (50)")
    sim.add_argument("--scenario", default="steady", choices=sorted(SCENARIOS),
                     help="what changes at --change-after: " + "; ".join(
                         f"{k}: {v}" for k, v in SCENARIOS.items()).replace("%", "%%"))
    sim.add_argument("--change-after", type=_number(float, 0, 1e9), default=60.0,
                     help="seconds before the scenario starts (60)")
    sim.add_argument("--end-after", type=_number(float, 0, 1e9),
                     help="seconds after which it stops again")
    sim.add_argument("--duration", type=_number(float, 0.001, 1e9),
                     help="stop after this many seconds")
    sim.add_argument("--seed", type=int, default=0, help="random seed (0)")
    sim.add_argument("--experiment", help="send the experiment's function through it "
                     "(variants by its seed; scenarios treatment_better/worse act on them)")
    sim.add_argument("--tenant", default="default", help="the experiment's tenant (default)")
    sim.set_defaults(fn=cmd_simulate)

    demo = add("demo", "private Postgres + processor + simulated traffic, live summary")
    demo.add_argument("--rate", type=float, default=50.0, help="requests per second (50)")
    demo.add_argument("--metrics-port", type=int, default=9464, help="/metrics port (9464)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--data-dir", help=f"embedded Postgres data directory ({DEMO_DIR})")
    demo.add_argument("--reset", action="store_true", help="start from an empty database")
    demo.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        code = int(args.fn(args))
        sys.stdout.flush()  # a closed pipe shows here, where it is handled
        return code
    except MlopsError as exc:
        print(f"stream-mlops {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        print(f"stream-mlops {args.command}: database error: {first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stream-mlops {args.command}: interrupted after "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `| head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug of ours: say so in one line, keep the trace for debug
        if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
            traceback.print_exc()
        print(f"stream-mlops {args.command}: unexpected error: {type(exc).__name__}: {exc} "
              "(please report it; LOG_LEVEL=DEBUG shows the traceback)", file=sys.stderr)
        return 70
