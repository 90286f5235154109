"""``stream-mlops experiment``: create, start, stop and follow A/B experiments."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stream_mlops.cli.common import AddCommand, Conn, database, number, settings
from stream_mlops.errors import MlopsError
from stream_mlops.experiments import store as experiments
from stream_mlops.experiments.config import COVARIATES, ExperimentSpec, parse_variants
from stream_mlops.experiments.report import render_experiment


def cmd_experiment(args: argparse.Namespace) -> int:
    s = settings(args)
    with database(s, autocommit=True) as conn:
        if args.action == "create":
            _create(conn, args)
        elif args.action == "list":
            _list(conn, as_json=args.json)
        elif not args.name:
            raise MlopsError(f"experiment {args.action} needs the experiment's NAME")
        elif args.action in ("start", "stop"):
            _move(conn, args)
        else:
            _show(conn, args.name, args.tenant, as_json=args.json)
    return 0


def _create(conn: Conn, args: argparse.Namespace) -> None:
    if not args.name or not args.function:
        raise MlopsError("experiment create needs NAME and --function")
    spec = ExperimentSpec(
        args.name, args.function,
        **({"variants": parse_variants(args.variants)} if args.variants else {}),
        primary_metric=args.primary, guardrails=tuple(args.guardrail or ()),
        alpha=args.alpha, min_effect=args.min_effect, min_samples=args.min_samples,
        auto_stop=args.auto_stop, tenant_id=args.tenant, description=args.description,
        covariate=None if args.covariate == "none" else args.covariate)
    eid = experiments.create(conn, spec)
    print(f"experiment {spec.name} created as draft ({eid}); "
          f"`stream-mlops experiment start {spec.name}` starts it")


def _list(conn: Conn, *, as_json: bool) -> None:
    listed = experiments.list_all(conn)
    if as_json:
        print(json.dumps([_experiment_json(e) for e in listed], default=str))
        return
    if not listed:
        print("no experiments")
    for e in listed:
        print(f"{e.name:24s} {e.tenant_id:10s} {e.function_name:20s} {e.status:10s} "
              f"{e.primary_metric:16s} {e.decision}")


def _move(conn: Conn, args: argparse.Namespace) -> None:
    """``start`` or ``stop`` (``--conclude``: for good) an experiment."""
    status = ("running" if args.action == "start"
              else "concluded" if args.conclude else "stopped")
    if experiments.get(conn, args.name, args.tenant).status == status:
        print(f"experiment {args.name} is already {status}: nothing changed")
        return
    print(f"experiment {args.name}: "
          f"{experiments.set_status(conn, args.name, status, args.tenant)}")


def _show(conn: Conn, name: str, tenant: str, *, as_json: bool) -> None:
    e = experiments.get(conn, name, tenant)
    if as_json:
        print(json.dumps(_experiment_json(e), default=str))
    else:
        print(render_experiment(e))


def _experiment_json(e: experiments.Experiment) -> dict[str, Any]:
    # The processor's saved test state is internal: restarts need it, users do not.
    out = {k: v for k, v in e.__dict__.items() if k != "results"}
    out["variants"] = [v.as_json() for v in e.variants]
    out["results"] = {k: v for k, v in e.results.items() if k != "state"}
    return out


def add_commands(add: AddCommand) -> None:
    exp = add("experiment", "create, start, stop and follow A/B experiments")
    exp.add_argument("action", choices=["create", "start", "stop", "status", "list"])
    exp.add_argument("name", nargs="?", help="experiment name")
    exp.add_argument("--tenant", default="default", help="tenant (default)")
    _add_create_options(exp)
    exp.add_argument("--conclude", action="store_true", help="stop: as concluded (final)")
    exp.add_argument("--json", action="store_true", help="status/list: JSON")
    exp.set_defaults(fn=cmd_experiment)


def _add_create_options(exp: argparse.ArgumentParser) -> None:
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
    exp.add_argument("--min-samples", type=number(int, 10, 1_000_000_000), default=100,
                     help="create: per arm before any decision (100)")
    exp.add_argument("--auto-stop", action="store_true",
                     help="create: conclude by itself once the primary metric is decided")
    exp.add_argument("--description", help="create: free text")
    exp.add_argument("--covariate", choices=[*COVARIATES, "none"], default=COVARIATES[0],
                     help="create: compare latency, cost and confidence adjusted for this "
                          "pre-treatment value of each request (CUPED; query_length, the "
                          "default), or none: when a variant changes the query itself")
