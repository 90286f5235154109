"""Synthetic AI traffic: seeded, reproducible rows for the demo, tests and benchmarks."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

COLUMNS = ("tenant_id", "function_name", "model", "variant", "created_at", "latency_ms",
           "prompt_tokens", "completion_tokens", "cached_tokens", "confidence",
           "query_length", "status", "error_type")

# (model, median latency ms, log-sd)
MODELS = (("gpt-4o-mini", 700.0, 0.5), ("gpt-4o", 1600.0, 0.6), ("claude-3-5-haiku", 900.0, 0.5))
FUNCTIONS = ("summarize", "classify-ticket", "generate-insight", "extract-entities")
ERROR_TYPES = ("Timeout", "RateLimitError", "InvalidResponse")


@dataclass(frozen=True)
class TrafficShape:
    tenants: int = 3
    error_rate: float = 0.02
    functions: tuple[str, ...] = FUNCTIONS


class Traffic:
    """An endless, seeded stream of request rows (tuples in :data:`COLUMNS` order)."""

    def __init__(self, seed: int = 0, shape: TrafficShape | None = None) -> None:
        self.rng = random.Random(seed)
        self.shape = shape or TrafficShape()

    def row(self, now: datetime) -> tuple[Any, ...]:
        r, s = self.rng, self.shape
        fn_i = r.randrange(len(s.functions))
        model, median, sd = MODELS[fn_i % len(MODELS)]
        query_length = int(r.lognormvariate(math.log(400), 0.7))
        prompt = query_length // 4 + r.randint(50, 400)
        cached = prompt // 2 if r.random() < 0.3 else 0
        error = r.random() < s.error_rate
        return (
            f"tenant-{r.randrange(s.tenants)}", s.functions[fn_i], model,
            "treatment" if r.random() < 0.5 else "control", now,
            round(median * r.lognormvariate(0, sd), 2), prompt,
            0 if error else int(r.lognormvariate(math.log(150), 0.6)), cached,
            None if error else round(min(1.0, max(0.0, r.betavariate(8, 2))), 4),
            query_length, "error" if error else "success",
            r.choice(ERROR_TYPES) if error else None,
        )

    def rows(self, n: int, now: datetime | None = None) -> Iterator[tuple[Any, ...]]:
        at = now or datetime.now(UTC)
        for _ in range(n):
            yield self.row(at)


def copy_rows(conn: psycopg.Connection[Any], rows: Iterator[tuple[Any, ...]]) -> int:
    """COPY rows into mlops.model_performance in one transaction; returns the count."""
    n = 0
    with conn.transaction(), conn.cursor() as cur, cur.copy(
        f"COPY mlops.model_performance ({', '.join(COLUMNS)}) FROM STDIN"
    ) as cp:
        for row in rows:
            cp.write_row(row)
            n += 1
    return n


def run(url: str, rate: float, stop: threading.Event, *, seed: int = 0,
        tick_seconds: float = 0.1, counter: list[int] | None = None) -> None:
    """Write about ``rate`` rows per second in small COPY batches until ``stop`` is set."""
    traffic = Traffic(seed)
    with psycopg.connect(url) as conn:
        start, sent = time.monotonic(), 0
        while not stop.is_set():
            due = int((time.monotonic() - start) * rate) - sent
            if due > 0:
                sent += copy_rows(conn, traffic.rows(due))
                if counter is not None:
                    counter[0] = sent
            stop.wait(tick_seconds)
