"""Benchmarks of the core pipeline (issue: core event pipeline). Prints one JSON document.

    .venv/bin/python benchmarks/pipeline.py [--rows 1000000] [--only throughput,latency,...]

Every figure is measured in this run on this machine, next to a reference measured in the
same run: a minimal consumer for throughput, a table without triggers for inserts.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Histogram

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchmarks.common import copy_in, cpu_seconds, report, rss_mb, series_rows, start_server
from stream_mlops.dev.embedded import EmbeddedPostgres
from stream_mlops.pipeline.consumer import Consumer
from stream_mlops.pipeline.listener import CHANNEL
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.status import PipelineStatus
from tests.helpers import ProcessorProcess, http_status, metric_sum, scrape, wait_for

_RUNS = itertools.count()
# A fresh processor spends its first tens of seconds learning: the drift detectors'
# references and thresholds, the first model cards. What it costs at a steady rate is
# measured after that (with 2 s of warm-up, the CPU at 1,000 commits/s read 1.5-2x high).
WARM_UP_SECONDS = 30.0
PROBE_PAUSE = 0.001
_EVENTS = re.compile(rb"^mlops_processor_events_total\{[^}]*\} (\S+)$", re.MULTILINE)


def events_fast(port: int, *, only: bool = False) -> float:
    """mlops_processor_events_total with a regex: the full parser is too slow to poll.

    ``only``: ask /metrics for that family alone (``?name[]=``), so that polling every
    millisecond does not itself load the processor with rendering every series.
    """
    query = "?name[]=mlops_processor_events_total" if only else ""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics{query}", timeout=5) as r:
        m = _EVENTS.search(r.read())
    return float(m.group(1)) if m else -1.0


def new_db(pg: EmbeddedPostgres, name: str) -> str:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE postgres")
    return pg.url_for(name)


def reset_consumer(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM mlops.consumer_checkpoints")
        conn.execute("DELETE FROM mlops.series_totals")


def reference_consumer(url: str) -> float:
    """Minimal consumer: batches of 5,000 by id, one histogram observation per row."""
    hist = Histogram("ref_latency_seconds", "ref", registry=CollectorRegistry())
    t0 = time.perf_counter()
    n, last = 0, 0
    with psycopg.connect(url) as conn:
        while rows := conn.execute(
            "SELECT id, latency_ms FROM mlops.model_performance WHERE id > %s"
            " ORDER BY id LIMIT 5000", (last,), binary=True).fetchall():
            for r in rows:
                hist.observe(r[1] / 1000.0)
            last, n = rows[-1][0], n + len(rows)
    return n / (time.perf_counter() - t0)


def our_consumer(url: str) -> float:
    reset_consumer(url)
    c = Consumer(url, Processor(), PipelineStatus())
    assert c.open()
    t0 = time.perf_counter()
    n = 0
    while k := c.step():
        n += k
    rate = n / (time.perf_counter() - t0)
    c.close()
    return rate


_CATCH_UP = """
import sys, time, psycopg
from stream_mlops.pipeline.consumer import Consumer
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.status import PipelineStatus
url = sys.argv[1]
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("DELETE FROM mlops.consumer_checkpoints")
    conn.execute("DELETE FROM mlops.series_totals")
c = Consumer(url, Processor(), PipelineStatus())
assert c.open()
t0, n = time.perf_counter(), 0
while k := c.step():
    n += k
