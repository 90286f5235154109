"""Latency drift on daily cycles: the monitor with and without its hour-of-day profile. JSON.

    .venv/bin/python benchmarks/drift_seasonal.py [--quick] [--jobs 2] [--every 60]

``DriftMonitor`` feeds latency to its detector relative to an hour-of-day profile learnt
from the previous whole days (``stream_mlops.stats.seasonal``); the profile is filled only
by ``DriftMonitor.count``. The arm *with* the profile calls ``count`` then ``buffer`` for
every slice of rows (as ``observe`` does); the arm *without* calls ``buffer`` only, which
is the monitor as it was before the profile. Both arms run on the same seeded streams in
the same run.

The streams are one function's requests at a constant rate (Poisson, times uniform), with
lognormal latency exp(N(5, 0.5^2)) times exp(amp sin(2 pi t / day)), t from midnight UTC.
Rows are fed in slices of ``--every`` simulated seconds (the service's drift job runs
every 10 s; 60 s by default keeps the run short): buffer, flush, read the detector, test.
Periodic evidence is switched off (``periodic_seconds`` huge): it only records p-values
and never changes an alert, and its scipy tests would dominate the run time.

1. False alarms on stationary streams: a flat stream (amp 0) and daily cycles (amp 0.3 at
   2,000, 10,000 and 50,000 events per day, amp 0.5 at 10,000), 7 days, 10 seeds (3 with
   ``--quick``; five times as many at 2,000 a day, for as many events as at 10,000).
   Counted only after the first whole day (a profile needs one whole day of history, and
   ``MIN_HOUR_COUNT`` = 100 values in an hour and its neighbours). *Alarms* are the
   latency detector's alarms (the increase of its ``n_drifts``: every alarm, also several
   in one slice), *alerts* are the ``fire`` changes of the latency alert (a confirmed
   drift when no drift alert is open), *confirmed* the confirmed drifts
   (``drifts["latency"]``), all per 10,000 latency events.
2. Delays after a real step (latency x1.5 and x1.2 from a uniform time on day 4 or 5, i.e.
   hours 72..120) on the flat stream and the amp 0.3 cycle at 10,000 a day: the events
   from the step to the detector's first alarm (its stream index minus the step's) and to
   the first confirmed drift (the events fed before the test that confirms it), and the
   share of runs detected within 24 h of the step. A run stops once both are seen or a day
   after the step. Without the profile on a cyclic stream the first alarm after the step is
   often a cycle alarm, and a reference learnt at another phase of the cycle hides or adds
   to the step: that "delay" is contaminated, and is reported as measured.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from stream_mlops.drift.monitor import DriftMonitor, DriftRows
from stream_mlops.stats.seasonal import MIN_HOUR_COUNT

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DAY = 86400.0
T0 = 1_800_000_000.0 - (1_800_000_000.0 % DAY)  # a midnight UTC
ROOT = Path(__file__).resolve().parent.parent
CODE = ("stream_mlops/drift/monitor.py", "stream_mlops/stats/seasonal.py",
        "stream_mlops/stats/drift.py", "stream_mlops/stats/rings.py")


@dataclass(frozen=True)
class Cell:
    """A stationary stream of the false-alarm part."""

    name: str
    per_day: int
    amp: float
    seeds: int = 1  # times the seeds of the others: as many events at a lower rate


@dataclass(frozen=True)
class Task:
    """One run: a seeded stream, one arm (with or without the profile)."""

    per_day: int
    amp: float
    days: int
    seed: int
    seasonal: bool
    every: float
    step_at: float | None = None  # seconds after T0
    factor: float = 1.0


@dataclass
class Run:
    """What one run saw."""

    task: Task
    seconds: float
    events_per_day: list[int]
    alarms_per_day: list[int]
    alarm_slices_per_day: list[int]
    alerts_per_day: list[int]
    confirmed_per_day: list[int]
    profile_from_hour: float | None  # hours after T0 when the latency became seasonal
    # Step runs only (events after the step; None: not within the day after it):
    alarm_delay: int | None = None
    alarm_delay_exact: bool = True
    alarm_hours: float | None = None
    confirm_delay: int | None = None
    confirm_hours: float | None = None
    alarms_before_step: int = 0  # after the first whole day


CELLS = (
    Cell("flat", 10_000, 0.0),
    Cell("cycle_0.3_2k", 2_000, 0.3, seeds=5),
    Cell("cycle_0.3_10k", 10_000, 0.3),
    Cell("cycle_0.3_50k", 50_000, 0.3),
    Cell("cycle_0.5_10k", 10_000, 0.5),
)
STEP_STREAMS = (Cell("flat", 10_000, 0.0), Cell("cycle_0.3_10k", 10_000, 0.3))
FACTORS = (1.5, 1.2)


def _rows(t: F64, lat: F64) -> DriftRows:
    n = len(t)
    return DriftRows(function=np.zeros(n, np.int64), created_at=t, latency_ms=lat,
                     query_length=np.full(n, -1.0), confidence=np.full(n, -1.0),
                     cost_pico=np.full(n, -1, np.int64), is_error=np.zeros(n, np.bool_),
                     error_type=[None] * n, model=np.zeros(n, np.int64))


def stream(task: Task) -> tuple[F64, F64]:
    """Times (sorted, seconds since the epoch) and latencies (ms) of a seeded stream; the
    step (if any) multiplies the latencies from ``step_at`` on. Both arms, and both step
    sizes, of a seed get the same values."""
    g = np.random.default_rng(task.seed)
    n = int(g.poisson(task.per_day * task.days))
    t = T0 + np.sort(g.uniform(0.0, task.days * DAY, n))
    lat = g.lognormal(5.0, 0.5, n) * np.exp(task.amp * np.sin(2 * math.pi * (t - T0) / DAY))
    if task.step_at is not None:
        lat = np.where(t >= T0 + task.step_at, lat * task.factor, lat)
    return t, lat


class _Sim:
    """One run's monitor and counters, slice by slice."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.t, self.lat = stream(task)
        self.m = DriftMonitor(periodic_seconds=1e15)
        self.f = self.m.index.function_id("bench", "fn")
        self.step_t = math.inf if task.step_at is None else T0 + task.step_at
        self.step_idx = int(np.searchsorted(self.t, self.step_t))
        ev = np.bincount(((self.t - T0) // DAY).astype(np.int64), minlength=task.days)
        zeros = [0] * task.days
        self.run = Run(task, 0.0, ev[:task.days].tolist(), alarms_per_day=zeros.copy(),
                       alarm_slices_per_day=zeros.copy(), alerts_per_day=zeros.copy(),
                       confirmed_per_day=zeros.copy(), profile_from_hour=None)
        self.alarms_seen = 0
        self.drifts_seen = 0

    def feed(self, lo: int, hi: int, start: float, day: int) -> None:
        """Rows ``lo:hi`` (from time ``start`` on): buffer, flush, read the detector."""
        m, run = self.m, self.run
        r = _rows(self.t[lo:hi], self.lat[lo:hi])
        if self.task.seasonal:
            m.count(r)
        m.buffer(r)
        m.flush()
        s = m.series[self.f]
        if run.profile_from_hour is None and s.seasonal:
            run.profile_from_hour = (start - T0) / 3600
        d = s.detectors["latency"]
        assert d.n_seen == hi, "every latency value is fed (no thinning)"
        new = d.n_drifts - self.alarms_seen
        if not new:
            return
        self.alarms_seen = d.n_drifts
        run.alarms_per_day[day] += new
        run.alarm_slices_per_day[day] += 1
        if start < self.step_t:
            run.alarms_before_step += new if day >= 1 else 0
        elif run.alarm_delay is None:
            last = d.state().last_drift_index
            assert last is not None
            # Several alarms in the slice: the first one is not known; the last one bounds
            # the delay from above.
            run.alarm_delay, run.alarm_delay_exact = last - self.step_idx, new == 1
            run.alarm_hours = (float(self.t[last]) - self.step_t) / 3600

    def test(self, edge: float, hi: int, day: int) -> None:
        """The monitor's test at ``edge``: alerts fired and drifts confirmed."""
        run = self.run
        changes = self.m.test(edge)[1]
        run.alerts_per_day[day] += sum(1 for c in changes if c.action == "fire"
                                       and c.fingerprint.endswith(":latency"))
        s = self.m.series.get(self.f)
        n_drifts = 0 if s is None else s.drifts.get("latency", 0)
        if n_drifts > self.drifts_seen:
            run.confirmed_per_day[day] += n_drifts - self.drifts_seen
            self.drifts_seen = n_drifts
            if edge > self.step_t and run.confirm_delay is None:
                run.confirm_delay = hi - self.step_idx
                run.confirm_hours = (edge - self.step_t) / 3600

    def done(self, edge: float) -> bool:
        run = self.run
        return edge >= self.step_t + DAY or (run.alarm_delay is not None
                                             and run.confirm_delay is not None)


def simulate(task: Task) -> Run:
    """Feed the stream slice by slice; count alarms, alerts and confirmed drifts per day."""
    start = time.perf_counter()
    sim = _Sim(task)
    edges = T0 + np.arange(1, round(task.days * DAY / task.every) + 1) * task.every
    if task.step_at is not None:  # a slice ends at the step: alarms fall on one side
        edges = np.unique(np.append(edges, sim.step_t))
    cut = np.searchsorted(sim.t, edges)  # rows before each edge
    lo, prev = 0, T0
    for edge, hi in zip(edges.tolist(), cut.tolist(), strict=True):
        day = int((prev - T0) // DAY)
        if hi > lo:
            sim.feed(lo, hi, prev, day)
        sim.test(edge, hi, day)
        lo, prev = hi, edge
        if sim.done(edge):
            break
    run = sim.run
    if task.step_at is not None:  # a detection later than a day after the step: missed
        if run.alarm_hours is not None and run.alarm_hours > 24:
            run.alarm_delay = run.alarm_hours = None
        if run.confirm_hours is not None and run.confirm_hours > 24:
            run.confirm_delay = run.confirm_hours = None
    run.seconds = time.perf_counter() - start
    return run


def _map(tasks: list[Task], jobs: int) -> list[Run]:
    if jobs <= 1:
        return [simulate(task) for task in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(simulate, tasks, chunksize=1))


# ---------------------------------------------------------------------- false alarms


def _rates(runs: list[Run], counts: str, first_day: int) -> dict[str, Any]:
    per_seed = [1e4 * sum(getattr(r, counts)[first_day:]) / sum(r.events_per_day[first_day:])
                for r in runs]
    total = sum(sum(getattr(r, counts)[first_day:]) for r in runs)
    return {"per_10k": round(float(np.mean(per_seed)), 3),
            "per_10k_sd_over_seeds": round(float(np.std(per_seed, ddof=1)), 3)
            if len(per_seed) > 1 else None,
            "per_10k_by_seed": [round(v, 3) for v in per_seed], "count": total}


def _by_day(runs: list[Run], counts: str) -> list[float]:
    days = len(runs[0].events_per_day)
    return [round(1e4 * sum(getattr(r, counts)[k] for r in runs)
                  / max(1, sum(r.events_per_day[k] for r in runs)), 3) for k in range(days)]


def false_alarms(runs: list[Run], cells: Iterable[Cell]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cell in cells:
        row: dict[str, Any] = {"per_day": cell.per_day, "amp": cell.amp}
        for arm, seasonal in (("without_profile", False), ("with_profile", True)):
            rs = [r for r in runs if r.task.per_day == cell.per_day and r.task.amp == cell.amp
                  and r.task.seasonal == seasonal and r.task.step_at is None]
            row["events_observed"] = sum(sum(r.events_per_day[1:]) for r in rs)
            row["seeds"] = sorted(r.task.seed for r in rs)
            row[arm] = {
                "alarms": _rates(rs, "alarms_per_day", 1),
                "alarm_slices": _rates(rs, "alarm_slices_per_day", 1),
                "alerts": _rates(rs, "alerts_per_day", 1),
                "confirmed": _rates(rs, "confirmed_per_day", 1),
                "alarms_per_10k_by_day": _by_day(rs, "alarms_per_day"),
                "alerts_per_10k_by_day": _by_day(rs, "alerts_per_day"),
                "profile_from_hour": [r.profile_from_hour for r in rs],
                "cpu_seconds_per_run": round(float(np.mean([r.seconds for r in rs])), 2),
            }
        out[cell.name] = row
    return out


# ---------------------------------------------------------------------------- delays


def _median(xs: list[int | None] | list[float | None], q: float = 0.5) -> float | None:
    # A miss (None: not within a day) sorts after every delay; a quantile on one is None.
    if not xs:
        return None
    v = float(np.quantile([math.inf if x is None else float(x) for x in xs], q,
                          method="lower"))
    return v if math.isfinite(v) else None


def step_delays(runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cell in STEP_STREAMS:
        for factor in FACTORS:
            row: dict[str, Any] = {}
            for arm, seasonal in (("without_profile", False), ("with_profile", True)):
                rs = [r for r in runs if r.task.step_at is not None
                      and r.task.per_day == cell.per_day and r.task.amp == cell.amp
                      and r.task.factor == factor and r.task.seasonal == seasonal]
                a = [r.alarm_delay for r in rs]
                c = [r.confirm_delay for r in rs]
                row[arm] = {
                    "replications": len(rs),
                    "median_events_to_alarm": _median(a),
                    "p90_events_to_alarm": _median(a, 0.9),
                    "median_events_to_confirmed": _median(c),
                    "p90_events_to_confirmed": _median(c, 0.9),
                    "median_hours_to_confirmed": _median([r.confirm_hours for r in rs]),
                    "share_alarm_within_day": round(sum(x is not None for x in a) / len(rs), 3),
                    "share_confirmed_within_day": round(
                        sum(x is not None for x in c) / len(rs), 3),
                    "alarm_delay_inexact": sum(not r.alarm_delay_exact for r in rs),
                    "runs_with_alarms_before_step": sum(r.alarms_before_step > 0 for r in rs),
                    "delays_to_alarm": a, "delays_to_confirmed": c,
                    "step_hours": [None if r.task.step_at is None
                                   else round(r.task.step_at / 3600, 2) for r in rs],
                }
            wo, wi = row["without_profile"], row["with_profile"]
            row["ratio_with_over_without"] = {
                k: None if not wo[k] or wi[k] is None else round(wi[k] / wo[k], 3)
                for k in ("median_events_to_alarm", "median_events_to_confirmed")}
            out[f"{cell.name}/x{factor:g}"] = row
    return out


# ---------------------------------------------------------------------------- output


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def table(fa: dict[str, Any], dl: dict[str, Any], every: float) -> str:
    lines = [
        f"False alarms per 10,000 latency events, days 2-7 only (a profile needs one whole "
        f"day of history), mean over seeds; rows fed every {every:g} s of simulated time.",
        "",
        "| stream | events/day | events observed | alarms, no profile | alarms, profile "
        "| alerts, no profile | alerts, profile |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in fa.values():
        wo, wi = row["without_profile"], row["with_profile"]
        shape = "flat" if row["amp"] == 0 else f"exp({row['amp']:g} sin(2πt/day))"
        lines.append(
            f"| {shape} | {row['per_day']:,} | {row['events_observed']:,} "
            f"| {wo['alarms']['per_10k']:.2f} | {wi['alarms']['per_10k']:.2f} "
            f"| {wo['alerts']['per_10k']:.2f} | {wi['alerts']['per_10k']:.2f} |")
    lines += [
        "",
        "Step in latency at a uniform time on day 4 or 5: events from the step to the first "
        "detector alarm and to the first confirmed drift (median; share within a day).",
        "",
        "| stream | step | profile | median events to alarm | median events to confirmed "
        "| alarm within a day | confirmed within a day | runs |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, row in dl.items():
        name, factor = key.split("/")
        for arm in ("without_profile", "with_profile"):
            r = row[arm]
            note = " ¹" if arm == "without_profile" and name != "flat" else ""
            lines.append(
                f"| {name} | {factor} | {'with' if arm == 'with_profile' else 'without'}{note} "
                f"| {_fmt(r['median_events_to_alarm'], 0)} "
                f"| {_fmt(r['median_events_to_confirmed'], 0)} "
                f"| {r['share_alarm_within_day']:.0%} | {r['share_confirmed_within_day']:.0%} "
                f"| {r['replications']} |")
    lines += ["", "¹ Without the profile the cycle itself moves the detector: the first alarm "
              "after the step may be a cycle alarm (too short a delay), and a reference "
              "learnt at another phase of the cycle may hide or add to the step: these "
              "delays are contaminated, shown as measured."]
    return "\n".join(lines)


def _code_hashes() -> dict[str, str]:
    return {p: hashlib.sha256((ROOT / p).read_bytes()).hexdigest()[:16] for p in CODE}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes (default 2)")
    ap.add_argument("--every", type=float, default=60.0,
                    help="simulated seconds per slice of rows (service: 10)")
    args = ap.parse_args()
    q, every = args.quick, args.every
    if DAY % every:
        ap.error("--every must divide a day")
    t0 = time.perf_counter()
    code = _code_hashes()
    days, fa_seeds = 7, list(range(3 if q else 10))
    step_seeds = list(range(1000, 1000 + (6 if q else 30)))
    fa_tasks = [Task(c.per_day, c.amp, days, 10_000 * (k + 1) + s, seasonal, every)
                for k, c in enumerate(CELLS) for s in range(len(fa_seeds) * c.seeds)
                for seasonal in (False, True)]
    step_tasks = []
    for s in step_seeds:
        step_at = float(np.random.default_rng([s, 7]).uniform(3 * DAY, 5 * DAY))
        step_tasks += [Task(c.per_day, c.amp, 6, s, seasonal, every, step_at, factor)
                       for c in STEP_STREAMS for factor in FACTORS for seasonal in (False, True)]
    # The longest runs first, so the processes finish together.
    tasks = sorted(fa_tasks + step_tasks, key=lambda k: -k.per_day * k.days)
    runs = _map(tasks, args.jobs)
    fa = false_alarms(runs, CELLS)
    dl = step_delays(runs)
    seconds = time.perf_counter() - t0
    worst = max(r["with_profile"]["alarms"]["per_10k"] for r in fa.values())
    flat_ratios = [v for k, row in dl.items() if k.startswith("flat/")
                   for v in row["ratio_with_over_without"].values() if v is not None]
    md = table(fa, dl, every)
    result = {
        "command": " ".join([".venv/bin/python", "benchmarks/drift_seasonal.py", *sys.argv[1:]]),
        "quick": q,
        "parameters": {
            "days": days, "step_days": 6, "every_seconds": every, "jobs": args.jobs,
            "latency": "lognormal(5, 0.5) x exp(amp sin(2 pi (t - midnight) / 86400)), "
                       "Poisson arrivals at a constant rate",
            "counted_from_day": 2,
            "counted_from_day_why": "the profile needs one whole day of history (and "
                                    f"{MIN_HOUR_COUNT} values in an hour and its "
                                    "neighbours)",
            "false_alarm_seeds": fa_seeds,
            "false_alarm_seed_per_cell": "10,000 * (cell + 1) + seed, seed < seeds x cell's",
            "step_seeds": step_seeds, "step_window_hours": [72, 120], "step_factors": FACTORS,
            "step_streams": [asdict(c) for c in STEP_STREAMS],
            "cells": [asdict(c) for c in CELLS],
            "monitor": "DriftMonitor() defaults (reference 1,000, false_alarm_rate 1e-4) "
                       "with periodic_seconds=1e15 (periodic evidence off: it never fires)",
            "arms": "with_profile: count(rows) + buffer(rows); without_profile: buffer(rows)",
        },
        "code_sha256_16": code,
        "code_changed_during_run": _code_hashes() != code,
        "false_alarms": fa,
        "step_delays": dl,
        "summary": {
            "alarms_per_10k_max_with_profile": worst,
            "alarms_target_le_1_met": worst <= 1.0,
            "cells_above_1_with_profile": [k for k, r in fa.items()
                                           if r["with_profile"]["alarms"]["per_10k"] > 1.0],
            "flat_delay_ratio_max_with_over_without": max(flat_ratios, default=None),
            "flat_delay_growth_le_20pct": bool(flat_ratios) and max(flat_ratios) <= 1.2,
        },
        "markdown": md,
        "note": "2-core machine shared with other work",
        "seconds": round(seconds, 1),
    }
    report("drift_seasonal", result)
    print(md)
    print(f"\n{len(runs)} runs in {seconds:.0f} s ({args.jobs} processes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
