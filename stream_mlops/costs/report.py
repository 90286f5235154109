"""Cost analysis per function, as the original guide's monitor offers it, and
recommendations that would lower the bill:

>>> monitor = CostMonitor()          # DATABASE_URL from the environment  # doctest: +SKIP
>>> for function, m in (await monitor.analyze_costs()).items():     # doctest: +SKIP
...     print(f"{function}: ${m.total_cost:.4f} ({m.request_count} requests)")
>>> for r in await monitor.recommendations(days=7):                  # doctest: +SKIP
...     print(f"${r.estimated_monthly_savings_usd:.2f}/month: {r.message}")

The analysis reads the hourly roll-ups (mlops.cost_tracking), so it is cheap and exact.
Recommendations read the last ``days`` of the request log itself (they need error counts,
confidence, variants and prompt-length percentiles) in one read-only snapshot; the rules
are in :mod:`stream_mlops.costs.recommend`. ``render``, ``render_recommendations`` and
``render_report`` print either or both as a table, JSON or CSV.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import pq

from stream_mlops.costs.recommend import (
    DEFAULTS,
    CurrentPrice,
    DecidedExperiment,
    PromptOutliers,
    PromptRepeats,
    Recommendation,
    RecommendConfig,
    UsageSnapshot,
    UsageTotals,
    outlier_bound,
    recommendations,
)
from stream_mlops.db.connect import connect
from stream_mlops.db.queries import q
from stream_mlops.errors import ConfigError


@dataclass(frozen=True)
class FunctionCosts:
    tenant_id: str
    function_name: str
    total_cost: float
    request_count: int
    cost_per_request: float | None
    previous_cost: float
    trend: float | None  # relative change against the previous period of the same length


def analyze(conn: psycopg.Connection[Any], days: int = 1) -> dict[str, FunctionCosts]:
    """Per function (keyed ``tenant/function``): cost and requests over the last ``days``
    and the relative change against the ``days`` before."""
    out = {}
    for tenant, function, cost, n, prev_cost, _prev_n in conn.execute(
            q("cost_by_function"), {"days": days}).fetchall():
        cost_f, prev_f = float(Decimal(cost)), float(Decimal(prev_cost))
        out[f"{tenant}/{function}"] = FunctionCosts(
            tenant, function, cost_f, int(n), cost_f / int(n) if n else None, prev_f,
            (cost_f - prev_f) / prev_f if prev_f else None)
    return out


def _num(value: Any) -> float:
    return float(Decimal(value)) if value is not None else 0.0


@contextmanager
def _one_snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The queries in one read-only REPEATABLE READ transaction: they all see the same rows
    and the same ``now()``. Inside the caller's transaction they share it as it is."""
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def load_snapshot(conn: psycopg.Connection[Any], days: int = 7,
                  config: RecommendConfig = DEFAULTS) -> UsageSnapshot:
    """Read what the recommendation rules need about the last ``days`` days."""
    if days < 1:
        raise ValueError("days must be at least 1")
    with _one_snapshot(conn):
        usage = []
        for (tenant, fn, model, variant, level, n, errors, priced, cost, conf_n, conf_sum,
             conf_sumsq, prompt, cached, pct) in conn.execute(
                 q("rec_usage"), {"days": days}).fetchall():
            p50, p90, p95, p99 = (float(v) for v in pct)
            usage.append(UsageTotals(
                tenant, fn, model if not level & 2 else None,
                variant if not level & 1 else None, int(n), int(errors), _num(cost),
                int(priced), int(conf_n), float(conf_sum), float(conf_sumsq), int(prompt),
                int(cached), p50, p90, p95, p99))
        functions = [u for u in usage if u.model is None and u.variant is None
                     and u.requests >= config.min_requests]
        bounds = [(u, b) for u in functions if (b := outlier_bound(u, config)) is not None]
        outliers = [
            PromptOutliers(tenant, fn, model, int(n), int(tokens))
            for tenant, fn, model, n, tokens in conn.execute(q("rec_prompt_outliers"), {
                "days": days,
                "tenant_id": [u.tenant_id for u, _ in bounds],
                "function_name": [u.function_name for u, _ in bounds],
                "bound": [b for _, b in bounds],
                "p95": [u.prompt_p95 for u, _ in bounds]}).fetchall()]
        repeats = [
            PromptRepeats(tenant, fn, model, int(n), int(rep), int(cacheable), int(first))
            for tenant, fn, model, n, rep, cacheable, first in conn.execute(
                q("rec_prompt_repeats"),
                {"days": days, "min_tokens": config.min_cacheable_tokens,
                 "ttl_seconds": config.cache_ttl_seconds}).fetchall()]
        pairs = sorted({(u.tenant_id, u.model) for u in usage if u.model is not None})
        prices = {
            (tenant, model): CurrentPrice(_num(inp), None if cached is None else _num(cached),
                                   None if write is None else _num(write))
            for tenant, model, inp, cached, write in conn.execute(q("rec_current_prices"), {
                "tenant_id": [t for t, _ in pairs], "model": [m for _, m in pairs]}).fetchall()}
        experiments = [
            DecidedExperiment(tenant, fn, name,
                              tuple(variants) if isinstance(variants, list) else (),
                              results if isinstance(results, dict) else {})
            for tenant, fn, name, variants, results in conn.execute(
                q("rec_experiment_decisions")).fetchall()]
    return UsageSnapshot(float(days), usage, prices, repeats, outliers, experiments)


def recommend(conn: psycopg.Connection[Any], days: int = 7,
              config: RecommendConfig = DEFAULTS) -> list[Recommendation]:
    """Cost-saving recommendations from the last ``days`` days, largest saving first
    (see :mod:`stream_mlops.costs.recommend` for the rules)."""
    return recommendations(load_snapshot(conn, days, config), config)


