"""Latency against CPU at 1,000 commits/s for several coalescing intervals (issue 18). JSON.

    .venv/bin/python benchmarks/batch_interval.py [--intervals 0.002,0.005,0.01,0.02,0.05,0.1,0.2]

Under load the next batch waits until ``MIN_BATCH_INTERVAL_SECONDS`` have passed since the
previous one started: a shorter interval means fewer rows waiting, and more batches (each
with a fixed cost). For each interval, at 1,000 single-row commits/s:

* the processor's CPU in a process of its own, scraped every 5 s
  (``benchmarks/pipeline.py``'s ``bench_cpu``);
* commit -> counted inside the processor, p50 / p99 (``benchmarks/inprocess_latency.py``,
  the same ``Service`` in a thread, nothing scraping it).

``benchmarks/plots.py`` draws ``docs/img/batch-interval.png`` from the JSON.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import inprocess_latency
from benchmarks.common import report, start_server
from benchmarks.pipeline import bench_cpu

RATE = 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--intervals", default="0.002,0.005,0.01,0.02,0.05,0.1,0.2")
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    pg = start_server()
    tmp = Path(tempfile.mkdtemp(prefix="stream-mlops-bench-logs-"))
    cells: list[dict[str, Any]] = []
    try:
        for interval in (float(x) for x in args.intervals.split(",")):
            cpu = bench_cpu(pg, RATE, args.seconds, tmp, interval=interval)
            os.environ["MIN_BATCH_INTERVAL_SECONDS"] = str(interval)
            try:
                lat = inprocess_latency.run(pg, RATE, args.seconds)
            finally:
                del os.environ["MIN_BATCH_INTERVAL_SECONDS"]
            cells.append({
                "interval_s": interval,
                "cpu_percent_of_one_core": cpu["processor_cpu_percent_of_one_core"],
                "batches_per_s": cpu["batches_per_s"], "cpu_ms_per_batch": cpu["cpu_ms_per_batch"],
                "commit_to_counted_ms": lat["commit_to_counted_ms"],
                "rows_per_batch": lat["rows_per_batch"]})
            print(f"interval {interval:g} s: {cells[-1]}", file=sys.stderr, flush=True)
    finally:
        pg.stop("immediate")
        shutil.rmtree(pg.datadir.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    report("batch_interval", {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "rate_commits_per_s": RATE, "seconds": args.seconds,
                              "cells": cells})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
