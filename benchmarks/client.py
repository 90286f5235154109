"""Caller-side overhead of the Python client (issue: ingestion). Prints one JSON document.

    .venv/bin/python benchmarks/client.py [--calls 200000]

Measures the time a logged call adds on the caller's thread, with the background writer
running against a real Postgres, next to the same loop without logging.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report, start_server
from stream_mlops.client import RequestLogger

RESPONSE = {"usage": {"prompt_tokens": 900, "completion_tokens": 120,
                      "prompt_tokens_details": {"cached_tokens": 512}}}


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    args = ap.parse_args()
    pg = start_server()
    try:
        lg = RequestLogger(pg.url, max_buffer=args.calls * 6, batch_size=2000)

        def baseline() -> None:
            with contextlib.nullcontext():
                _ = RESPONSE

        def log_call() -> None:
            lg.log(function_name="summarize", model="gpt-4o-mini", latency_ms=812.5,
                   prompt_tokens=900, completion_tokens=120, cached_tokens=512,
                   confidence=0.91)

        def track_call() -> None:
            with lg.track("summarize", "gpt-4o-mini") as call:
                call.response = RESPONSE

        runs: dict[str, list[float]] = {"baseline": [], "log": [], "track": []}
        for _ in range(3):
            runs["baseline"].append(per_call_us(baseline, args.calls))
            runs["log"].append(per_call_us(log_call, args.calls))
            runs["track"].append(per_call_us(track_call, args.calls))
        t0 = time.perf_counter()
        flushed = lg.flush(120)
        drain_s = time.perf_counter() - t0
        lg.close()
        med = {k: statistics.median(v) for k, v in runs.items()}
        result = {
            "calls_per_run": args.calls,
            "baseline_us_per_call": round(med["baseline"], 3),
            "log_us_per_call": round(med["log"], 2),
            "track_us_per_call": round(med["track"], 2),
            "log_overhead_us": round(med["log"] - med["baseline"], 2),
            "track_overhead_us": round(med["track"] - med["baseline"], 2),
            "target_us": 20,
            "rows_written": lg.stats.written, "dropped": lg.stats.dropped,
            "all_flushed": flushed, "drain_after_last_call_s": round(drain_s, 2),
            "runs_us": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        }
    finally:
        pg.stop("immediate")
        shutil.rmtree(pg.datadir.parent, ignore_errors=True)
    report("client", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
