"""Benchmarks of the core pipeline (issue: core event pipeline). Prints one JSON document.

    .venv/bin/python benchmarks/pipeline.py [--rows 1000000] [--only throughput,latency,...]

Every figure is measured in this run on this machine, next to a reference measured in the
same run: a minimal consumer for throughput, a table without triggers for inserts.
"""

from __future__ import annotations

import argparse
import itertools
import re
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
from stream_mlops.pipeline.processor import Processor
from stream_mlops.pipeline.status import PipelineStatus
from tests.helpers import ProcessorProcess, http_status, metric_sum, scrape, wait_for

_EVENTS = re.compile(rb"^mlops_processor_events_total\{[^}]*\} (\S+)$", re.MULTILINE)


def events_fast(port: int) -> float:
    """mlops_processor_events_total with a regex: the full parser is too slow to poll."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
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


def our_consumer(url: str, batch_size: int) -> float:
    reset_consumer(url)
    c = Consumer(url, Processor(), PipelineStatus(), batch_size=batch_size)
    assert c.open()
    t0 = time.perf_counter()
    n = 0
    while k := c.step():
        n += k
    rate = n / (time.perf_counter() - t0)
    c.close()
    return rate


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
        ours.append(our_consumer(url, 20000))
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


def bench_latency(pg: EmbeddedPostgres, rate: int, rows_per_commit: int, seconds: float,
                  tmp: Path, *, linger: float = 0.02) -> dict[str, Any]:
    """COMMIT -> visible on /metrics, at ``rate`` rows/s."""
    name = f"latency_{rate}_{int(linger * 1000)}"
    url = new_db(pg, name)
    p = ProcessorProcess(url, log_path=tmp / f"{name}.log",
                         env={"MIN_BATCH_INTERVAL_SECONDS": str(linger)}).start()
    p.wait_ready()
    commits: list[tuple[int, float]] = []  # (cumulative rows, commit returned at)
    seen: list[tuple[float, float]] = []  # (scrape returned at, events)
    stop = threading.Event()

    def scraper() -> None:
        while not stop.is_set():
            seen.append((time.perf_counter(), events_fast(p.port)))
            time.sleep(0.001)

    rows = series_rows(int(rate * seconds) + rows_per_commit, 12)
    cols = "tenant_id, function_name, model, variant, latency_ms, prompt_tokens, " \
           "completion_tokens, cached_tokens, confidence, status"
    sql = f"INSERT INTO mlops.model_performance ({cols}) VALUES " + \
        ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * rows_per_commit)
    th = threading.Thread(target=scraper)
    th.start()
    try:
        achieved = _send(url, sql, rows, rows_per_commit, rate=rate, seconds=seconds,
                         commits=commits)
        sent = commits[-1][0]
        wait_for(lambda: p.events() >= sent, 60, "drain")
        time.sleep(0.05)
    finally:
        stop.set()
        th.join()
        p.stop()
    lat = []
    j = 0
    warm = commits[0][1] + 1.0
    for n, t in commits:
        while j < len(seen) and (seen[j][1] < n or seen[j][0] < t):
            j += 1
        if j < len(seen) and t >= warm:
            lat.append((seen[j][0] - t) * 1000)
    lat.sort()
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    return {
        "target_rows_per_s": rate, "achieved_rows_per_s": round(achieved),
        "rows_per_commit": rows_per_commit, "min_batch_interval_s": linger,
        "commits_measured": len(lat),
        "p50_ms": round(lat[len(lat) // 2], 1), "p99_ms": round(lat[int(len(lat) * 0.99)], 1),
        "max_ms": round(lat[-1], 1),
        "scrape_interval_ms_median": round(statistics.median(gaps) * 1000, 2),
    }


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
              *, linger: float = 0.02) -> dict[str, Any]:
    """Processor CPU at a steady ``rate`` of single-row commits, scraped every 5 s."""
    name = f"cpu_{int(linger * 1000)}"
    url = new_db(pg, name)
    p = ProcessorProcess(url, log_path=tmp / f"{name}.log",
                         env={"MIN_BATCH_INTERVAL_SECONDS": str(linger)}).start()
    try:
        p.wait_ready()
        assert p.proc is not None
        rows = series_rows(rate * 10, 12)
        cols = "tenant_id, function_name, model, variant, latency_ms, prompt_tokens, " \
               "completion_tokens, cached_tokens, confidence, status"
        sql = f"INSERT INTO mlops.model_performance ({cols}) VALUES " \
              "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        commits: list[tuple[int, float]] = []
        _send(url, sql, rows, 1, rate=rate, seconds=2.0, commits=commits)  # warm-up
        stop = threading.Event()

        def prometheus_like() -> None:
            while not stop.wait(5.0):
                scrape(p.port)

        th = threading.Thread(target=prometheus_like)
        th.start()
        cpu0, t0 = cpu_seconds(p.proc.pid), time.perf_counter()
        achieved = _send(url, sql, rows, 1, rate=rate, seconds=seconds, commits=commits)
        cpu1, t1 = cpu_seconds(p.proc.pid), time.perf_counter()
        stop.set()
        th.join()
        sent = len(commits)
        wait_for(lambda: p.events() >= sent, 30, "drain")
        events = metric_sum(scrape(p.port), "mlops_processor_events_total")
    finally:
        p.stop()
    return {"target_rows_per_s": rate, "achieved_rows_per_s": round(achieved),
            "commits": "single-row", "seconds": seconds, "min_batch_interval_s": linger,
            "processor_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
            "events": int(events)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--only", default="throughput,latency,inserts,cpu")
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    only = set(args.only.split(","))
    pg = start_server()
    tmp = Path(tempfile.mkdtemp(prefix="stream-mlops-bench-logs-"))
    result: dict[str, Any] = {"machine": {"cores": __import__("os").cpu_count()},
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "throughput": lambda: bench_throughput(pg, args.rows, tmp),
        "latency_1k": lambda: bench_latency(pg, 1000, 1, args.seconds, tmp),
        "latency_10k": lambda: bench_latency(pg, 10000, 100, args.seconds, tmp),
        "inserts": lambda: bench_inserts(pg, 8),
        "cpu_1k": lambda: bench_cpu(pg, 1000, 2 * args.seconds, tmp),
        # The knob's other end: fewer, larger batches cost less CPU and more latency.
        "latency_1k_linger50": lambda: bench_latency(pg, 1000, 1, args.seconds, tmp, linger=0.05),
        "cpu_1k_linger50": lambda: bench_cpu(pg, 1000, 2 * args.seconds, tmp, linger=0.05),
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
    report("pipeline", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
