"""Cost analysis per function, as the original guide's monitor offers it:

>>> monitor = CostMonitor(os.environ["DATABASE_URL"])                # doctest: +SKIP
>>> for function, m in (await monitor.analyze_costs()).items():     # doctest: +SKIP
...     print(f"{function}: ${m.total_cost:.4f} ({m.request_count} requests)")

Read from the hourly roll-ups (mlops.cost_tracking), so it is cheap and exact.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import psycopg

from stream_mlops.db.connect import connect
from stream_mlops.db.queries import q


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


class CostMonitor:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def analyze_costs_sync(self, days: int = 1) -> dict[str, FunctionCosts]:
        with connect(self.database_url) as conn:
            return analyze(conn, days)

    async def analyze_costs(self, days: int = 1) -> dict[str, FunctionCosts]:
        return await asyncio.to_thread(self.analyze_costs_sync, days)


def render(costs: dict[str, FunctionCosts], fmt: str) -> str:
    rows = [asdict(c) for c in costs.values()]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(FunctionCosts.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    lines = [f"{'tenant/function':40s} {'cost USD':>12s} {'requests':>10s} {'USD/request':>12s}"
             f" {'trend':>8s}"]
    for key, c in costs.items():
        per = f"{c.cost_per_request:.6f}" if c.cost_per_request is not None else "-"
        trend = f"{c.trend:+.0%}" if c.trend is not None else "new"
        lines.append(f"{key:40s} {c.total_cost:12.4f} {c.request_count:10d} {per:>12s} "
                     f"{trend:>8s}")
    return "\n".join(lines)
