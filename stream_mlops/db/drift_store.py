"""Drift evidence into ``mlops.drift_detection``."""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from stream_mlops.db.queries import q
from stream_mlops.drift_monitoring import Evidence


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON (and so the table) has no NaN


def write_evidence(conn: psycopg.Connection[Any], evidence: list[Evidence]) -> None:
    conn.execute(q("insert_drift_evidence"), {"rows": Jsonb([{
        "tenant_id": e.tenant_id, "function_name": e.function_name,
        "metric_name": e.metric_name, "test_name": e.result.test_name,
        "statistic": _num(e.result.statistic), "p_value": _num(e.result.p_value),
        "threshold": e.result.threshold, "effect_size": _num(e.result.effect_size),
        "drift_detected": e.result.drift_detected,
        "reference_window": e.reference, "current_window": e.current | {"alarm": e.alarm},
    } for e in evidence])})