print(n / (time.perf_counter() - t0))
"""


def catch_up_runs(pg: EmbeddedPostgres, rows: int, *, baseline: str | None, repeat: int
                  ) -> dict[str, Any]:
    """The in-process consumer catching up on ``rows`` preloaded rows over 1,000 series,
    this tree and the baseline alternately, each in a process of its own."""
    url = new_db(pg, f"catch_up_{next(_RUNS)}")
    copy_in(url, series_rows(rows, 1000))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE mlops.model_performance")
    trees = {"this_tree": str(Path.cwd())} | ({"baseline": baseline} if baseline else {})
    runs: dict[str, list[float]] = {who: [] for who in trees}
    for _ in range(repeat):
        for who, code in trees.items():
            out = subprocess.run([sys.executable, "-c", _CATCH_UP, url], cwd=code, check=True,
                                 env={**__import__("os").environ, "PYTHONPATH": code},
                                 capture_output=True, text=True)
            runs[who].append(round(float(out.stdout.split()[-1])))
    return {"rows": rows, "series": 1000,
            **{who: {"rows_per_s_median": statistics.median(r), "runs": r}
               for who, r in runs.items()}}


def bench_throughput(pg: EmbeddedPostgres, rows: int, tmp: Path) -> dict[str, Any]:
    url = new_db(pg, "throughput")
    t0 = time.perf_counter()
    copy_in(url, series_rows(rows, 1000))
    load_s = time.perf_counter() - t0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE mlops.model_performance")
    refs, ours = [], []
    for _ in range(3):
        refs.append(reference_consumer(url))
        ours.append(our_consumer(url))
    ref, our = statistics.median(refs), statistics.median(ours)
    # The real process, from start to caught up, then its memory.
    reset_consumer(url)
    p = ProcessorProcess(url, log_path=tmp / "throughput.log").start()
    t0 = time.perf_counter()
    assert p.proc is not None
    try:
        # /readyz would say "lag too high" until caught up: wait for liveness only.
        wait_for(lambda: http_status(p.port, "/healthz")[0] == 200, 30, "processor up")
        while events_fast(p.port) < rows:
            time.sleep(0.2)
        process_s = time.perf_counter() - t0
        rss = rss_mb(p.proc.pid)
    finally:
        p.stop()
    return {
        "rows": rows, "series": 1000, "copy_load_rows_per_s": round(rows / load_s),
        "reference_events_per_s": round(ref), "processor_events_per_s": round(our),
        "ratio_to_reference": round(our / ref, 3),
        "runs": {"reference": [round(x) for x in refs], "processor": [round(x) for x in ours]},
        "process_start_to_caught_up_s": round(process_s, 2),
        "process_events_per_s_incl_startup": round(rows / process_s),
        "rss_mb_after_catch_up": round(rss, 1),
    }


def _send(url: str, sql: str, rows: list[tuple[Any, ...]], per_commit: int, *, rate: float,
          seconds: float, commits: list[tuple[int, float]]) -> float:
    """Commit ``per_commit`` rows at a time at ``rate`` rows/s; returns the achieved rate."""
    sent = 0
    with psycopg.connect(url, autocommit=True) as conn:
        # One client cannot wait for 1,000 WAL flushes a second on this disk; the row is
        # visible to readers when COMMIT returns either way.
        conn.execute("SET synchronous_commit = off")
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            due = start + sent / rate
            if now < due:
                time.sleep(due - now)
            batch = [rows[(sent + k) % len(rows)] for k in range(per_commit)]
            conn.execute(sql, [v for r in batch for v in r])
            sent += per_commit
            commits.append((sent, time.perf_counter()))
        return sent / (time.perf_counter() - start)


def start_processor(url: str, log: Path, env: dict[str, str], code: str | None
                    ) -> ProcessorProcess:
    """``python -m stream_mlops run``, from ``code`` if given: ``-m`` puts the working
    directory first on sys.path, ahead of PYTHONPATH, so the child starts there."""
    p = ProcessorProcess(url, log_path=log, env=env)
    with contextlib.chdir(code or Path.cwd()):
        return p.start()


def _scrape_loop(port: int, stop: Any, out: Any) -> None:
    """(start, end, events) of back-to-back scrapes of /metrics, in a process of its own so
    the writer's GIL never delays them."""
    seen = []
    while not stop.is_set():
        t0 = time.perf_counter()
        n = events_fast(port, only=True)
        seen.append((t0, time.perf_counter(), n))
        time.sleep(PROBE_PAUSE)
    out.put(seen)


