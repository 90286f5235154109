"""Series budgets per tenant, watched: a tenant whose new series fold into its
``__other__`` series is told so by an alert of its own, and nobody else is affected.

The folding itself happens in the series index (:class:`~stream_mlops.core.series.
SeriesBudget`); this monitor turns it into an alert per tenant and into metrics.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stream_mlops.core.alerts import AlertChange, AlertKey, Episodes, alert_change
from stream_mlops.core.batch import Batch
from stream_mlops.core.monitor import NOTHING, MetricsBuilder, Monitor, Observed, Store
from stream_mlops.core.rows import OpenAlertRow
from stream_mlops.core.series import SeriesIndex

FINGERPRINT = "pipeline:series_budget"


@dataclass
class SeriesBudgetAlerts(Monitor):
    """One alert per tenant while its new series fold (it resolves after a quiet day)."""

    name = "series_budget"
    quiet_seconds: float = 86400.0
    index: SeriesIndex = field(default_factory=SeriesIndex)

    def __post_init__(self) -> None:
        self.episodes = Episodes()
        self._seen: dict[str, int] = {}  # folds counted at the last batch, per tenant
        self._last: dict[str, float] = {}  # when a tenant last folded a new series

    def restore(self, store: Store) -> None:
        keys = [AlertKey(r.tenant_id, r.fingerprint)
                for r in store.rows("open_alerts", OpenAlertRow, type="pipeline")
                if r.fingerprint == FINGERPRINT]
        self.episodes.open = set(keys)
        self._last = {k.tenant_id: store.now for k in keys}  # a quiet day from now
        self._seen = dict(self.index.folded)

    def observe(self, batch: Batch) -> Observed:
        for tenant, n in self.index.folded.items():
            if n > self._seen.get(tenant, 0):
                self._seen[tenant] = n
                self._last[tenant] = batch.now
        return NOTHING

    def evaluate(self, now: float) -> list[AlertChange]:
        wanted = {AlertKey(t, FINGERPRINT) for t, at in self._last.items()
                  if now - at < self.quiet_seconds}
        fired = [self._fire(k) for k in sorted(wanted - self.episodes.open)]
        return self.episodes.settle(wanted, fired, lambda k: alert_change(
            "resolve", k, "pipeline", rule="series_budget",
            message="No new series over the budget for a day."))

    def _fire(self, key: AlertKey) -> AlertChange:
        tenant = key.tenant_id
        budget = self.index.budget.of(tenant)
        return alert_change(
            "fire", key, "pipeline", rule="series_budget", severity="warning",
            title=f"Series budget of tenant {tenant} reached",
            message=f"Tenant {tenant} has {self.index.tenant_series.get(tenant, 0)} series "
            f"(function, model, variant) and a budget of {budget}: "
            f"{self.index.folded.get(tenant, 0)} new series are counted in its __other__ "
            "series instead (totals stay exact). Raise its budget with a max_series row in "
            "mlops.thresholds, or find the client that sends a new name per request.",
            value=float(self.index.folded.get(tenant, 0)), threshold=float(budget))

    def metrics(self, now: float) -> MetricsBuilder:
        ix = self.index
        rows = [(t, ix.tenant_series.get(t, 0), ix.budget.of(t), ix.folded.get(t, 0))
                for t in sorted(ix.tenant_series.keys() | ix.folded.keys())]
        return lambda: _families(rows)


def _families(rows: Sequence[tuple[str, int, int, int]]) -> Iterator[Metric]:
    series = GaugeMetricFamily("mlops_tenant_series",
                               "Series (function, model, variant) of a tenant within its budget.",
                               labels=["tenant"])
    budget = GaugeMetricFamily("mlops_tenant_series_budget",
                               "How many series the tenant may have before new ones fold.",
                               labels=["tenant"])
    folded = CounterMetricFamily(
        "mlops_tenant_series_folded",
        "New series counted in the tenant's __other__ series because of its budget.",
        labels=["tenant"])
    for tenant, n, b, f in rows:
        series.add_metric([tenant], n)
        budget.add_metric([tenant], b)
        folded.add_metric([tenant], f)
    yield from (series, budget, folded)
