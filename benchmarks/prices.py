"""Pricing at insert and budget checks before a call (issue: ecosystem fit). Prints JSON.

    .venv/bin/python benchmarks/prices.py [--rows 200000] [--checks 20000]

1. Insert cost of the price trigger: rows inserted without a cost (priced by
   ``mlops.price_request``: version, tier, and the alias lookup for names that are not
   priced as sent) against the same rows with a caller-sent cost (no trigger), in the
   same run and server; once with the price table's own names, once with names as
   callers send them (dated, prefixed, one unknown). Plain INSERTs only, so it runs on
   older trees too (``--no-budgets``; docs/benchmarks.md compares them).
2. ``mlops.budget_remaining``: latency percentiles of one call over a connection, with
   3 budgets x 10,000 (tenant, function) rows stored, against ``SELECT 1`` on the same
   connection (the round trip itself); and ``RequestLogger.allow`` from its cache.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report, start_server

NAMES = ("gpt-4o-mini", "gpt-4o-2024-08-06", "openai/gpt-4o", "claude-sonnet-4-5-20250929",
         "claude-3-5-haiku", "gemini-2.5-flash", "o4-mini-2025-04-16", "acme-llm-9")
EXACT = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash")


def insert_rate(url: str, rows: int, names: tuple[str, ...], *,
                priced_by_caller: bool) -> float:
    """Rows per second of 1,000-row INSERT ... SELECT statements naming ``names`` in turn."""
    cost = "0.001" if priced_by_caller else "NULL"
    sql = ("INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
           f" prompt_tokens, completion_tokens, cached_tokens, cost_usd)"
           f" SELECT 'f', (%s::text[])[1 + i %% {len(names)}], 100, 500 + i %% 3000,"
           f" 100, (i %% 3) * 100, {cost}::numeric FROM generate_series(1, 1000) i")
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for _ in range(rows // 1000):
            conn.execute(sql, (list(names),))
        return rows / (time.perf_counter() - t0)


def percentiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100)
    return {"p50_us": round(q[49], 1), "p99_us": round(q[98], 1),
            "mean_us": round(statistics.fmean(samples), 1)}


def timed(conn: psycopg.Connection[Any], sql: str, args: list[tuple[Any, ...]]) -> list[float]:
    out = []
    for a in args:
        t0 = time.perf_counter()
        conn.execute(sql, a).fetchall()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def budget_checks(url: str, checks: int) -> dict[str, Any]:
    rng = random.Random(3)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO mlops.budget_status (tenant_id, function_name, period, period_start,"
            " period_end, budget_usd, spent_usd) SELECT 't' || (i / 10), CASE WHEN i % 10 = 0"
            " THEN '' ELSE 'f' || (i % 10) END, p, now() - interval '1 hour',"
            " now() + interval '1 day', 10, random() * 10"
            " FROM generate_series(0, 9999) i, unnest(ARRAY['day', 'week', 'month']) p")
        conn.execute("ANALYZE mlops.budget_status")
        args = [(f"t{rng.randrange(1000)}", f"f{rng.randrange(1, 10)}") for _ in range(checks)]
        timed(conn, "SELECT * FROM mlops.budget_remaining(%s, %s)", args[:500])  # warm
        budget = timed(conn, "SELECT * FROM mlops.budget_remaining(%s, %s)", args)
        one = timed(conn, "SELECT 1 WHERE %s <> %s", args)
        rows = conn.execute("SELECT count(*) FROM mlops.budget_remaining('t5', 'f5')"
                            ).fetchone()
    from stream_mlops.client import RequestLogger
    lg = RequestLogger(url, tenant_id="t5", budget_cache_seconds=3600)
    lg.allow(0.01, "f5")
    cached = []
    for _ in range(checks):
        t0 = time.perf_counter()
        lg.allow(0.01, "f5")
        cached.append((time.perf_counter() - t0) * 1e6)
    lg.close()
    b, r = percentiles(budget), percentiles(one)
    return {"budget_rows": 30_000, "rows_per_check": rows[0] if rows else 0,
            "budget_remaining": b, "select_1": r,
            "p99_ratio_to_round_trip": round(b["p99_us"] / r["p99_us"], 2),
            "allow_from_cache": percentiles(cached)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--checks", type=int, default=20_000)
    ap.add_argument("--no-budgets", action="store_true",
                    help="insert figures only (for trees without budget checks)")
    args = ap.parse_args()
    pg = start_server()
    try:
        url = pg.url
        # Alternate (ABBA) so drift in the machine's speed does not favour either.
        result: dict[str, Any] = {}
        for label, names in (("exact_names", EXACT), ("names_as_sent", NAMES)):
            rates: dict[str, list[float]] = {"trigger": [], "caller": []}
            for kind in ("trigger", "caller", "caller", "trigger"):
                rates[kind].append(insert_rate(url, args.rows, names,
                                               priced_by_caller=kind == "caller"))
            trig, call = statistics.fmean(rates["trigger"]), statistics.fmean(rates["caller"])
            result[f"insert_rows_per_second_{label}"] = {
                "names": list(names), "priced_by_trigger": round(trig),
                "caller_cost": round(call), "ratio": round(trig / call, 3)}
        if not args.no_budgets:
            result["budget_check"] = budget_checks(url, args.checks)
    finally:
        pg.stop()
        shutil.rmtree(pg.datadir.parent, ignore_errors=True)
    report("prices", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
