"""Performance alerts per (tenant, function): windows, rules and lifecycle joined (no I/O).

The processor feeds every committed batch in; :meth:`PerformanceAlerts.evaluate` returns
the alert changes (fire, update, resolve, with or without a notification) that the
consumer then writes to ``mlops.alerts`` and the e-mail outbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_mlops.alerts.rules import (
    F64,
    I64,
    AlertThresholds,
    Lifecycle,
    OpenAlert,
    Transition,
    Windows,
    evaluate,
)

TITLES = {
    "error_rate": "High error rate in {function}",
    "latency_p95": "p95 latency above {latency:g} s in {function}",
    "confidence_mean": "Low confidence in {function}",
}
METRICS = frozenset({"error_rate", "latency_p95_seconds", "confidence_mean", "min_requests"})


@dataclass(frozen=True)
class AlertChange:
    action: str  # fire | update | resolve
    notify: str | None
    tenant_id: str
    function_name: str
    fingerprint: str
    rule: str
    severity: str
    title: str
    message: str
    value: float
    threshold: float
    details: str  # JSON
    alert_type: str = "performance"


@dataclass
class PerformanceAlerts:
    defaults: AlertThresholds = field(default_factory=AlertThresholds)
    window_seconds: float = 60.0
    z: float = 3.09
    cooldown_seconds: float = 3600.0

    def __post_init__(self) -> None:
        self.windows = Windows(self.window_seconds, min(5.0, self.window_seconds))
        self.lifecycle = Lifecycle(self.cooldown_seconds)
        self.groups: dict[tuple[str, str], int] = {}
        self.group_keys: list[tuple[str, str]] = []
        self.thresholds: list[AlertThresholds] = []
        self.overrides: dict[tuple[str, str | None], dict[str, float]] = {}
        self._series_group = np.zeros(0, np.int64)
        self._latency_limit = np.zeros(0)

    # -- configuration ----------------------------------------------------------------
    def set_overrides(self, rows: Iterable[tuple[str, str | None, str, float]]) -> None:
        """Rows of mlops.thresholds: (tenant, function or None, metric, value)."""
        self.overrides = {}
        for tenant, function, metric, value in rows:
            if metric in METRICS:
                self.overrides.setdefault((tenant, function), {})[metric] = value
        self.thresholds = [self._thresholds_for(k) for k in self.group_keys]
        self._latency_limit = np.array([t.latency_p95_seconds for t in self.thresholds])

    def _thresholds_for(self, key: tuple[str, str]) -> AlertThresholds:
        merged = {**self.overrides.get((key[0], None), {}), **self.overrides.get(key, {})}
        base = self.defaults
        return AlertThresholds(
            error_rate=merged.get("error_rate", base.error_rate),
            latency_p95_seconds=merged.get("latency_p95_seconds", base.latency_p95_seconds),
            confidence_mean=merged.get("confidence_mean", base.confidence_mean),
            min_requests=int(merged.get("min_requests", base.min_requests)))

    def _group(self, key: tuple[str, str]) -> int:
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = len(self.group_keys)
            self.group_keys.append(key)
            th = self._thresholds_for(key)
            self.thresholds.append(th)
            self._latency_limit = np.append(self._latency_limit, th.latency_p95_seconds)
        return g

    # -- data -------------------------------------------------------------------------
    def observe(self, series_keys: Sequence[tuple[str, str, str, str]], series: I64, *,
                created_at: F64, latency_ms: F64, is_error: np.ndarray[Any, Any],
                confidence: F64) -> set[int]:
        """Add rows (by series index) to the windows; returns the groups they touched."""
        if len(self._series_group) < len(series_keys):
            extra = [self._group((k[0], k[1])) for k in series_keys[len(self._series_group):]]
            self._series_group = np.append(self._series_group, np.array(extra, np.int64))
            # A series can exist before it has rows here (one seen only in the cost
            # roll-ups at start-up): its group must still read as an empty window.
            self.windows.grow(len(self.group_keys))
        group = self._series_group[series]
        self.windows.add(group, created_at, errors=is_error.astype(np.int64),
                         slow=(latency_ms / 1000.0 > self._latency_limit[group]).astype(
                             np.int64), confidence=confidence)
        return set(np.unique(group).tolist())

    def load_open(self, rows: Iterable[tuple[str, str, str, str, float, float]]) -> None:
        """Open episodes from mlops.alerts: (tenant, fingerprint, severity, state,
        notified_or_first_seen, last_seen)."""
        self.lifecycle.open = {
            f"{tenant}\x1f{fp}": OpenAlert(f"{tenant}\x1f{fp}", severity, notified, last)
            for tenant, fp, severity, _state, notified, last in rows}

    # -- decisions --------------------------------------------------------------------
    def evaluate(self, now: float, groups: Iterable[int] | None = None) -> list[AlertChange]:
        which = list(range(len(self.group_keys))) if groups is None else sorted(groups)
        if not which:
            return []
        verdicts = evaluate(self.windows.totals(now), which, self.thresholds, self.z,
                            self.window_seconds)
        changes = []
        for v in verdicts:
            tenant, function = self.group_keys[v.group]
            fingerprint = f"performance:{v.rule}:{function}"
            t = self.lifecycle.step(f"{tenant}\x1f{fingerprint}", v, now)
            if t is not None:
                changes.append(self._change(t, tenant, function, fingerprint))
        return changes

    def _change(self, t: Transition, tenant: str, function: str,
                fingerprint: str) -> AlertChange:
        v = t.verdict
        th = self.thresholds[v.group]
        title = TITLES[v.rule].format(function=function, latency=th.latency_p95_seconds)
        if tenant != "default":
            title += f" (tenant {tenant})"
        message = v.message if t.action != "resolve" else f"Resolved: {v.message}".replace(
            " is above ", " is no longer above ").replace(" is below ", " is no longer below ")
        details = json.dumps({"n": v.n, "value": v.value, "bound": v.bound,
                              "threshold": v.threshold, "window_seconds": self.window_seconds})
        return AlertChange(t.action, t.notify, tenant, function, fingerprint, v.rule,
                           v.severity, title, message, v.value, v.threshold, details)

    def firing(self) -> list[tuple[str, str]]:
        """(tenant\\x1ffingerprint, severity) of every open episode."""
        return [(k, a.severity) for k, a in self.lifecycle.open.items()]
