"""Rows several monitors read from the database, as dataclasses (columns by name)."""

from __future__ import annotations

from dataclasses import dataclass

from stream_mlops.core.alerts import Severity


@dataclass(frozen=True)
class OpenAlertRow:
    """An open episode of mlops.alerts (``open_alerts``)."""

    tenant_id: str
    fingerprint: str
    severity: Severity
    state: str
    notified_at: float  # unix time of the last message (of the first sighting without one)
    last_seen: float


@dataclass(frozen=True)
class ThresholdRow:
    """A row of mlops.thresholds; ``function_name`` None is the tenant-wide value."""

    tenant_id: str
    function_name: str | None
    metric: str
    value: float
