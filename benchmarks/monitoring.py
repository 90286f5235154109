"""Drift detection and live experiments inside the processor, per event. Prints JSON.

    .venv/bin/python benchmarks/monitoring.py [--events 1000000] [--batch 2000]

Feeds synthetic batches (50 functions, 200 series, a fifth of the rows in two running
experiments) through the processor's drift monitor (buffer + a flush of the detectors
every 10 s of traffic, as the service does: 7 metrics per function) and experiment
tracker, and times them against the batch aggregation of the core pipeline measured in
the same run. The issue's drift target is per *metric-update*: one value fed to one
detector.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from stream_mlops.drift.monitor import DriftMonitor, DriftRows
from stream_mlops.experiments.monitor import ArmRows, ExperimentTracker, LiveExperimentRow
from stream_mlops.pipeline.totals import (
    CONFIDENCE_BOUNDS,
    LATENCY_BOUNDS,
    TOKEN_BOUNDS,
    Columns,
    aggregate,
)

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "gemini-2.0-flash"]
ERRORS = ["Timeout", "RateLimitError", "InvalidResponse"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=2_000)
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    keys = [(f"t{f % 3}", f"fn-{f}") for f in range(50)]
    drift = DriftMonitor()
    # Function f is number f and model code m is MODELS[m], as the rows below say.
    drift.index.load([(t, f, m, "control") for t, f in keys for m in MODELS])
    tracker = ExperimentTracker()
    tracker.sync([LiveExperimentRow(
        f"exp-{i}", "t0", f"exp-{i}", f"fn-{i}", "running",
        [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "error_rate", ["latency", "cost_per_request"], 0.05, None, 100, False,
        "query_length", {})
        for i in range(2)])
    t_drift = t_exp = t_agg = 0.0
    events = args.events // args.batch * args.batch
    per_second = 5_000  # requests/s; the service flushes the detectors every 10 s
    next_flush = 10 * per_second
    for b in range(events // args.batch):
        n = args.batch
        fn = rng.integers(0, 50, n)
        series = fn * 4 + rng.integers(0, 4, n)
        err = rng.random(n) < 0.02
        latency = rng.lognormal(6.5, 0.6, n)
        conf = np.where(err, -1.0, rng.beta(8, 2, n))
        cost = rng.integers(10**6, 10**9, n)
        query = rng.lognormal(6, 0.5, n).astype(np.int64).astype(np.float64)
        created = 1.7e9 + (b * n + np.arange(n)) / per_second
        etype = [ERRORS[i % 3] if e else None for i, e in enumerate(err.tolist())]
        cols = Columns(series=series, created_at=created, latency_ms=latency,
                       prompt_tokens=rng.integers(10, 3000, n),
                       completion_tokens=rng.integers(1, 500, n),
                       cached_tokens=np.zeros(n, np.int64), cost_pico=cost, confidence=conf,
                       is_error=err)
        t0 = time.perf_counter()
        aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
        t1 = time.perf_counter()
        drift.buffer(DriftRows(fn, created, latency, query, conf, cost, err, etype,
                               series % 4))
        if (b + 1) * n >= next_flush:
            drift.run(float(created[-1]))
            next_flush += 10 * per_second
        t2 = time.perf_counter()
        in_exp = np.flatnonzero(fn < 2)
        ids = [f"exp-{f}" for f in fn[in_exp].tolist()]
        arms = ["control" if s % 2 == 0 else "treatment" for s in series[in_exp].tolist()]
        tracker.observe_rows(ids, arms, ArmRows(latency[in_exp], err[in_exp], conf[in_exp],
                                                cost[in_exp], query[in_exp]))
        t3 = time.perf_counter()
        t_agg += t1 - t0
        t_drift += t2 - t1
        t_exp += t3 - t2
    drift.flush()
    exp_events = sum(sum(e.samples().values()) for e in tracker.live.values())
    report("monitoring", {
        "events": events, "batch": args.batch, "functions": 50,
        "drift_metric_updates": drift.updates,
        "drift_us_per_metric_update": round(t_drift / drift.updates * 1e6, 3),
        "drift_us_per_event": round(t_drift / events * 1e6, 3),
        "drift_target_us_per_metric_update": 5.0,
        "experiment_events": exp_events,
        "experiments_us_per_experiment_event": round(t_exp / max(exp_events, 1) * 1e6, 3),
        "aggregation_us_per_event_reference": round(t_agg / events * 1e6, 3),
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
