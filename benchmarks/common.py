"""Shared pieces of the benchmarks: a private server, bulk loading, process probes."""

from __future__ import annotations

import gc
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from stream_mlops.dev.embedded import EmbeddedPostgres
from stream_mlops.schema import migrate

COLUMNS = ("tenant_id", "function_name", "model", "variant", "latency_ms", "prompt_tokens",
           "completion_tokens", "cached_tokens", "confidence", "status")
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "gemini-2.0-flash", "claude-sonnet-4")


def start_server() -> EmbeddedPostgres:
    """A durable server (fsync on: insert figures must include real commits)."""
    base = Path(tempfile.mkdtemp(prefix="stream-mlops-bench-"))
    pg = EmbeddedPostgres(base / "data").start()
    with psycopg.connect(pg.url) as conn:
        migrate(conn)
    return pg


def series_rows(n: int, n_series: int, seed: int = 0) -> list[tuple[Any, ...]]:
    """``n`` rows spread over ``n_series`` (tenant, function, model, variant) series."""
    rng = random.Random(seed)
    keys = [(f"tenant-{s % 5}", f"fn-{s // 10}", MODELS[s % 5],
             ("control", "treatment")[s // 5 % 2]) for s in range(n_series)]
    out = []
    for _ in range(n):
        k = keys[rng.randrange(n_series)]
        err = rng.random() < 0.02
        prompt = rng.randint(50, 3000)
        out.append((*k, round(rng.lognormvariate(6.5, 0.6), 2), prompt,
                    rng.randint(10, 800), rng.choice((0, 0, 0, prompt // 2)),
                    None if err else round(rng.random(), 3), "error" if err else "success"))
    return out


def copy_in(url: str, rows: list[tuple[Any, ...]], chunk: int = 100_000) -> None:
    with psycopg.connect(url) as conn:
        for lo in range(0, len(rows), chunk):
            with conn.transaction(), conn.cursor() as cur, cur.copy(
                f"COPY mlops.model_performance ({', '.join(COLUMNS)}) FROM STDIN"
            ) as cp:
                for r in rows[lo:lo + chunk]:
                    cp.write_row(r)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


RESULTS = Path(__file__).resolve().parent / "results"


def report(name: str, result: dict[str, Any]) -> None:
    """Print the result as JSON and keep it in benchmarks/results/NAME.json."""
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(text + "\n")


@contextmanager
def collections() -> Iterator[dict[str, Any]]:
    """Garbage collections while the block runs: how many by generation, and how long
    each full one stopped every thread (ms); the dict is filled in as they happen."""
    out: dict[str, Any] = {"collections_by_generation": [0, 0, 0], "full_collection_ms": []}
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        g = info["generation"]
        if phase == "start":
            out["collections_by_generation"][g] += 1
            started[0] = time.perf_counter()
        elif g == 2:
            out["full_collection_ms"].append(round((time.perf_counter() - started[0]) * 1000, 1))

    gc.callbacks.append(on_gc)
    try:
        yield out
    finally:
        gc.callbacks.remove(on_gc)
