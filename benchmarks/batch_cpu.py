"""Where the CPU of a batch goes at a steady commit rate, by part and by thread (issue 18).

    .venv/bin/python benchmarks/batch_cpu.py [--rate 1000] [--seconds 10]

The real ``Service`` runs in a thread of this process; a client commits single rows at
``--rate`` from the main thread. The consumer's parts (the read, the processor's prepare
and each monitor's ``observe``, the persist, the commit, the jobs) are timed with
``time.thread_time`` (CPU of that thread only, waits excluded), and every thread's CPU is
read from ``/proc`` before and after. The timers themselves add a few percent.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report, start_server
from benchmarks.inprocess_latency import commit_rows
from stream_mlops.dev.embedded import free_port
from stream_mlops.pipeline.service import Service
from stream_mlops.settings import load_settings


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name."""
    out = {}
    for t in threading.enumerate():
        try:
            with open(f"/proc/self/task/{t.native_id}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[t.name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default="batch_cpu")
    args = ap.parse_args()
    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def timed(obj: Any, name: str, label: str) -> None:
        f: Callable[..., Any] = getattr(obj, name)

        def run(*a: Any, **k: Any) -> Any:
            t0 = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                spent[label] += time.thread_time() - t0
                calls[label] += 1
        setattr(obj, name, run)

    pg = start_server()
    try:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE batch_cpu TEMPLATE postgres")
        url = pg.url_for("batch_cpu")
        service = Service(load_settings(database_url=url, metrics_host="127.0.0.1",
                                        metrics_port=free_port()))
        thread = threading.Thread(target=service.run, daemon=True, name="consumer")
        thread.start()
        time.sleep(3)  # opened, restored, listening
        c = service.consumer
        assert c.repo is not None
        for obj, name in ((c, "step"), (c.repo, "fetch"), (c.repo, "persist"),
                          (c.processor, "prepare"), (c.processor, "commit"),
                          (c, "run_jobs")):
            timed(obj, name, name)
        for m in c.processor.monitors:
            timed(m, "observe", f"observe {m.name}")
        before, wall0 = thread_cpu(), time.perf_counter()
        n = len(commit_rows(url, args.rate, args.seconds))
        time.sleep(0.5)
        after, wall = thread_cpu(), time.perf_counter() - wall0
        service.request_stop()
        thread.join(15)
    finally:
        pg.stop()
    batches = calls["persist"]
    report(args.out, {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rate_commits_per_s": args.rate, "commits": n, "batches_per_s": round(batches / wall, 1),
        "rows_per_batch": round(n / max(batches, 1), 2),
        "thread_cpu_percent": {k: round(100 * (v - before.get(k, 0.0)) / wall, 1)
                               for k, v in sorted(after.items())},
        "cpu_ms_per_call": {k: round(1000 * v / max(calls[k], 1), 3)
                            for k, v in sorted(spent.items(), key=lambda kv: -kv[1])},
        "calls": dict(calls)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
