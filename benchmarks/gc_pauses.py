"""Full garbage collections while the processor consumes (issue 18).

    .venv/bin/python benchmarks/gc_pauses.py [--series 5000] [--batches 12000]

A full collection of CPython's cyclic garbage collector walks every tracked object of the
process, the processor's state included, with the GIL held: every thread stops, the
consumer too. How often one comes depends on the young generation's threshold: each
young collection promotes what is alive at that moment (a batch in flight), and enough
promotions set off a full one.

Both ways, each in a fresh process: Python's defaults, and what ``stream-mlops run`` sets
at its start (:func:`~stream_mlops.pipeline.service.tune_gc`: the objects of the imports
frozen, young collections every 10,000 net allocations); then a processor with every
monitor on holds ``--series`` (tenant, function) series of 50 rows
each (the drift detectors fed), then consumes ``--batches`` batches of 10 rows over those
series (1,000 commits/s arrive as ~100 such batches/s), with the rules' tick every 100
batches and a ``/metrics`` scrape every 1,500 (once a second and every 15 s at that rate).
Reported: collections by generation, how long each full one stopped every thread, what
one more costs at the end, and the CPU per batch.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import collections, report
from benchmarks.memory import BATCH, feed_detectors, rows_for
from benchmarks.scrape import serve
from stream_mlops.metrics.server import app
from stream_mlops.pipeline.metrics import build_registry
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.scheduler import Scheduler
from stream_mlops.pipeline.service import tune_gc
from stream_mlops.pipeline.status import PipelineStatus


def child(tuned: bool, n_series: int, batches: int) -> dict[str, Any]:
    if tuned:
        tune_gc()  # as the service does, before it loads any state
    p = Processor()
    rows = rows_for(n_series, 50)
    for lo in range(0, len(rows), BATCH):
        p.commit(p.prepare(rows.take(np.arange(lo, min(lo + BATCH, len(rows))))))
    feed_detectors(p)
    wsgi = app(build_registry(p, PipelineStatus(), Scheduler()), live=lambda _: [],
               ready=lambda _: [])
    serve(wsgi, False)
    gc.collect()
    live = rows_for(n_series, max(1, -(-batches * 10 // n_series)), seed=1)
    with collections() as seen:
        cpu0, t0 = time.process_time(), time.perf_counter()
        for b in range(batches):
            p.commit(p.prepare(live.take(np.arange(b * 10, b * 10 + 10))))
            if b % 100 == 99:
                p.tick()
            if b % 1500 == 1499:
                serve(wsgi, True)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    t1 = time.perf_counter()
    gc.collect()  # what one full collection costs at the end, whether or not one came
    one_full = time.perf_counter() - t1
    return {"gc": "tune_gc()" if tuned else "Python's defaults",
            "young_threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count(),
            "series": n_series, "batches": batches,
            **seen,
            "tracked_objects": len(gc.get_objects()),
            "one_full_collection_at_the_end_ms": round(one_full * 1000, 1),
            "cpu_ms_per_batch": round(cpu / batches * 1000, 3),
            "seconds": round(wall, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=5000)
    ap.add_argument("--batches", type=int, default=12_000)
    ap.add_argument("--child", choices=["default", "tuned"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default="gc_pauses")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "tuned", args.series, args.batches)))
        return 0
    runs = [json.loads(subprocess.run(
        [sys.executable, __file__, "--child", way, "--series", str(args.series),
         "--batches", str(args.batches)], check=True, capture_output=True, text=True).stdout)
        for way in ("default", "tuned")]
    report(args.out, {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
