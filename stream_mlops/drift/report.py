"""On-demand drift report, as the original guide's detector offers it::

    detector = DataDriftDetector()                    # DATABASE_URL
    for r in await detector.detect_all_drift():
        if r.drift_detected:
            print(r.function_name, r.metric_name, r.p_value, r.threshold)

Each function's last ``current_hours`` are compared with the ``reference_days`` before
them using the guide's tests (KS, Mann-Whitney U, Anderson-Darling for numbers,
chi-square for error flags and categories), each with an effect size: a verdict needs a
small p-value *and* a meaningful effect (see ``stream_mlops.stats.drift.compare_windows``).
The live processor does this continuously (``mlops.drift_detection``); this is the
batch form, for reports and notebooks.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from psycopg.rows import class_row, dict_row

from stream_mlops.db.connect import connect
from stream_mlops.db.queries import q
from stream_mlops.errors import ConfigError
from stream_mlops.stats.drift import TestResult, compare_windows


@dataclass(frozen=True)
class DriftResult(TestResult):
    """One test of one function's metric: the test's numbers and where they come from."""

    tenant_id: str = ""
    function_name: str = ""
    metric_name: str = ""


@dataclass(frozen=True)
class Window:
    """One function's rows in a time range, column-wise (``drift_window``)."""

    latency_ms: list[float] | None
    query_length: list[float] | None
    confidence: list[float] | None
    cost_pico: list[int] | None
    is_error: list[bool] | None
    error_type: list[str] | None
    model: list[str] | None
    rows: int

    def values(self) -> dict[str, Any]:
        """Each metric's values, as the two-sample tests take them."""
        query_a, conf_a, cost_a = (np.array(v or [], np.float64)
                                   for v in (self.query_length, self.confidence, self.cost_pico))
        err = self.is_error or []
        return {
            "latency": np.array(self.latency_ms or [], np.float64),
            "query_length": query_a[query_a >= 0], "confidence": conf_a[conf_a >= 0],
            "cost_per_request": cost_a[cost_a >= 0] / 1e12,
            "error_rate": np.array(err, np.bool_).astype(np.int8),
            "error_type": [t for t, e in zip(self.error_type or [], err, strict=True) if e],
            "model": list(self.model or []),
        }


KIND = {"latency": "numeric", "query_length": "numeric", "confidence": "numeric",
        "cost_per_request": "numeric", "error_rate": "binary", "error_type": "categorical",
        "model": "categorical"}


class DataDriftDetector:
    def __init__(self, database_url: str | None = None, *, alpha: float = 0.01,
                 min_effect: float | None = None, max_rows: int = 5000) -> None:
        url = database_url or os.environ.get("DATABASE_URL")
        if not url:
            raise ConfigError("DATABASE_URL is not set (or pass database_url)")
        self.database_url = url
        self.alpha, self.min_effect, self.max_rows = alpha, min_effect, max_rows

    def detect_all_drift_sync(self, *, current_hours: float = 1.0, reference_days: float = 7.0,
                              now: datetime | None = None) -> list[DriftResult]:
        end = now or datetime.now(UTC)
        start = end - timedelta(hours=current_hours)
        ref_start = start - timedelta(days=reference_days)
        out: list[DriftResult] = []
        with connect(self.database_url) as conn:
            functions = conn.cursor(row_factory=dict_row).execute(
                q("drift_functions"), {"since": start}).fetchall()
            for f in functions:
                tenant, function = f["tenant_id"], f["function_name"]
                windows = []
                for a, b in ((ref_start, start), (start, end)):
                    w = conn.cursor(row_factory=class_row(Window)).execute(q("drift_window"), {
                        "tenant": tenant, "function": function, "start": a, "end": b,
                        "limit": self.max_rows}).fetchone()
                    windows.append(w.values() if w is not None and w.rows else None)
                ref, cur = windows
                if ref is None or cur is None:
                    continue
                for metric, kind in KIND.items():
                    if len(ref[metric]) < 20 or len(cur[metric]) < 20:
                        continue
                    for r in compare_windows(ref[metric], cur[metric], kind,  # type: ignore[arg-type]
                                             alpha=self.alpha, min_effect=self.min_effect):
                        out.append(DriftResult(**asdict(r), tenant_id=tenant,
                                               function_name=function, metric_name=metric))
        return out

    async def detect_all_drift(self, *, current_hours: float = 1.0,
                               reference_days: float = 7.0) -> list[DriftResult]:
        return await asyncio.to_thread(self.detect_all_drift_sync, current_hours=current_hours,
                                       reference_days=reference_days)
