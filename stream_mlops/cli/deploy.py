"""``stream-mlops deploy``: blue-green deployments for pipelines and people.

Exit codes: 0 done, 2 bad input (one line, nothing written), and for ``wait`` 3 when the
deployment was rolled back or failed, 4 on timeout.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import time
from typing import Any

from stream_mlops.cli.common import AddCommand, Conn, database, settings
from stream_mlops.deployments import store
from stream_mlops.deployments.health import probe
from stream_mlops.deployments.store import DeploymentError, DeploymentInfo, DeploymentSpec
from stream_mlops.errors import MlopsError

ROLLED_BACK, TIMED_OUT = 3, 4


def cmd_deploy(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s, autocommit=True) as conn:
        if args.action == "start":
            return _start(conn, args)
        if args.action == "status":
            return _status(conn, args)
        if args.action in ("promote", "rollback"):
            return _move(conn, args)
        if args.action == "wait":
            return _wait(conn, args)
        return _history(conn, args)


def _start(conn: Conn, args: argparse.Namespace) -> int:
    if not args.version:
        raise MlopsError("deploy start needs --version V (the version to deploy)")
    spec = DeploymentSpec(
        args.function, args.version, tenant_id=args.tenant,
        steps=parse_steps(args.steps) if args.steps else DeploymentSpec.steps,
        min_samples=_integer("--min-samples", args.min_samples, 10, 1_000_000_000)
        if args.min_samples is not None else DeploymentSpec.min_samples,
        step_seconds=_number("--step-seconds", args.step_seconds, 0, 604_800)
        if args.step_seconds is not None else DeploymentSpec.step_seconds,
        alpha=_number("--alpha", args.alpha, 1e-6, 0.5) if args.alpha is not None
        else DeploymentSpec.alpha,
        health_url=args.health_url, notes=args.notes, artifact=args.artifact,
        reason=f"started by {_who()}" + (f": {args.reason}" if args.reason else ""))
    try:
        spec.check()
    except ValueError as exc:
        raise DeploymentError(str(exc)) from None
    if spec.health_url:
        ok, seen = probe(spec.health_url)
        if not ok:
            raise DeploymentError(f"health URL {spec.health_url} is not healthy ({seen}); "
                                  "nothing was started")
    print(store.start(conn, spec))
    return 0


def _status(conn: Conn, args: argparse.Namespace) -> int:
    d = store.latest(conn, args.function, args.tenant)
    if args.json:
        print(json.dumps(status_json(d), default=str))
        return 0
    print(f"{d.function_name} {d.version} -> {d.slot}: {d.status}, "
          f"{d.traffic_percent:g} % of units")
    print(f"  reason: {d.reason or '-'}")
    if d.last_gate:
        print(f"  gate:   {d.last_gate.get('message', '-')}")
        for m, v in (d.last_gate.get("metrics") or {}).items():
            print(f"          {m:11s} new {_fmt(v.get('new'))} live {_fmt(v.get('live'))} "
                  f"p {_fmt(v.get('p_value'))} ({v.get('n_new', 0)} + {v.get('n_live', 0)})")
    print(f"  live before: {d.previous_slot} {d.previous_version or '-'}; steps "
          f"{store.steps_text(d.steps)} %, {d.min_samples} samples and {d.step_seconds:g} s "
          "per step")
    return 0


def status_json(d: DeploymentInfo) -> dict[str, Any]:
    """What ``deploy status --json`` prints: the deployment, and its gate's last result."""
    out = d.as_json()
    out["gate"] = out.pop("last_gate")
    return out


def _move(conn: Conn, args: argparse.Namespace) -> int:
    status = "promoted" if args.action == "promote" else "rolled_back"
    word = "promoted" if status == "promoted" else "rolled back"
    reason = f"{word} by hand by {_who()}" + (f": {args.reason}" if args.reason else "")
    d = store.move(conn, args.function, status, reason, args.tenant)
    print(f"{d.function_name} {d.version}: {d.status} ({d.traffic_percent:g} % of units)")
    return 0