class CostMonitor:
    """The guide's monitor: ``CostMonitor().analyze_costs()`` and ``.recommendations()``
    (``database_url`` defaults to the ``DATABASE_URL`` environment variable)."""

    def __init__(self, database_url: str | None = None,
                 config: RecommendConfig = DEFAULTS) -> None:
        url = database_url or os.environ.get("DATABASE_URL")
        if not url:
            raise ConfigError("DATABASE_URL is not set: pass CostMonitor(database_url) or"
                              " export DATABASE_URL=postgresql://user@host:5432/db")
        self.database_url = url
        self.config = config

    def analyze_costs_sync(self, days: int = 1) -> dict[str, FunctionCosts]:
        with connect(self.database_url) as conn:
            return analyze(conn, days)

    async def analyze_costs(self, days: int = 1) -> dict[str, FunctionCosts]:
        return await asyncio.to_thread(self.analyze_costs_sync, days)

    def recommendations_sync(self, days: int = 7) -> list[Recommendation]:
        with connect(self.database_url) as conn:
            return recommend(conn, days, self.config)

    async def recommendations(self, days: int = 7) -> list[Recommendation]:
        return await asyncio.to_thread(self.recommendations_sync, days)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(row: dict[str, Any]) -> dict[str, Any]:
    """Text cells a spreadsheet would run as a formula, neutralised as OWASP recommends
    (a leading quote): function and model names come from tenants' rows.

    Examples
    --------
    >>> csv_safe({"function_name": "=HYPERLINK('http://x')", "cost": -1.5})
    {'function_name': "'=HYPERLINK('http://x')", 'cost': -1.5}
    """
    return {k: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
            for k, v in row.items()}


def render(costs: dict[str, FunctionCosts], fmt: str) -> str:
    rows = [asdict(c) for c in costs.values()]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(FunctionCosts.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(map(csv_safe, rows))
        return buf.getvalue()
    lines = [f"{'tenant/function':40s} {'cost USD':>12s} {'requests':>10s} {'USD/request':>12s}"
             f" {'trend':>8s}"]
    for key, c in costs.items():
        per = f"{c.cost_per_request:.6f}" if c.cost_per_request is not None else "-"
        trend = f"{c.trend:+.0%}" if c.trend is not None else "new"
        lines.append(f"{key:40s} {c.total_cost:12.4f} {c.request_count:10d} {per:>12s} "
                     f"{trend:>8s}")
    return "\n".join(lines)


REC_FIELDS = ("tenant_id", "function_name", "kind", "estimated_monthly_savings_usd", "message",
              "evidence")
OVERLAP_NOTE = ("Savings of recommendations for the same function can overlap: they are"
                " alternatives, not a sum.")


def _rec_row(r: Recommendation) -> dict[str, Any]:
    # Evidence is nested: one JSON cell in CSV, so every row has the same columns.
    return {**asdict(r), "evidence": json.dumps(r.evidence, sort_keys=True)}


def render_recommendations(recs: Sequence[Recommendation], fmt: str) -> str:
    """Recommendations as a table, JSON (a list of objects, ``evidence`` nested) or CSV
    (one row each, ``evidence`` as a JSON string)."""
    if fmt == "json":
        return json.dumps([asdict(r) for r in recs], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=REC_FIELDS)
        writer.writeheader()
        writer.writerows(csv_safe(_rec_row(r)) for r in recs)
        return buf.getvalue()
    if not recs:
        return "no recommendations (none would save $0.01/month or more with enough data)"
    lines = [f"{'savings/month':>13s}  {'kind':24s}  {'tenant/function':32s}  recommendation"]
    lines += [f"{'$' + format(r.estimated_monthly_savings_usd, ',.2f'):>13s}  {r.kind:24s}  "
              f"{r.tenant_id + '/' + r.function_name:32s}  {r.message}" for r in recs]
    functions = [(r.tenant_id, r.function_name) for r in recs]
    if len(set(functions)) < len(functions):
        lines.append(OVERLAP_NOTE)
    return "\n".join(lines)


def render_report(costs: dict[str, FunctionCosts], recs: Sequence[Recommendation],
                  fmt: str) -> str:
    """Analysis and recommendations together (for ``stream-mlops costs --recommend``).

    JSON: ``{"functions": [...], "recommendations": [...]}``. CSV: one table, a row per
    (function, recommendation) with the function's cost columns; a function without
    recommendations has one row with empty recommendation columns, and a recommendation
    for a function missing from the analysis has empty cost columns. Table: both tables.
    """
    if fmt == "json":
        return json.dumps({"functions": [asdict(c) for c in costs.values()],
                           "recommendations": [asdict(r) for r in recs]}, indent=2)
    if fmt == "csv":
        cost_fields = list(FunctionCosts.__dataclass_fields__)
        by_function: dict[tuple[str, str], list[Recommendation]] = {}
        for r in recs:
            by_function.setdefault((r.tenant_id, r.function_name), []).append(r)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[*cost_fields, *REC_FIELDS[2:]])
        writer.writeheader()
        for c in costs.values():
            own = by_function.pop((c.tenant_id, c.function_name), [])
            if not own:
                writer.writerow(csv_safe(asdict(c)))
            for r in own:
                writer.writerow(csv_safe({**asdict(c), **_rec_row(r)}))
        for rest in by_function.values():
            for r in rest:
                writer.writerow(csv_safe(_rec_row(r)))
        return buf.getvalue()
    return render(costs, "table") + "\n\n" + render_recommendations(recs, "table")
