"""Memory per (tenant, function) series of the processor's state, by component (issue 18).

    .venv/bin/python benchmarks/memory.py [--series 100,1000,5000] [--rows 200]
        [--rss 100,1000,5000,10000,20000,50000]

For each series count, a fresh processor with every monitor on takes ``--rows`` rows per
series (in batches of 5,000, as the consumer would), runs its background jobs (drift
detectors and tests) twice and serves /metrics once. The state is then measured two
ways: the bytes reachable from each component (the series index, the totals, each
monitor; numpy buffers included, every object counted once), and everything Python
allocated for it (tracemalloc, numpy included). The reference is the same processor
before any row: per-series figures are (with N series - empty) / N. tracemalloc slows
every allocation several-fold, so it runs only up to ``--traced-upto`` series (the two
ways agree within 2 % below). No database: the state is what the consumer keeps in memory.

Then the drift detectors of a function whose references are full (3,000 rows), by
metric. Then, for each count of ``--rss`` (100 to 50,000 series), a fresh process builds the same
state from rows fed in chunks and reports its resident set size before and after: what
the operating system sees, interpreter and allocator included, once freed heap pages are
handed back as ``stream-mlops run`` does every minute (and before that, too).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MODELS, report
from stream_mlops.core.batch import RawBatch
from stream_mlops.core.monitor import BackgroundJob
from stream_mlops.drift.monitor import DriftMonitor
from stream_mlops.metrics.exposition import render
from stream_mlops.pipeline.metrics import build_registry
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.scheduler import Scheduler
from stream_mlops.pipeline.status import PipelineStatus

BATCH = 5000
FLUSH_ROWS = 50_000  # the drift buffer samples past 100,000 (DriftMonitor.MAX_PENDING_ROWS)
_SKIP = (type, type(sys), type(len), type(lambda: 0))


def deep_bytes(obj: Any, seen: set[int]) -> int:
    """Bytes reachable from ``obj`` not already in ``seen`` (numpy buffers included)."""
    total, stack = 0, [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _SKIP):
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            total += sys.getsizeof(o)  # the buffer too when the array owns it
            if o.base is not None:
                stack.append(o.base)
            if o.dtype == object:
                stack.extend(o.ravel().tolist())
            continue
        try:
            total += sys.getsizeof(o)
        except TypeError:
            continue
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        elif hasattr(o, "__dict__") and not callable(o):
            stack.append(o.__dict__)
        for cls in type(o).__mro__:  # slots of the base classes too
            slots = cls.__dict__.get("__slots__", ())
            stack.extend(getattr(o, s) for s in ((slots,) if isinstance(slots, str) else slots)
                         if hasattr(o, s))
    return total


def feed_detectors(p: Processor) -> None:
    """Hand the buffered rows to the drift detectors, as the drift job does every 10 s:
    fed faster than that, the buffer keeps a 10 % sample past 100,000 rows (as while
    catching up), and the detectors would hold a tenth of what live traffic gives them."""
    for m in p.monitors:
        if isinstance(m, DriftMonitor):
            m.flush()


def series_keys(n_series: int) -> list[str]:
    """Raw keys of ``n_series`` (tenant, function) series over 50 tenants and 5 models."""
    return [f"tenant-{s % 50}\x1ffn-{s}\x1f{MODELS[s % 5]}\x1fcontrol" for s in range(n_series)]


def rows_for(n_series: int, per_series: int, seed: int = 0) -> RawBatch:
    """``per_series`` rows for each of ``n_series`` (tenant, function) series, shuffled,
    over the last hour."""
    rng = random.Random(seed)
    keys = series_keys(n_series)
    n = n_series * per_series
    order = np.array(rng.sample(range(n), n)) % n_series
    gen = np.random.default_rng(seed)
    now = time.time()
    prompt = gen.integers(50, 3000, n)
    return RawBatch(
        xid=np.arange(n, dtype=np.int64), id=np.arange(1, n + 1, dtype=np.int64),
        key=[keys[i] for i in order.tolist()],
        created_at=np.sort(now - 3600 + gen.random(n) * 3590),
        latency_ms=gen.lognormal(6.5, 0.6, n), prompt_tokens=prompt,
        completion_tokens=gen.integers(10, 800, n), cached_tokens=np.zeros(n, np.int64),
        cost_pico=gen.integers(1, 10**9, n), confidence=gen.random(n),
        is_error=gen.random(n) < 0.02, query_length=gen.integers(10, 2000, n).astype(float))


def components(p: Processor) -> dict[str, int]:
    seen: set[int] = set()
    out = {"series index": deep_bytes(p.index, seen), "totals": deep_bytes(p.totals, seen)}
    for m in p.monitors:
        out[f"monitor {m.name}"] = deep_bytes(m, seen)
    return out


def measure(n_series: int, per_series: int, *, traced: bool) -> dict[str, Any]:
    gc.collect()
    if traced:
        tracemalloc.start()
    p = Processor()
    empty_traced = tracemalloc.get_traced_memory()[0]
    empty = components(p)
    rows = rows_for(n_series, per_series)
    t0 = time.perf_counter()
    for lo in range(0, len(rows), BATCH):
        p.commit(p.prepare(rows.take(np.arange(lo, min(lo + BATCH, len(rows))))))
        if (lo // BATCH) % (FLUSH_ROWS // BATCH) == 0:
            feed_detectors(p)
    for _ in range(2):
        for job in p.jobs():
            if isinstance(job, BackgroundJob):
                job.compute(time.time())
    registry = scrape(p)  # kept: its label cache is counted by tracemalloc
    seconds = time.perf_counter() - t0
    del rows
    gc.collect()
    allocated = tracemalloc.get_traced_memory()[0] - empty_traced if traced else None
    tracemalloc.stop()
    full = components(p)
    del registry
    per = {k: round((full[k] - empty.get(k, 0)) / n_series) for k in full}
    return {"series": n_series, "rows_per_series": per_series,
            "seconds_to_feed_and_run_jobs": round(seconds, 2),
            "traced_bytes_per_series": allocated and round(allocated / n_series),
            "reachable_bytes_per_series": sum(per.values()),
            "by_component_bytes_per_series": dict(sorted(per.items(), key=lambda kv: -kv[1])),
            "traced_mb_total": allocated and round(allocated / 2**20, 1)}


def scrape(p: Processor) -> CollectorRegistry:
    """Serve /metrics once, as Prometheus would have by then: the label texts kept
    between scrapes are state too. The registry holds the processor's own cache."""
    registry = build_registry(p, PipelineStatus(), Scheduler())
    assert render(registry.collect(), openmetrics_format=False)
    return registry


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def random_rows(keys: list[str], series: Any, *, lo: int, total: int, now: float,
                gen: np.random.Generator) -> RawBatch:
    """Rows ``lo`` .. ``lo + len(series)`` of ``total`` spread over the last hour before
    ``now``, row ``i`` of series ``keys[series[i]]``, values drawn from ``gen``."""
    n = len(series)
    prompt = gen.integers(50, 3000, n)
    return RawBatch(
        xid=np.arange(lo, lo + n, dtype=np.int64) + 10,
        id=np.arange(lo, lo + n, dtype=np.int64) + 10,
        key=[keys[i] for i in series.tolist()],
        created_at=now - 3600 + (lo + np.arange(n)) / total * 3590,
        latency_ms=gen.lognormal(6.5, 0.6, n), prompt_tokens=prompt,
        completion_tokens=gen.integers(10, 800, n), cached_tokens=np.zeros(n, np.int64),
        cost_pico=gen.integers(1, 10**9, n), confidence=gen.random(n),
        is_error=gen.random(n) < 0.02, query_length=gen.integers(10, 2000, n).astype(float))