def _floor_loop(url: str, stop: Any, ready: Any, out: Any) -> None:
    """The floor: LISTEN, and on each wake-up one read of the rows after an (xid, id)
    cursor; (read returned at, rows seen in all). One writer commits in xid order, so the
    plain (xid, id) cursor is exact here."""
    seen = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        pgconn = conn.pgconn
        xid, last, n = "0", 0, 0
        ready.set()
        while not stop.is_set():
            if not select.select([pgconn.socket], [], [], 0.1)[0]:
                continue
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                pass
            rows = conn.execute(
                "SELECT xid::text, id FROM mlops.model_performance"
                " WHERE (xid, id) > (%s::xid8, %s) ORDER BY xid, id", (xid, last)).fetchall()
            if rows:
                xid, last = rows[-1]
                n += len(rows)
                seen.append((time.perf_counter(), n))
    out.put(seen)


def _percentiles(lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    return {"p50_ms": round(lat[len(lat) // 2], 2), "p99_ms": round(lat[int(len(lat) * 0.99)], 2),
            "max_ms": round(lat[-1], 2)}


def _latencies(commits: list[tuple[int, float]], seen: list[tuple[float, float]],
               warm: float) -> list[float]:
    """For each commit after ``warm``: ms until the first observation, made after it, that
    counts its rows."""
    lat, j = [], 0
    for n, t in commits:
        while j < len(seen) and (seen[j][1] < n or seen[j][0] < t):
            j += 1
        if j < len(seen) and t >= warm:
            lat.append((seen[j][0] - t) * 1000)
    return lat


def bench_latency(pg: EmbeddedPostgres, rate: int, rows_per_commit: int, seconds: float,
                  tmp: Path, *, code: str | None = None, interval: float | None = None,
                  ) -> dict[str, Any]:
    """COMMIT -> visible on /metrics at ``rate`` rows/s, and the floor in the same run.

    ``code``: run the processor from this source tree (a baseline checkout); ``interval``:
    MIN_BATCH_INTERVAL_SECONDS (None: the default of that code).
    """
    name = f"latency_{rate}_{next(_RUNS)}"
    url = new_db(pg, name)
    env = {"PYTHONPATH": code} if code else {}
    if interval is not None:
        env["MIN_BATCH_INTERVAL_SECONDS"] = str(interval)
    p = start_processor(url, tmp / f"{name}.log", env, code)
    p.wait_ready()
    commits: list[tuple[int, float]] = []  # (cumulative rows, commit returned at)
    mp = multiprocessing.get_context("fork")
    stop, ready, scrapes_q, floor_q = mp.Event(), mp.Event(), mp.Queue(), mp.Queue()
    probes = [mp.Process(target=_scrape_loop, args=(p.port, stop, scrapes_q)),
              mp.Process(target=_floor_loop, args=(url, stop, ready, floor_q))]
    rows = series_rows(int(rate * seconds) + rows_per_commit, 12)
    cols = "tenant_id, function_name, model, variant, latency_ms, prompt_tokens, " \
           "completion_tokens, cached_tokens, confidence, status"
    sql = f"INSERT INTO mlops.model_performance ({cols}) VALUES " + \
        ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * rows_per_commit)
    for pr in probes:
        pr.start()
    try:
        ready.wait(10)
        assert p.proc is not None
        cpu0, t0 = cpu_seconds(p.proc.pid), time.perf_counter()
        achieved = _send(url, sql, rows, rows_per_commit, rate=rate, seconds=seconds,
                         commits=commits)
        cpu = (cpu_seconds(p.proc.pid) - cpu0) / (time.perf_counter() - t0)
        sent = commits[-1][0]
        wait_for(lambda: p.events() >= sent, 60, "drain")
        time.sleep(0.1)
    finally:
        stop.set()
        scrapes, floor = scrapes_q.get(timeout=30), floor_q.get(timeout=30)
        for pr in probes:
            pr.join(10)
        p.stop()
    warm = commits[0][1] + 1.0
    lat = _latencies(commits, [(end, n) for _, end, n in scrapes], warm)
    floor_lat = _latencies(commits, floor, warm)
    return {
        "code": "baseline" if code else "this tree", "target_rows_per_s": rate,
        "achieved_rows_per_s": round(achieved), "rows_per_commit": rows_per_commit,
        "min_batch_interval_s": interval, "commits_measured": len(lat),
        **_percentiles(lat),
        # With the probe scraping back to back: a scrape asks for a batch (freshness.py).
        "processor_cpu_percent_of_one_core": round(100 * cpu, 1),
        "floor": _percentiles(floor_lat),
        "scrape_ms_median": round(statistics.median(e - s for s, e, _ in scrapes) * 1000, 2),
        "scrape_interval_ms_median": round(statistics.median(
            b[1] - a[1] for a, b in itertools.pairwise(scrapes)) * 1000, 2),
    }


def latency_runs(pg: EmbeddedPostgres, rate: int, rows_per_commit: int, seconds: float,
                 tmp: Path, *, baseline: str | None, repeat: int,
                 interval: float | None = None) -> dict[str, Any]:
    """This tree and the baseline (if any) alternately, ``repeat`` times each: medians of
    p50/p99 and every run."""
    runs: dict[str, list[dict[str, Any]]] = {"this_tree": [], "baseline": []}
    for _ in range(repeat):
        runs["this_tree"].append(bench_latency(pg, rate, rows_per_commit, seconds, tmp,
                                               interval=interval))
        if baseline:
            runs["baseline"].append(bench_latency(pg, rate, rows_per_commit, seconds, tmp,
                                                  code=baseline))
    out: dict[str, Any] = {"rate_rows_per_s": rate, "rows_per_commit": rows_per_commit}
    for who, rs in runs.items():
        if rs:
            out[who] = {
                "p50_ms_median": statistics.median(r["p50_ms"] for r in rs),
                "p99_ms_median": statistics.median(r["p99_ms"] for r in rs),
                "p99_ms_runs": [r["p99_ms"] for r in rs],
                "processor_cpu_percent_runs": [r["processor_cpu_percent_of_one_core"]
                                               for r in rs],
                "floor_p50_ms_median": statistics.median(r["floor"]["p50_ms"] for r in rs),
                "floor_p99_ms_median": statistics.median(r["floor"]["p99_ms"] for r in rs),
                "runs": rs}
    return out


def pgbench(pg: EmbeddedPostgres, url: str, script: str, clients: int, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        [str(pg.bindir / "pgbench"), "-n", "-f", f.name, "-c", str(clients), "-j",
         str(clients), "-T", str(seconds), url],
        capture_output=True, text=True, check=True)
    Path(f.name).unlink()
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    assert m, out.stdout
    return float(str(m.group(1)))


def bench_inserts(pg: EmbeddedPostgres, seconds: int) -> dict[str, Any]:
    url = new_db(pg, "inserts")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA bench")
        # Same columns, defaults, constraints and indexes; no triggers.
        conn.execute("CREATE TABLE bench.bare (LIKE mlops.model_performance INCLUDING ALL)")
    cols = "(tenant_id, function_name, model, latency_ms, prompt_tokens, completion_tokens," \
           " confidence)"
    one = "VALUES ('t', 'f', 'gpt-4o-mini', random() * 1000, 500, 100, 0.9);\n"
    many = "SELECT 't', 'f', 'gpt-4o-mini', random() * 1000, 500, 100, 0.9" \
           " FROM generate_series(1, 1000);\n"
    priced = "SELECT 't', 'f', 'gpt-4o-mini', random() * 1000, 500, 100, 0.9, 0.000135" \
             " FROM generate_series(1, 1000);\n"
    priced_cols = cols[:-1] + ", cost_usd)"
    tables = {"bare": "bench.bare", "triggers": "mlops.model_performance"}
    out: dict[str, Any] = {}

    def run(label: str, table: str, body: str, clients: int, rows: int, *,
            columns: str = cols) -> None:
        tps = pgbench(pg, url, f"INSERT INTO {table} {columns} {body}", clients, seconds)
        out[label] = {"commits_per_s": round(tps), "rows_per_s": round(tps * rows)}

    for clients in (2, 8):
        for name, table in tables.items():
            run(f"single_row_{clients}_clients_{name}", table, one, clients, 1)
    for name, table in tables.items():
        run(f"batch_1000_2_clients_{name}", table, many, 2, 1000)
    # A caller that sends cost_usd skips the pricing trigger (WHEN cost_usd IS NULL).
    run("batch_1000_2_clients_bare_with_cost", "bench.bare", priced, 2, 1000,
        columns=priced_cols)
    run("batch_1000_2_clients_triggers_caller_priced", "mlops.model_performance", priced, 2,
        1000, columns=priced_cols)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT mlops.set_notify(false)")
    for clients in (2, 8):
        run(f"single_row_{clients}_clients_poll_only", "mlops.model_performance", one,
            clients, 1)
    run("batch_1000_2_clients_poll_only", "mlops.model_performance", many, 2, 1000)

    def overhead(a: str, b: str) -> float:
        return round(1 - float(out[b]["rows_per_s"]) / float(out[a]["rows_per_s"]), 3)

    out["overhead"] = {
        "single_row_2_clients": overhead("single_row_2_clients_bare",
                                         "single_row_2_clients_triggers"),
        "single_row_8_clients": overhead("single_row_8_clients_bare",
                                         "single_row_8_clients_triggers"),
        "batch_1000_2_clients": overhead("batch_1000_2_clients_bare",
                                         "batch_1000_2_clients_triggers"),
        "batch_1000_2_clients_caller_priced": overhead(
            "batch_1000_2_clients_bare_with_cost", "batch_1000_2_clients_triggers_caller_priced"),
        "single_row_2_clients_poll_only": overhead("single_row_2_clients_bare",
                                                   "single_row_2_clients_poll_only"),
        "single_row_8_clients_poll_only": overhead("single_row_8_clients_bare",
                                                   "single_row_8_clients_poll_only"),
        "batch_1000_2_clients_poll_only": overhead("batch_1000_2_clients_bare",
                                                   "batch_1000_2_clients_poll_only"),
    }
    out["seconds_per_run"] = seconds
    return out


def bench_cpu(pg: EmbeddedPostgres, rate: int, seconds: float, tmp: Path,
              *, code: str | None = None, interval: float | None = None) -> dict[str, Any]:
    """Processor CPU (all its threads) at a steady ``rate`` of single-row commits, scraped
    every 5 s, after WARM_UP_SECONDS of the same traffic; ``code``: run the processor from
    this source tree (a baseline checkout)."""
    name = f"cpu_{next(_RUNS)}"
    url = new_db(pg, name)
    env = {"PYTHONPATH": code} if code else {}
    if interval is not None:
        env["MIN_BATCH_INTERVAL_SECONDS"] = str(interval)
    p = start_processor(url, tmp / f"{name}.log", env, code)
    try:
        p.wait_ready()
        assert p.proc is not None
        rows = series_rows(rate * 10, 12)
        cols = "tenant_id, function_name, model, variant, latency_ms, prompt_tokens, " \
               "completion_tokens, cached_tokens, confidence, status"
        sql = f"INSERT INTO mlops.model_performance ({cols}) VALUES " \
              "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        commits: list[tuple[int, float]] = []
        _send(url, sql, rows, 1, rate=rate, seconds=WARM_UP_SECONDS, commits=commits)
        stop = threading.Event()

        def prometheus_like() -> None:
            while not stop.wait(5.0):
                scrape(p.port)

        th = threading.Thread(target=prometheus_like)
        th.start()
        b0 = metric_sum(scrape(p.port), "mlops_processor_batches_total")
        cpu0, t0 = cpu_seconds(p.proc.pid), time.perf_counter()
        achieved = _send(url, sql, rows, 1, rate=rate, seconds=seconds, commits=commits)
        cpu1, t1 = cpu_seconds(p.proc.pid), time.perf_counter()
        b1 = metric_sum(scrape(p.port), "mlops_processor_batches_total")
        stop.set()
        th.join()
        sent = len(commits)
        wait_for(lambda: p.events() >= sent, 30, "drain")
        text = scrape(p.port)
        events = metric_sum(text, "mlops_processor_events_total")
    finally:
        p.stop()
    return {"code": "baseline" if code else "this tree", "target_rows_per_s": rate,
            "achieved_rows_per_s": round(achieved), "commits": "single-row",
            "seconds": seconds,
            "processor_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
            "events": int(events), "batches_per_s": round((b1 - b0) / (t1 - t0), 1),
            # Everything the process did, divided among its batches.
            "cpu_ms_per_batch": round(1000 * (cpu1 - cpu0) / max(1.0, b1 - b0), 3)}


def cpu_runs(pg: EmbeddedPostgres, rate: int, seconds: float, tmp: Path,
             *, baseline: str | None, repeat: int, interval: float | None = None
             ) -> dict[str, Any]:
    """This tree and the baseline (if any) alternately: the median and every run."""
    runs: dict[str, list[dict[str, Any]]] = {"this_tree": [], "baseline": []}
    for _ in range(repeat):
        runs["this_tree"].append(bench_cpu(pg, rate, seconds, tmp, interval=interval))
        if baseline:
            runs["baseline"].append(bench_cpu(pg, rate, seconds, tmp, code=baseline))
    return {"rate_rows_per_s": rate, "commits": "single-row", "seconds": seconds,
            **{who: {"cpu_percent_median": statistics.median(
                        x["processor_cpu_percent_of_one_core"] for x in r),
                     "cpu_ms_per_batch_median": statistics.median(
                         x["cpu_ms_per_batch"] for x in r),
                     "runs": r}
               for who, r in runs.items() if r}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--only", default="throughput,latency,inserts,cpu")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", help="a checkout of the code to compare with (its processor "
                    "runs from there), e.g. made by `git worktree add --detach /tmp/base main`")
    ap.add_argument("--interval", type=float, help="MIN_BATCH_INTERVAL_SECONDS of this tree's "
                    "processor (default: its default)")
    ap.add_argument("--out", default="pipeline", help="results/NAME.json")
    args = ap.parse_args()
    base = args.baseline
    same: dict[str, Any] = {"baseline": base, "repeat": args.repeat}
    if args.interval is not None:
        same["interval"] = args.interval
    only = set(args.only.split(","))
    pg = start_server()
    tmp = Path(tempfile.mkdtemp(prefix="stream-mlops-bench-logs-"))
    result: dict[str, Any] = {"machine": {"cores": __import__("os").cpu_count()},
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "throughput": lambda: bench_throughput(pg, args.rows, tmp),
        "latency_100": lambda: latency_runs(pg, 100, 1, args.seconds, tmp, **same),
        "latency_1k": lambda: latency_runs(pg, 1000, 1, args.seconds, tmp, **same),
        "latency_10k": lambda: latency_runs(pg, 10000, 100, args.seconds, tmp, **same),
        "catchup": lambda: catch_up_runs(pg, args.rows // 5, baseline=base,
                                         repeat=args.repeat),
        "inserts": lambda: bench_inserts(pg, 8),
        "cpu_1k": lambda: cpu_runs(pg, 1000, 2 * args.seconds, tmp, **same),
    }
    try:
        for name, run in sections.items():
            if name.split("_")[0] in only:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                result[name] = run()
    finally:
        pg.stop("immediate")
        shutil.rmtree(pg.datadir.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    result["baseline"] = base
    report(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
