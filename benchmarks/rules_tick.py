"""The once-a-second rules (``Processor.tick``) at N functions (issue 18).

    .venv/bin/python benchmarks/rules_tick.py [--series 100,1000,5000,20000] [--repeat 9]

The consumer reads every monitor's rules once a second with the state locked: no batch
is processed meanwhile, so the time it takes is both CPU and a pause in consuming. For
each count, a processor with every monitor on holds that many (tenant, function) series
of 50 rows each over the last hour (drift detectors fed); reported: the median time of a
whole tick and of each monitor's ``evaluate`` (``--repeat`` times each).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from benchmarks.memory import BATCH, feed_detectors, rows_for
from stream_mlops.pipeline.processor import Processor


def median_ms(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def measure(n_series: int, repeat: int) -> dict[str, Any]:
    p = Processor()
    rows = rows_for(n_series, 50)
    for lo in range(0, len(rows), BATCH):
        p.commit(p.prepare(rows.take(np.arange(lo, min(lo + BATCH, len(rows))))))
    feed_detectors(p)
    p.tick()  # the first reading builds what later ones reuse
    return {"series": n_series, "tick_ms": median_ms(p.tick, repeat),
            "by_monitor_ms": {m.name: median_ms(lambda m=m: m.evaluate(time.time()), repeat)
                              for m in p.monitors}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", default="100,1000,5000,20000")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--out", default="rules_tick")
    args = ap.parse_args()
    report(args.out, {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "runs": [measure(int(n), args.repeat) for n in args.series.split(",")]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
