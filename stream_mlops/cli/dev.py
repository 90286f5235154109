"""``stream-mlops simulate`` (synthetic traffic) and ``stream-mlops demo`` (everything on a
private Postgres)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from stream_mlops import logs
from stream_mlops.cli.common import AddCommand, database, number, settings
from stream_mlops.dev import simulator as simulate
from stream_mlops.dev.demo import DEMO_DIR, run_demo
from stream_mlops.dev.simulator import SCENARIOS, Scenario
from stream_mlops.errors import MlopsError
from stream_mlops.experiments import store as experiments
from stream_mlops.settings import Settings


def cmd_simulate(args: argparse.Namespace) -> int:
    s = settings(args)
    logs.configure(s.log_level, "text")
    scenario = Scenario(args.scenario, change_after=args.change_after, end_after=args.end_after)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    arms = None if args.experiment is None else _arms(s, args.experiment, args.tenant)
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


def _arms(s: Settings, name: str, tenant: str) -> simulate.ExperimentArms:
    """The arms of a running experiment, which the simulated traffic goes through."""
    with database(s) as conn:
        e = experiments.get(conn, name, tenant)
    if e.status != "running":
        raise MlopsError(f"experiment {e.name} is {e.status}, not running: "
                         f"`stream-mlops experiment start {e.name}` first")
    return simulate.ExperimentArms(e.id, e.tenant_id, e.function_name, e.seed,
                                   tuple((v.name, v.weight) for v in e.variants))


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(database_url=args.database_url or os.environ.get("DATABASE_URL"),
                    rate=args.rate, metrics_port=args.metrics_port, duration=args.duration,
                    data_dir=Path(args.data_dir or DEMO_DIR), reset=args.reset)


def add_commands(add: AddCommand) -> None:
    _add_simulate(add)
    demo = add("demo", "private Postgres + processor + simulated traffic, live summary")
    demo.add_argument("--rate", type=float, default=50.0, help="requests per second (50)")
    demo.add_argument("--metrics-port", type=int, default=9464, help="/metrics port (9464)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--data-dir", help=f"embedded Postgres data directory ({DEMO_DIR})")
    demo.add_argument("--reset", action="store_true", help="start from an empty database")
    demo.set_defaults(fn=cmd_demo)


def _add_simulate(add: AddCommand) -> None:
    sim = add("simulate", "write realistic synthetic AI traffic to DATABASE_URL")
    sim.add_argument("--rate", type=number(float, 0.01, 100_000), default=50.0,
                     help="requests per second (50)")
    sim.add_argument("--scenario", default="steady", choices=sorted(SCENARIOS),
                     help="what changes at --change-after: " + "; ".join(
                         f"{k}: {v}" for k, v in SCENARIOS.items()).replace("%", "%%"))
    sim.add_argument("--change-after", type=number(float, 0, 1e9), default=60.0,
                     help="seconds before the scenario starts (60)")
    sim.add_argument("--end-after", type=number(float, 0, 1e9),
                     help="seconds after which it stops again")
    sim.add_argument("--duration", type=number(float, 0.001, 1e9),
                     help="stop after this many seconds")
    sim.add_argument("--seed", type=int, default=0, help="random seed (0)")
    sim.add_argument("--experiment", help="send the experiment's function through it "
                     "(variants by its seed; scenarios treatment_better/worse act on them)")
    sim.add_argument("--tenant", default="default", help="the experiment's tenant (default)")
    sim.set_defaults(fn=cmd_simulate)
