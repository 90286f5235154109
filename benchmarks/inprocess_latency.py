"""COMMIT -> counted, timed inside the processor: no HTTP probe in the way (issue 18).

    .venv/bin/python benchmarks/inprocess_latency.py [--rates 100,1000] [--seconds 6]

``benchmarks/pipeline.py`` measures COMMIT -> visible on ``/metrics`` by scraping back to
back from another process; on two cores that probe competes with the consumer for the
CPU and, at every scrape, for the GIL. Here the real ``Service`` (listener, adaptive
batching, jobs, workers, metrics server) runs in a thread of this process with nothing
scraping it, one client commits single rows at a steady rate, and ``Consumer.step`` and
``Consumer.run_jobs`` are timed, after ``WARM_UP_SECONDS`` of the same traffic. For each
commit (after the first second): the time
from the commit to the start and to the end of the batch that counted its row. A scrape
does not wait for that batch (it asks for a read of its own: ``pipeline/freshness.py``),
so under load this is how fresh the tables written back are, which
``MIN_BATCH_INTERVAL_SECONDS`` decides. ``--rows-per-commit K``: commits of K rows each
(``--rates`` stays in commits a second). ``--held-series N``: the processor first consumes
10 rows each of N other series, whose state it then holds (its rules read them all once
a second, and a full garbage collection walks them).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MODELS, copy_in, report, series_rows, start_server
from stream_mlops.dev.embedded import EmbeddedPostgres, free_port
from stream_mlops.drift.monitor import DriftMonitor
from stream_mlops.pipeline.service import Service
from stream_mlops.settings import load_settings

_RUNS = itertools.count()
WARM_UP_SECONDS = 20.0
COLUMNS = ("tenant_id, function_name, model, variant, latency_ms, prompt_tokens, "
           "completion_tokens, cached_tokens, confidence, status")


def _ms(xs: list[float], q: float) -> float | None:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * q))] * 1000, 2) if xs else None


def _timed(calls: list[tuple[float, float, Any]], f: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = f(*args, **kwargs)
        calls.append((t0, time.perf_counter() - t0, out))
        return out
    return timed


def commit_rows(url: str, rate: float, seconds: float, per_commit: int = 1) -> list[float]:
    """``rate`` commits a second of ``per_commit`` rows each for ``seconds``; the time of
    each commit."""
    rows = series_rows((int(rate * seconds) + 1) * per_commit, 12)
    sql = f"INSERT INTO mlops.model_performance ({COLUMNS}) VALUES ({', '.join(['%s'] * 10)})"
    commits: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            due = start + len(commits) / rate
            if now < due:
                time.sleep(due - now)
            lo = len(commits) * per_commit
            if per_commit == 1:
                conn.execute(sql, rows[lo])
            else:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, rows[lo:lo + per_commit])
            commits.append(time.perf_counter())
    return commits


def preload(url: str, n_series: int, per_series: int = 10) -> int:
    """``per_series`` rows for each of ``n_series`` other (tenant, function) series, over
    50 tenants: the state a processor holds beside the measured traffic."""
    keys = [(f"tenant-{s % 50}", f"held-{s}", MODELS[s % 5], "control")
            for s in range(n_series)]
    values = series_rows(n_series * per_series, 1)
    copy_in(url, [(*keys[i % n_series], *v[4:]) for i, v in enumerate(values)])
    return len(values)


def run(pg: EmbeddedPostgres, rate: float, seconds: float, held: int = 0,
        per_commit: int = 1) -> dict[str, Any]:
    name = f"inprocess_{int(rate)}_{held}_{per_commit}_{next(_RUNS)}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE postgres")
    url = pg.url_for(name)
    backlog = preload(url, held) if held else 0
    service = Service(load_settings(database_url=url, metrics_host="127.0.0.1",
                                    metrics_port=free_port()))
    steps: list[tuple[float, float, Any]] = []
    jobs: list[tuple[float, float, Any]] = []
    consumer = service.consumer
    consumer.step = _timed(steps, consumer.step)  # type: ignore[method-assign]
    consumer.run_jobs = _timed(jobs, consumer.run_jobs)  # type: ignore[method-assign]
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    time.sleep(2)  # opened, restored, listening
    deadline = time.monotonic() + 120
    while service.status.events_total < backlog and time.monotonic() < deadline:
        time.sleep(0.1)  # the held series consumed first
    # ... and fed to the drift detectors by the drift job (every 10 s), so that what is
    # measured is the steady state, not that job's catch-up competing for the GIL.
    time.sleep(DriftMonitor.EVERY_SECONDS + 2 if backlog else 1)
    # The same traffic first, unmeasured: a fresh processor spends its first tens of
    # seconds of traffic learning (drift references and thresholds, the first model
    # cards) on threads that compete with the batches for the GIL.
    warm = backlog + len(commit_rows(url, rate, WARM_UP_SECONDS, per_commit)) * per_commit
    while service.status.events_total < warm and time.monotonic() < deadline + 60:
        time.sleep(0.01)  # every warm-up row counted: the next batch holds measured ones
    steps.clear()
    jobs.clear()
    commits = commit_rows(url, rate, seconds, per_commit)
    time.sleep(1)
    service.request_stop()
    thread.join(15)
    # The batch that counted commit k is the first whose cumulative row count reaches
    # (k + 1) x per_commit (one writer: rows are consumed in commit order). Matching by time instead
    # would miss a batch that the notification started before the writer's thread got
    # the GIL back to note the commit's time.
    busy = [(t, t + d, n) for t, d, n in sorted(steps) if n]
    counted = list(itertools.accumulate(n for *_, n in busy))
    to_start, to_end = [], []
    for k in range(int(rate), len(commits)):
        i = bisect.bisect_left(counted, (k + 1) * per_commit)
        if i < len(busy):
            to_start.append(busy[i][0] - commits[k])
            to_end.append(busy[i][1] - commits[k])
    walls = [d for _, d, n in steps if n]
    return {
        "rate_commits_per_s": rate, "rows_per_commit": per_commit, "held_series": held,
        "commits": len(commits),
        "achieved_commits_per_s": round(len(commits) / (commits[-1] - commits[0]), 1),
        "batches_with_rows": len(busy),
        "rows_per_batch": round(sum(n for *_, n in steps if n) / max(1, len(busy)), 2),
        "commit_to_counted_ms": {"p50": _ms(to_end, 0.5), "p90": _ms(to_end, 0.9),
                                 "p99": _ms(to_end, 0.99), "max": _ms(to_end, 1.0)},
        # Negative: the batch started before the writer noted the commit's time.
        "commit_to_batch_start_ms": {"p50": _ms(to_start, 0.5), "p99": _ms(to_start, 0.99),
                                     "min": _ms(to_start, 0.0)},
        "batch_wall_ms": {"p50": _ms(walls, 0.5), "p99": _ms(walls, 0.99)},
        "jobs_ms": {"p50": _ms([d for _, d, _ in jobs], 0.5),
                    "p99": _ms([d for _, d, _ in jobs], 0.99),
                    "max": _ms([d for _, d, _ in jobs], 1.0)},
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100,1000")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--held-series", type=int, default=0,
                    help="other series the processor holds (10 rows each, consumed first)")
    ap.add_argument("--rows-per-commit", type=int, default=1)
    ap.add_argument("--out", default="inprocess_latency")
    args = ap.parse_args()
    pg = start_server()
    try:
        result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "runs": [run(pg, float(r), args.seconds, args.held_series,
                               args.rows_per_commit) for r in args.rates.split(",")]}
    finally:
        pg.stop()
    report(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
