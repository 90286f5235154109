"""Cost of a /metrics scrape at N series (issue 18).

    .venv/bin/python benchmarks/scrape.py [--series 100,1000,5000] [--repeat 5]
        [--gzip-repeat 30] [--gc-scrapes 100]

For each series count, a processor with every monitor on is fed 50 rows per series (as in
benchmarks/memory.py), its background jobs and rules run, and every drift metric is given the
p-values that the periodic tests would have written by then (see :func:`steady_drift`);
its registry is served through the real WSGI application of
``stream-mlops run`` (``stream_mlops.metrics.server.app``), called in-process: time per
scrape (median of ``--repeat``), bytes plain and gzip, Python memory allocated at the peak
of a scrape (tracemalloc), and how long a thread standing in for the consumer waited for
the state lock during ``--gzip-repeat`` gzip scrapes (it takes and releases the lock in a
loop, as ``Consumer.step`` does around a batch; the wait includes waiting for the GIL),
with the full garbage collections that fell among them; then the garbage collections
during ``--gc-scrapes`` more. The
reference, in the same run: prometheus-client's own Counter and Histogram (the same
latency buckets) with one child per series.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import collections, report
from benchmarks.memory import BATCH, rows_for
from stream_mlops.core.monitor import BackgroundJob
from stream_mlops.drift.monitor import KINDS, DriftMonitor
from stream_mlops.metrics.server import app
from stream_mlops.pipeline.metrics import build_registry
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.scheduler import Scheduler
from stream_mlops.pipeline.status import PipelineStatus
from stream_mlops.pipeline.totals import LATENCY_BOUNDS


def serve(wsgi: Any, gz: bool) -> list[bytes]:
    """The body's chunks as the application returns them to the HTTP server, which writes
    them to the socket one by one: joining 44 MB here would time the harness (20 ms at
    5,000 series), not the processor."""
    environ = {"PATH_INFO": "/metrics", "QUERY_STRING": "", "REQUEST_METHOD": "GET"}
    if gz:
        environ["HTTP_ACCEPT_ENCODING"] = "gzip"
    return list(wsgi(environ, lambda *a, **k: None))


def reference(n_series: int) -> CollectorRegistry:
    reg = CollectorRegistry()
    labels = ["tenant", "function", "model", "variant"]
    req = Counter("ref_requests", "r", [*labels, "status"], registry=reg)
    dur = Histogram("ref_duration_seconds", "d", labels, registry=reg,
                    buckets=[float(b) for b in LATENCY_BOUNDS])
    for s in range(n_series):
        k = (f"tenant-{s % 50}", f"fn-{s}", "gpt-4o-mini", "control")
        req.labels(*k, "success").inc(50)
        dur.labels(*k).observe(0.5)
    return reg


def steady_drift(p: Processor) -> None:
    """The drift gauges of a processor that has run a while: every metric of every
    function with its detector's level and the latest p-value of each of its tests (the
    periodic evidence reaches every function in turn, a few per run of the job)."""
    for job in p.jobs():
        if isinstance(job, BackgroundJob):
            job.compute(time.time())
    drift = next(m for m in p.monitors if isinstance(m, DriftMonitor))
    rng = np.random.default_rng(0)
    for s in drift.series.values():
        for metric in s.detectors:
            for test in (("ks", "mann_whitney", "anderson_darling")
                         if KINDS[metric] == "numeric" else ("chi_square",)):
                s.p_values[(metric, test)] = float(rng.random())
    drift.snapshot = drift.gauges()


def scrape_collections(wsgi: Any, scrapes: int) -> dict[str, Any]:
    """Garbage collections, by generation, during ``scrapes`` plain scrapes, and how long
    each full one stopped every thread."""
    with collections() as seen:
        for _ in range(scrapes):
            serve(wsgi, False)
    return {"scrapes": scrapes, **seen}


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(n_series: int, repeat: int, gzip_repeat: int, gc_scrapes: int) -> dict[str, Any]:
    sys.setswitchinterval(0.001)  # as `stream-mlops run` sets it
    p = Processor()
    rows = rows_for(n_series, 50)
    for lo in range(0, len(rows), BATCH):
        p.commit(p.prepare(rows.take(np.arange(lo, min(lo + BATCH, len(rows))))))
    steady_drift(p)
    p.tick()  # the rules once, as every second: their spend levels are exported too
    status = PipelineStatus()
    wsgi = app(build_registry(p, status, Scheduler()), live=lambda _: [], ready=lambda _: [])
    serve(wsgi, False)
    waits: list[float] = []
    stop = threading.Event()

    def consumer() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            with status.lock:
                waits.append(time.perf_counter() - t0)
            time.sleep(0.0005)

    # The reference and the plain scrape run alone; the "consumer" runs during the gzip
    # scrapes (what Prometheus asks for).
    ref = reference(n_series)
    ref_s, ref_body = timed(lambda: generate_latest(ref), repeat)
    plain_s, chunks = timed(lambda: serve(wsgi, False), repeat)
    plain = b"".join(chunks)
    # Full collections of the cyclic garbage collector stop every thread for as long as
    # it takes to traverse every tracked object (the processor's state included), whatever
    # triggered them: counted and timed, as the longest wait depends on whether one falls
    # among the timed scrapes.
    th = threading.Thread(target=consumer)
    with collections() as seen:
        th.start()
        gzip_s, zipped_chunks = timed(lambda: serve(wsgi, True), gzip_repeat)
        stop.set()
        th.join()
    ordered = sorted(waits)
    tracemalloc.start()
    serve(wsgi, False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    zipped = b"".join(zipped_chunks)
    assert gzip.decompress(zipped).count(b"\n") == plain.count(b"\n")
    return {
        "series": n_series, "scrape_ms": round(plain_s * 1000, 1),
        "scrape_gzip_ms": round(gzip_s * 1000, 1), "bytes": len(plain),
        "bytes_gzip": len(zipped), "samples": plain.count(b"\n") - plain.count(b"\n#"),
        "peak_alloc_mb_per_scrape": round(peak / 2**20, 1),
        "consumer_lock_wait_ms_max": round(max(waits) * 1000, 2),
        "consumer_lock_wait_ms_p999": round(ordered[int(0.999 * (len(ordered) - 1))] * 1000, 2),
        "gzip_scrapes": gzip_repeat, "full_gc_pauses_ms": seen["full_collection_ms"],
        "tracked_objects": len(gc.get_objects()),
        "garbage_collection": scrape_collections(wsgi, gc_scrapes),
        "reference_ms": round(ref_s * 1000, 1), "reference_bytes": len(ref_body),
        "ratio_ms_to_reference": round(plain_s / ref_s, 2)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", default="100,1000,5000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gzip-repeat", type=int, default=30,
                    help="gzip scrapes during which the consumer's waits are measured")
    ap.add_argument("--gc-scrapes", type=int, default=100,
                    help="plain scrapes whose garbage collections are counted")
    ap.add_argument("--out", default="scrape")
    args = ap.parse_args()
    report(args.out, {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "runs": [measure(int(n), args.repeat, args.gzip_repeat, args.gc_scrapes)
                               for n in args.series.split(",")]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
