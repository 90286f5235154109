"""The processor alone (no database): rows/s to prepare and commit batches, by series count.

    .venv/bin/python benchmarks/feed.py [--series 1000,5000,50000] [--batch 5000]
        [--code /tmp/base]

Every series is seen first (two rows each, untimed), then 40 batches of ``--batch`` rows
drawn at random over the series are timed through ``Processor.prepare`` and ``commit``,
every monitor on: what the consumer spends between reading a batch and persisting it.
``--code`` imports ``stream_mlops`` from another checkout (a baseline worktree), so both
can be measured by the same script. JSON on stdout and in ``results/feed.json`` (this
tree) or ``results/feed_baseline.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", default="1000,5000,50000")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--code", help="import stream_mlops from this checkout instead")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import report
    if args.code:
        sys.path.insert(0, str(Path(args.code).resolve()))
        for name in [m for m in sys.modules if m.startswith("stream_mlops")]:
            del sys.modules[name]
    import stream_mlops
    from benchmarks.memory import random_rows, series_keys  # imports the stream_mlops above
    from stream_mlops.pipeline.processor import Processor

    runs: list[dict[str, Any]] = []
    for n_series in (int(n) for n in args.series.split(",")):
        gen = np.random.default_rng(0)
        keys = series_keys(n_series)
        total = 2 * n_series + args.batches * args.batch
        now = time.time()

        p = Processor()
        seen = np.tile(np.arange(n_series), 2)
        for lo in range(0, len(seen), args.batch):
            part = seen[lo:lo + args.batch]
            p.commit(p.prepare(random_rows(keys, part, lo=lo, total=total, now=now, gen=gen)))
        batches = [random_rows(keys, gen.integers(0, n_series, args.batch),
                               lo=len(seen) + k * args.batch, total=total, now=now, gen=gen)
                   for k in range(args.batches)]
        t0 = time.perf_counter()
        for b in batches:
            p.commit(p.prepare(b))
        seconds = time.perf_counter() - t0
        runs.append({"series": n_series, "batch_rows": args.batch,
                     "rows_per_s": round(args.batches * args.batch / seconds)})
        print(runs[-1], file=sys.stderr)
    report("feed_baseline" if args.code else "feed",
           {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "code": args.code or "this tree", "imported_from": stream_mlops.__file__,
            "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