def rss_child(n_series: int, per_series: int, seed: int = 0) -> dict[str, Any]:
    """In a fresh process: the RSS of a processor before any row and after ``per_series``
    rows for each of ``n_series`` series, fed in chunks so that the input itself stays
    small (rows drawn at random over the series, over the last hour)."""
    # Here, not at the top: feed.py imports this module against older checkouts.
    from stream_mlops.pipeline.heap import release_free_memory
    gc.collect()
    p = Processor()
    p.commit(p.prepare(rows_for(1, 1)))  # imports and first-use allocations
    gc.collect()
    release_free_memory()
    before = rss_bytes()
    keys = series_keys(n_series)
    gen = np.random.default_rng(seed)
    total, chunk, now = n_series * per_series, FLUSH_ROWS, time.time()
    t0 = time.perf_counter()
    for lo in range(0, total, chunk):
        n = min(chunk, total - lo)
        rows = random_rows(keys, gen.integers(0, n_series, n), lo=lo, total=total, now=now,
                           gen=gen)
        for b in range(0, n, BATCH):
            p.commit(p.prepare(rows.take(np.arange(b, min(b + BATCH, n)))))
        del rows
        feed_detectors(p)
    for _ in range(2):
        for job in p.jobs():
            if isinstance(job, BackgroundJob):
                job.compute(time.time())
    registry = scrape(p)
    gc.collect()
    kept = rss_bytes()
    release_free_memory()  # as the service's heap job does every minute
    after = rss_bytes()
    del registry
    return {"series": n_series, "rows_per_series": per_series,
            "seconds": round(time.perf_counter() - t0, 1),
            "rss_mb_empty": round(before / 2**20, 1), "rss_mb": round(after / 2**20, 1),
            "rss_bytes_per_series": round((after - before) / n_series),
            "rss_bytes_per_series_before_release": round((kept - before) / n_series)}


def full_references(n_series: int = 100, per_series: int = 3000) -> dict[str, Any]:
    """Bytes of each drift detector of a function once its reference and recent window
    are full (``per_series`` rows, more than the 1,000-value references and the 500-value
    windows), mean over ``n_series`` functions."""
    p = Processor()
    rows = rows_for(n_series, per_series)
    for lo in range(0, len(rows), BATCH):
        p.commit(p.prepare(rows.take(np.arange(lo, min(lo + BATCH, len(rows))))))
        feed_detectors(p)
    drift = next(m for m in p.monitors if isinstance(m, DriftMonitor))
    seen: set[int] = set()  # shared tables and empty arrays are counted once
    by_metric: dict[str, list[int]] = {}
    for s in drift.series.values():
        for metric, det in s.detectors.items():
            by_metric.setdefault(metric, []).append(deep_bytes(det, seen))
    means = {m: round(sum(v) / len(v)) for m, v in by_metric.items()}
    return {"series": n_series, "rows_per_series": per_series,
            "bytes_per_series": sum(means.values()), "by_metric": means}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", default="100,1000,5000")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--traced-upto", type=int, default=1000,
                    help="tracemalloc (slow) only up to this many series")
    ap.add_argument("--rss", default="100,1000,5000,10000,20000,50000",
                    help="series counts whose RSS is measured, each in a fresh process "
                         "('' for none)")
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="memory")
    args = ap.parse_args()
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child, args.rows)))
        return 0
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": [measure(int(n), args.rows, traced=int(n) <= args.traced_upto)
                 for n in args.series.split(",")],
        "drift_detectors_with_full_references": full_references()}
    result["rss"] = [
        json.loads(subprocess.run(
            [sys.executable, __file__, "--rss-child", n, "--rows", str(args.rows)],
            check=True, capture_output=True, text=True).stdout)
        for n in args.rss.split(",") if n]
    report(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