def _wait(conn: Conn, args: argparse.Namespace) -> int:
    timeout = (_number("--timeout", args.timeout, 0, 30 * 86_400)
               if args.timeout is not None else math.inf)
    interval = _number("--interval", args.interval, 0.05, 3600)
    d = store.latest(conn, args.function, args.tenant)
    deadline = time.monotonic() + timeout
    failures, said = 0, ""
    while True:
        line = f"{d.status} at {d.traffic_percent:g} %: " + str(
            (d.last_gate or {}).get("message") or d.reason or "")
        if line != said:
            print(f"{d.function_name} {d.version}: {line}", flush=True)
            said = line
        if d.status in ("promoted", "retired"):
            return 0
        if d.status in ("rolled_back", "failed"):
            return ROLLED_BACK
        if time.monotonic() >= deadline:
            print(f"{d.function_name} {d.version}: still {d.status} after {timeout:g} s",
                  flush=True)
            return TIMED_OUT
        if d.health_url:
            ok, seen = probe(d.health_url)
            failures = 0 if ok else failures + 1
            store.record_health(conn, d.id, ok=ok, error="" if ok else seen,
                                failures=failures, at=time.time())
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
        d = store.by_id(conn, d.id)


def _history(conn: Conn, args: argparse.Namespace) -> int:
    entries = store.history(conn, args.function, args.tenant)
    if not entries:
        raise DeploymentError(f"no deployment of {args.function!r} for tenant "
                              f"{args.tenant!r}")
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], default=str))
        return 0
    for e in entries:
        what = e.status or ""
        print(f"{e.at:%Y-%m-%d %H:%M:%S} #{e.deployment_id} {e.version:12s} {e.kind:10s} "
              f"{what:11s} {e.traffic_percent:5g} % {e.detail or ''} ({e.actor})")
    return 0


def parse_steps(text: str) -> tuple[float, ...]:
    """``10,25,50,100`` as percentages (the spec checks their order and range).

    >>> parse_steps("10, 25,50,100")
    (10.0, 25.0, 50.0, 100.0)
    """
    out = []
    for part in text.split(","):
        try:
            out.append(float(part))
        except ValueError:
            raise DeploymentError(f"--steps: {part.strip()!r} is not a number; give "
                                  "percentages such as 10,25,50,100") from None
    return tuple(out)


def _number(flag: str, text: str, lo: float, hi: float) -> float:
    try:
        v = float(text)
    except ValueError:
        raise DeploymentError(f"{flag}: expected a number, got {text!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise DeploymentError(f"{flag}: must be between {lo:g} and {hi:g}, got {text}")
    return v


def _integer(flag: str, text: str, lo: int, hi: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise DeploymentError(f"{flag}: expected a whole number, got {text!r}") from None
    if not lo <= v <= hi:
        raise DeploymentError(f"{flag}: must be between {lo} and {hi}, got {text}")
    return v


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, int | float) else "-"


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def add_commands(add: AddCommand) -> None:
    d = add("deploy", "blue-green deployments: start, status, promote, rollback, wait, "
            "history")
    d.add_argument("action", choices=["start", "status", "promote", "rollback", "wait",
                                      "history"])
    d.add_argument("function", help="the function deployed")
    d.add_argument("--tenant", default="default", help="tenant (default)")
    d.add_argument("--version", help="start: the version to deploy")
    d.add_argument("--steps", help="start: percent of units at each step (10,25,50,100)")
    d.add_argument("--min-samples", help="start: requests of the new version each step "
                   "needs (200)")
    d.add_argument("--step-seconds", help="start: minimum time per step (300)")
    d.add_argument("--alpha", help="start: the gate's false-rollback bound over the whole "
                   "deployment (0.05)")
    d.add_argument("--health-url", help="start: the new version's health check (http(s)); "
                   "must answer now, and `wait` checks it while it waits")
    d.add_argument("--notes", help="start: free text")
    d.add_argument("--artifact", help="start: what is deployed (image, commit, URL)")
    d.add_argument("--reason", help="start/promote/rollback: why (recorded)")
    d.add_argument("--timeout", help="wait: give up after S seconds (exit 4)")
    d.add_argument("--interval", default="2", help="wait: seconds between looks (2)")
    d.add_argument("--json", action="store_true", help="status/history: JSON")
    d.set_defaults(fn=cmd_deploy)
