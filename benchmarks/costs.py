"""Cost machinery per event in the processor (issue: cost tracking). Prints JSON.

    .venv/bin/python benchmarks/costs.py [--events 2000000] [--batch 20000]

Times what costs add to a batch — hourly roll-up, exact windows, budgets and their alert
rules — per event, over 1,000 series, against the rest of the batch's aggregation
measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from stream_mlops.cost_tracking import CostTracker
from stream_mlops.processor import CONFIDENCE_BOUNDS, LATENCY_BOUNDS, TOKEN_BOUNDS
from stream_mlops.stats.totals import Columns, aggregate


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    keys = [(f"t{s % 5}", f"f{s // 10}", f"m{s % 5}", "control") for s in range(1000)]
    tracker = CostTracker()
    now = time.time()
    t_cost = t_agg = 0.0
    for b in range(args.events // args.batch):
        n = args.batch
        series = rng.integers(0, 1000, n)
        created = now - 3600 + (b * n + np.arange(n)) * (3600 / args.events)
        cost = np.where(rng.random(n) < 0.05, -1, rng.integers(10**6, 10**10, n))
        prompt = rng.integers(10, 5000, n)
        cols = Columns(series=series, created_at=created,
                       latency_ms=rng.lognormal(6, 1, n), prompt_tokens=prompt,
                       completion_tokens=rng.integers(1, 500, n),
                       cached_tokens=np.zeros(n, np.int64), cost_pico=cost,
                       confidence=rng.random(n), is_error=rng.random(n) < 0.02)
        t0 = time.perf_counter()
        aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
        t1 = time.perf_counter()
        tracker.observe(keys, series, created_at=created, cost_pico=cost, prompt=prompt,
                        completion=cols.completion_tokens, cached=cols.cached_tokens)
        tracker.evaluate(float(created[-1]))
        t_cost += time.perf_counter() - t1
        t_agg += t1 - t0
    events = args.events // args.batch * args.batch
    result = {"events": events, "series": 1000, "batch": args.batch,
              "cost_us_per_event": round(t_cost / events * 1e6, 3),
              "aggregation_us_per_event_reference": round(t_agg / events * 1e6, 3),
              "target_us": 3.0}
    report("costs", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
