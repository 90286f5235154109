"""Performance alerts per (tenant, function): windows, rules and lifecycle joined (no I/O).

Every committed batch goes into sliding windows; every function's rules are read once a
second, on the processor's tick (silence resolves alerts too).
See :mod:`stream_mlops.alerts.rules` for the rules and their calibration.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client.core import GaugeMetricFamily, Metric

from stream_mlops.alerts.rules import (
    RULES,
    AlertThresholds,
    Lifecycle,
    OpenAlert,
    Transition,
    Windows,
)
from stream_mlops.alerts.rules import evaluate as read_rules
from stream_mlops.core.alerts import AlertChange, AlertKey, alert_change
from stream_mlops.core.batch import Batch, RawBatch
from stream_mlops.core.families import SeriesFamily
from stream_mlops.core.monitor import MetricsBuilder, Monitor, Observed, Store
from stream_mlops.core.rows import OpenAlertRow, ThresholdRow
from stream_mlops.core.series import SeriesIndex

if TYPE_CHECKING:
    from stream_mlops.settings import Settings

TITLES = {
    "error_rate": "High error rate in {function}",
    "latency_p95": "p95 latency above {latency:g} s in {function}",
    "confidence_mean": "Low confidence in {function}",
}
FUNCTION_LABELS = ("tenant", "function")
METRICS = frozenset({"error_rate", "latency_p95_seconds", "confidence_mean", "min_requests"})


@dataclass
class PerformanceAlerts(Monitor):
    """Error rate, p95 latency and mean confidence per function against thresholds."""

    name = "performance"
    defaults: AlertThresholds = field(default_factory=AlertThresholds)
    window_seconds: float = 60.0
    z: float = 3.09
    cooldown_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, s: Settings) -> PerformanceAlerts:
        return cls(AlertThresholds(error_rate=s.alert_error_rate,
                                   latency_p95_seconds=s.alert_latency_p95_seconds,
                                   confidence_mean=s.alert_confidence,
                                   min_requests=s.alert_min_requests),
                   window_seconds=s.alert_window_seconds,
                   cooldown_seconds=s.alert_cooldown_seconds)

    def __post_init__(self) -> None:
        self.windows = Windows(self.window_seconds, min(5.0, self.window_seconds))
        self.lifecycle = Lifecycle(self.cooldown_seconds)
        self.index = SeriesIndex()
        self.thresholds: list[AlertThresholds] = []
        self.overrides: dict[tuple[str, str | None], dict[str, float]] = {}
        self._latency_limit = np.zeros(0)

    # -- configuration ----------------------------------------------------------------
    def configure(self, store: Store) -> None:
        self.set_overrides(store.rows("alert_thresholds", ThresholdRow))

    def set_overrides(self, rows: Iterable[ThresholdRow]) -> None:
        """Per-function and per-tenant thresholds (mlops.thresholds)."""
        self.overrides = {}
        for r in rows:
            if r.metric in METRICS:
                self.overrides.setdefault((r.tenant_id, r.function_name), {})[r.metric] = r.value
        self.thresholds = []
        self._grow()

    def _thresholds_for(self, key: tuple[str, str]) -> AlertThresholds:
        merged = {**self.overrides.get((key[0], None), {}), **self.overrides.get(key, {})}
        base = self.defaults
        return AlertThresholds(
            error_rate=merged.get("error_rate", base.error_rate),
            latency_p95_seconds=merged.get("latency_p95_seconds", base.latency_p95_seconds),
            confidence_mean=merged.get("confidence_mean", base.confidence_mean),
            min_requests=int(merged.get("min_requests", base.min_requests)))

    def _grow(self) -> None:
        """Thresholds and windows for functions added to the index since last time (a
        function can be known before it has rows here: it reads as an empty window)."""
        keys = self.index.function_keys
        if len(self.thresholds) < len(keys):
            self.thresholds += [self._thresholds_for(k) for k in keys[len(self.thresholds):]]
            self._latency_limit = np.array([t.latency_p95_seconds for t in self.thresholds])
            self.windows.grow(len(keys))

    # -- data -------------------------------------------------------------------------
    def restore(self, store: Store) -> None:
        """Windows from the rows consumed within the window, open episodes from
        mlops.alerts: a restart neither forgets a burst nor re-pages."""
        self.configure(store)
        self.replay(store.consumed(seconds=self.window_seconds))
        rows = store.rows("open_alerts", OpenAlertRow, type="performance")
        ours = [r for r in rows if _rule_of(r.fingerprint) is not None]
        for r in rows:
            if _rule_of(r.fingerprint) is None:
                store.report(f"open alert {r.tenant_id}/{r.fingerprint!r} is not one the "
                             "performance rules fire; left as it is")
        self.load_open(ours)

    def replay(self, rows: RawBatch) -> None:
        if len(rows):
            self._add(self.index.series_of(rows.key), rows)

    def observe(self, batch: Batch) -> Observed:
        # The rules run on the processor's tick (once a second), not per batch: over
        # windows of minutes a second's delay changes no decision, and at 1,000 commits/s
        # reading them per batch was 40 % of a batch's monitor CPU.
        self._add(batch.series, batch.rows)
        return Observed()

    def _add(self, series: np.ndarray[tuple[int], np.dtype[np.int64]], rows: RawBatch) -> None:
        self._grow()
        group = self.index.function[series]
        self.windows.add(group, rows.created_at, errors=rows.is_error.astype(np.int64),
                         slow=(rows.latency_ms / 1000.0 > self._latency_limit[group]).astype(
                             np.int64), confidence=rows.confidence)

    def load_open(self, rows: Iterable[OpenAlertRow]) -> None:
        """Open episodes from mlops.alerts."""
        self.lifecycle.open = {
            AlertKey(r.tenant_id, r.fingerprint): OpenAlert(
                AlertKey(r.tenant_id, r.fingerprint), r.severity, r.notified_at, r.last_seen)
            for r in rows}

    # -- decisions --------------------------------------------------------------------
    def evaluate(self, now: float) -> list[AlertChange]:
        self._grow()
        verdicts = read_rules(self.windows.totals(now), range(len(self.thresholds)),
                              self.thresholds, self.z, open_groups=self._open_functions())
        changes = []
        for v in verdicts:
            tenant, function = self.index.function_keys[v.group]
            t = self.lifecycle.step(AlertKey(tenant, f"performance:{v.rule}:{function}"), v,
                                    now)
            if t is not None:
                changes.append(self._change(t, function))
        return changes

    def _open_functions(self) -> set[int]:
        """The functions with an open alert episode."""
        out = set()
        for key in self.lifecycle.open:
            f = self.index.known_function(key.tenant_id, key.fingerprint.split(":", 2)[2])
            if f is not None:
                out.add(f)
        return out

    def _change(self, t: Transition, function: str) -> AlertChange:
        v = t.verdict
        th = self.thresholds[v.group]
        title = TITLES[v.rule].format(function=function, latency=th.latency_p95_seconds)
        if t.key.tenant_id != "default":
            title += f" (tenant {t.key.tenant_id})"
        message = v.message(self.window_seconds, th.latency_p95_seconds)
        if t.action == "resolve":
            message = f"Resolved: {message}".replace(" is above ", " is no longer above ") \
                .replace(" is below ", " is no longer below ")
        return alert_change(
            t.action, t.key, "performance", rule=v.rule, severity=v.severity, notify=t.notify,
            function=function, title=title, message=message, value=v.value,
            threshold=v.threshold, details={"n": v.n, "value": v.value, "bound": v.bound,
                                            "threshold": v.threshold,
                                            "window_seconds": self.window_seconds})

    def metrics(self, now: float) -> MetricsBuilder:
        firing = [(k, a.severity) for k, a in self.lifecycle.open.items()]
        # thresholds[i] belongs to function_keys[i]; a function added since the last batch
        # has none yet and shows up with the next one. Copied here (two list copies),
        # paired after the lock.
        keys, thresholds = self.index.function_keys[:], self.thresholds[:]
        return lambda: self._families(firing, list(zip(keys, thresholds, strict=False)))

    def _families(self, firing: Sequence[tuple[AlertKey, str]],
                  limits: Sequence[tuple[tuple[str, str], AlertThresholds]]
                  ) -> Iterator[Metric]:
        # Prometheus's rules compare against these, so a per-function threshold in
        # mlops.thresholds moves both the processor's rules and alert_rules.yml.
        name = "mlops_alert_threshold"
        keys = [k for k, _ in limits]
        yield SeriesFamily(
            name, "The threshold each performance rule uses for a function "
            "(mlops.thresholds, else the processor's defaults): error_rate as a ratio, "
            "latency_p95 in seconds, confidence_mean as a mean confidence.", "gauge",
            label_names=FUNCTION_LABELS, keys=keys,
            texts=self.index.function_texts(keys),
            columns=[(name, (("rule", r),)) for r in ("error_rate", "latency_p95",
                                                      "confidence_mean")],
            values=[np.array([getattr(th, f) for _, th in limits], dtype=np.float64)
                    for f in ("error_rate", "latency_p95_seconds", "confidence_mean")])
        active = GaugeMetricFamily(
            "mlops_alert_active",
            "1 for every open performance alert episode of the processor's own rules.",
            labels=["tenant", "function", "rule", "severity"])
        for key, severity in firing:
            _, rule, function = key.fingerprint.split(":", 2)
            active.add_metric([key.tenant_id, function, rule, severity], 1.0)
        yield active


def _rule_of(fingerprint: str) -> str | None:
    """The rule of a performance alert's fingerprint, None if it is not one."""
    parts = fingerprint.split(":", 2)
    ok = len(parts) == 3 and parts[0] == "performance" and parts[1] in RULES and parts[2]
    return parts[1] if ok else None
