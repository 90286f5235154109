"""The live page's cost, against a Prometheus scrape of the same registry (the reference,
measured in the same run). Prints one JSON document.

    .venv/bin/python benchmarks/live_page.py [--series 1000] [--samples 360] [--runs 5]

The real processor's registry holds ``--series`` series (tenant, function, model,
variant), and the sampler an hour of history (``--samples`` at the default 10 s); then
each of: a scrape (``generate_latest``), one sample, ``GET /`` (first page, 50 functions
with their hour charts), ``GET /function`` and ``GET /live.csv``. Medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from stream_mlops.core.batch import RawBatch
from stream_mlops.metrics.live import LivePage, Sampler
from stream_mlops.pipeline.metrics import build_registry
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.status import PipelineStatus


def rows(step: int, n_series: int, now: float) -> RawBatch:
    """One request per series, latencies and errors varying with the step."""
    out = []
    for s in range(n_series):
        i = step * n_series + s
        out.append((1000 + i, i, f"tenant-{s % 10}", f"fn-{s // 10:03d}", "gpt-4o-mini",
                    ("control", "treatment")[s % 2], now - 1, 50.0 + (i * 37) % 3000,
                    100, 50, 0, 1000, 0.8, i % 31 == 0))
    return RawBatch.from_rows(out)


def timed(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=360)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    now = time.time()
    processor = Processor(clock=lambda: now)
    registry = build_registry(processor, PipelineStatus(consumer="bench"))
    sampler = Sampler(registry, interval=10.0)
    for step in range(args.samples):
        processor.commit(processor.prepare(rows(step, args.series, now)))
        sampler.sample(now=now - 10.0 * (args.samples - step))
    page = LivePage(sampler)

    def get(path: str, query: str = "") -> None:
        b"".join(page({"PATH_INFO": path, "QUERY_STRING": query}, lambda *a: None))

    scrape = timed(lambda: generate_latest(registry), args.runs)
    results = {
        "series": args.series, "history_samples": len(sampler.snapshots),
        "runs": args.runs,
        "scrape_s": round(scrape, 4),
        "sample_s": round(timed(lambda: sampler.sample(keep=False), args.runs), 4),
        "page_s": round(timed(lambda: get("/"), args.runs), 4),
        "function_page_s": round(timed(
            lambda: get("/function", "tenant=tenant-3&name=fn-003"), args.runs), 4),
        "csv_s": round(timed(lambda: get("/live.csv"), args.runs), 4),
    }
    results["page_vs_scrape"] = round(results["page_s"] / scrape, 2)
    results["sample_vs_scrape"] = round(results["sample_s"] / scrape, 2)
    report("live_page", results)


if __name__ == "__main__":
    main()
