"""Hygiene of the feature store in the processor: freshness, write rate, missing values on
online reads, staleness and drift of every defined feature (a monitor: rows in, alarms out).

Feature writes wake the processor like requests do (``feature_store_notify``); a job on the
consumer's thread reads the values and online reads written since its cursor (``(xid, id)``
of transactions that have all ended, so none can commit behind it), saves the cursor with
the per-feature statistics in one statement, then feeds the values to the drift detectors
of ``stream_mlops.stats`` (numbers: numeric, bools: binary, strings: categorical; vectors
are not watched).

* **Freshness**: ``mlops_feature_freshness_seconds``, the age of the newest event time.
* **Staleness**: a feature whose writes stop for longer than ``stale_factor`` times its
  usual interval (the median of its last gaps between writes, at least
  ``min_stale_seconds``) fires ``feature:stale:<entity type>:<name>``; the next write
  resolves it.
* **Drift**: a detector's alarm is confirmed by the two-sample tests of its recent values
  against its reference (as in ``stream_mlops.drift``) before
  ``feature:drift:<entity type>:<name>`` fires; the detector then learns the new level and
  the alert resolves after ``quiet_seconds`` without another confirmed drift.

Alerts have the type ``feature``: the drift monitor restores and resolves only its own type,
so no alert is handled twice. Detector state is not persisted: after a restart each
detector learns a new reference from the values written next (counts, last write times
and the usual intervals are restored).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stream_mlops.core.alerts import AlertChange, AlertKey, Episodes, alert_change
from stream_mlops.core.batch import Batch
from stream_mlops.core.monitor import NOTHING, Job, MetricsBuilder, Monitor, Observed, Store
from stream_mlops.core.rows import OpenAlertRow
from stream_mlops.stats.drift import Detector, Kind, compare_windows, make_detector

FeatureKey = tuple[str, str, str]  # tenant, entity type, feature
KIND_OF: dict[str, Kind] = {"float": "numeric", "int": "numeric", "bool": "binary",
                            "string": "categorical"}
GAPS_KEPT = 32
MIN_GAPS = 3
LABELS = ["tenant", "entity_type", "feature"]


@dataclass(frozen=True)
class FeatureDefRow:
    """A definition as the monitor needs it (``feature_definitions_all``)."""

    tenant_id: str
    entity_type: str
    name: str
    value_type: str
    ttl_seconds: float | None


@dataclass(frozen=True)
class CursorRow:
    """Where the monitor read to (``feature_cursors``, ``feature_cursor_start``)."""

    last_xid: str
    last_id: int
    source: str = ""


@dataclass(frozen=True)
class ValueRow:
    """A value written since the cursor (``feature_values_since``)."""

    xid: str
    id: int
    tenant_id: str
    entity_type: str
    feature_name: str
    value: Any
    event_time: float
    created_at: float


@dataclass(frozen=True)
class ReadRow:
    """An online read since the cursor (``feature_reads_since``)."""

    xid: str
    id: int
    tenant_id: str
    entity_type: str
    names: list[str]
    entities: int
    missing: list[int]
    read_at: float


@dataclass(frozen=True)
class StatsRow:
    """A feature's persisted statistics (``feature_stats_rows``)."""

    tenant_id: str
    entity_type: str
    feature_name: str
    writes_total: int
    reads_total: int
    missing_total: int
    last_event_time: float | None
    last_write_at: float | None
    gaps: list[float]


@dataclass(frozen=True)
class FeatureStats:
    """What the monitor knows of one feature; replaced whole, never changed in place, so a
    job's update can be computed before it is saved and applied only after."""

    writes_total: int = 0
    reads_total: int = 0
    missing_total: int = 0
    last_event_time: float | None = None
    last_write_at: float | None = None
    gaps: tuple[float, ...] = ()

    @property
    def usual_interval(self) -> float | None:
        """The median gap between writes, once ``MIN_GAPS`` are known."""
        return statistics.median(self.gaps) if len(self.gaps) >= MIN_GAPS else None

    def written(self, event_times: Sequence[float], write_times: Sequence[float]
                ) -> FeatureStats:
        """After ``len(event_times)`` values written at ``write_times`` (one time per
        transaction, so a batch is one write)."""
        gaps = list(self.gaps)
        last = self.last_write_at
        for t in sorted(set(write_times)):
            if last is not None and t > last:
                gaps.append(t - last)
            last = t if last is None else max(last, t)
        newest = max(event_times)
        return replace(self, writes_total=self.writes_total + len(event_times),
                       last_event_time=newest if self.last_event_time is None
                       else max(self.last_event_time, newest),
                       last_write_at=last, gaps=tuple(gaps[-GAPS_KEPT:]))

    def read(self, lookups: int, missing: int) -> FeatureStats:
        return replace(self, reads_total=self.reads_total + lookups,
                       missing_total=self.missing_total + missing)


@dataclass
class _Drift:
    detector: Detector
    kind: Kind
    confirmed_at: float | None = None
    drifts_total: int = 0


@dataclass
class FeatureMonitor(Monitor):
    """Freshness, staleness, online misses and drift of every defined feature."""

    name = "features"

    stale_factor: float = 5.0
    min_stale_seconds: float = 60.0
    quiet_seconds: float = 3600.0
    reference_size: int = 500
    false_alarm_rate: float = 1e-4
    alpha: float = 0.01
    every_seconds: float = 1.0
    limit: int = 50_000  # rows read per run: a bulk load is taken in steps
    types: dict[FeatureKey, str] = field(default_factory=dict)
    stats: dict[FeatureKey, FeatureStats] = field(default_factory=dict)
    drift: dict[FeatureKey, _Drift] = field(default_factory=dict)
    cursors: dict[str, CursorRow] = field(default_factory=dict)
    episodes: Episodes = field(default_factory=Episodes)
    runs_total: int = 0

    # -- the contract -------------------------------------------------------------------
    def restore(self, store: Store) -> None:
        self.configure(store)
        found = {r.source: r for r in store.rows("feature_cursors", CursorRow)}
        if {"values", "reads"} <= set(found):
            self.cursors = found
        else:  # never ran: start after what is written now
            (start,) = store.rows("feature_cursor_start", CursorRow)
            self.cursors = {"values": start, "reads": start}
        for r in store.rows("feature_stats_rows", StatsRow):
            self.stats[(r.tenant_id, r.entity_type, r.feature_name)] = FeatureStats(
                r.writes_total, r.reads_total, r.missing_total, r.last_event_time,
                r.last_write_at, tuple(r.gaps))
        for a in store.rows("open_alerts", OpenAlertRow, type="feature"):
            key = _key_of(a.fingerprint, a.tenant_id)
            if key is None:
                store.report(f"open alert {a.tenant_id}/{a.fingerprint!r} is not one the "
                             "feature monitor raises; left as it is")
                continue
            self.episodes.open.add(AlertKey(a.tenant_id, a.fingerprint))
            if a.fingerprint.startswith("feature:drift:"):
                # Resolves after a quiet period from now, as the drift monitor's do.
                d = self._drift_of(key)
                if d is not None:
                    d.confirmed_at = store.now

    def configure(self, store: Store) -> None:
        self.types = {(d.tenant_id, d.entity_type, d.name): d.value_type
                      for d in store.rows("feature_definitions_all", FeatureDefRow)}

    def observe(self, batch: Batch) -> Observed:
        return NOTHING  # feature values are not requests: the job reads them

    def jobs(self) -> Sequence[Job]:
        return (Job("features", self.every_seconds, self.run),)

    def evaluate(self, now: float) -> list[AlertChange]:
        wanted: set[AlertKey] = set()
        fired: list[AlertChange] = []
        for key, s in self.stats.items():
            limit = self.stale_limit(s)
            if limit is not None and s.last_write_at is not None \
                    and now - s.last_write_at > limit:
                k = AlertKey(key[0], _fingerprint("stale", key))
                wanted.add(k)
                if k not in self.episodes.open:
                    fired.append(self._stale_alert(k, key, s, now, limit))
        for key, d in self.drift.items():
            if d.confirmed_at is not None and now - d.confirmed_at < self.quiet_seconds:
                wanted.add(AlertKey(key[0], _fingerprint("drift", key)))
        # Drift alerts fire in run(), and stay open while wanted.
        return self.episodes.settle(wanted, fired, self._resolved)

    def stale_limit(self, s: FeatureStats) -> float | None:
        """Seconds without a write after which a feature is stale (None: not known yet)."""
        usual = s.usual_interval
        return None if usual is None else max(self.stale_factor * usual,
                                              self.min_stale_seconds)

    # -- the job ------------------------------------------------------------------------
    def run(self, store: Store) -> list[AlertChange]:
        """Read what was written and read since the cursor, save the cursor and the
        statistics (one statement), then feed the drift detectors."""
        values = store.rows("feature_values_since", ValueRow, limit=self.limit,
                            last_xid=self.cursors["values"].last_xid,
                            last_id=self.cursors["values"].last_id)
        reads = store.rows("feature_reads_since", ReadRow, limit=self.limit,
                           last_xid=self.cursors["reads"].last_xid,
                           last_id=self.cursors["reads"].last_id)
        self.runs_total += 1
        if not values and not reads:
            return []
        changed = self.folded(values, reads)
        cursors = dict(self.cursors)
        if values:
            cursors["values"] = CursorRow(values[-1].xid, values[-1].id, "values")
        if reads:
            cursors["reads"] = CursorRow(reads[-1].xid, reads[-1].id, "reads")
        store.execute("save_feature_state", values_xid=cursors["values"].last_xid,
                      values_id=cursors["values"].last_id,
                      reads_xid=cursors["reads"].last_xid, reads_id=cursors["reads"].last_id,
                      stats=[_stats_json(k, s) for k, s in changed.items()])
        # Saved: only now does the memory move (a failed save leaves it as it was, and the
        # same rows are read again).
        self.cursors = cursors
        self.stats.update(changed)
        return self._feed(values, store.now)

    def folded(self, values: Sequence[ValueRow], reads: Sequence[ReadRow]
               ) -> dict[FeatureKey, FeatureStats]:
        """The statistics of the features these rows change (pure)."""
        by_key: dict[FeatureKey, tuple[list[float], list[float]]] = {}
        for v in values:
            ev, wr = by_key.setdefault((v.tenant_id, v.entity_type, v.feature_name), ([], []))
            ev.append(v.event_time)
            wr.append(v.created_at)
        out = {k: self.stats.get(k, FeatureStats()).written(ev, wr)
               for k, (ev, wr) in by_key.items()}
        for r in reads:
            for name, missing in zip(r.names, r.missing, strict=False):
                k = (r.tenant_id, r.entity_type, name)
                out[k] = out.get(k, self.stats.get(k, FeatureStats())).read(r.entities, missing)
        return out

    def _drift_of(self, key: FeatureKey) -> _Drift | None:
        d = self.drift.get(key)
        if d is None:
            kind = KIND_OF.get(self.types.get(key, ""))
            if kind is None:
                return None
            d = self.drift[key] = _Drift(make_detector(
                kind, reference_size=self.reference_size,
                false_alarm_rate=self.false_alarm_rate), kind)
        return d

    def _feed(self, values: Sequence[ValueRow], now: float) -> list[AlertChange]:
        by_key: dict[FeatureKey, list[Any]] = {}
        for v in values:
            by_key.setdefault((v.tenant_id, v.entity_type, v.feature_name), []).append(
                int(v.value) if isinstance(v.value, bool) else v.value)
        changes = []
        for key, raw in by_key.items():
            d = self._drift_of(key)
            if d is None:
                continue
            xs = ([float(x) for x in raw if isinstance(x, (int, float))]
                  if d.kind == "numeric" else
                  [x for x in raw if isinstance(x, str)] if d.kind == "categorical" else raw)
            if not xs or not _alarmed(d.detector, xs):
                continue
            ref, cur = d.detector.reference_sample(), d.detector.recent_sample()
            if len(ref) < 20 or len(cur) < 20:
                continue
            confirmed = [r for r in compare_windows(ref, cur, d.kind, alpha=self.alpha)
                         if r.drift_detected]
            if not confirmed:
                continue
            d.confirmed_at = now
            d.drifts_total += 1
            d.detector.refresh()  # learn the new level
            k = AlertKey(key[0], _fingerprint("drift", key))
            if k in self.episodes.open:
                continue
            self.episodes.open.add(k)
            best = min(confirmed, key=lambda r: r.p_value)
            changes.append(alert_change(
                "fire", k, "feature", rule="feature_drift", severity="warning",
                title=f"Feature {key[1]}.{key[2]} drifted",
                message=f"The values of feature {key[2]!r} (entity type {key[1]!r}) moved "
                        f"away from their reference: {best.test_name} p = "
                        f"{best.p_value:.2g}, effect size {best.effect_size:.3g}.",
                value=best.effect_size, threshold=best.threshold,
                details={"entity_type": key[1], "feature": key[2],
                         "tests": {r.test_name: r.p_value for r in confirmed}}))
        return changes

    # -- alerts -------------------------------------------------------------------------
    def _stale_alert(self, k: AlertKey, key: FeatureKey, s: FeatureStats, now: float,
                     limit: float) -> AlertChange:
        assert s.last_write_at is not None
        age = now - s.last_write_at
        return alert_change(
            "fire", k, "feature", rule="feature_stale", severity="warning",
            title=f"Feature {key[1]}.{key[2]} is stale",
            message=f"No value of feature {key[2]!r} (entity type {key[1]!r}) was written for "
                    f"{age:.0f} s; it is usually written every {s.usual_interval:.3g} s "
                    f"(stale after {limit:.0f} s).",
            value=age, threshold=limit,
            details={"entity_type": key[1], "feature": key[2]})

    def _resolved(self, k: AlertKey) -> AlertChange:
        kind, entity_type, feature = k.fingerprint.split(":", 1)[1].split(":", 2)
        why = ("Values are written again." if kind == "stale" else
               f"No drift confirmed for {self.quiet_seconds:.0f} s.")
        return alert_change("resolve", k, "feature", rule=f"feature_{kind}",
                            title=f"Feature {entity_type}.{feature}: resolved", message=why,
                            details={"entity_type": entity_type, "feature": feature})

    # -- metrics ------------------------------------------------------------------------
    def metrics(self, now: float) -> MetricsBuilder:
        stats = list(self.stats.items())
        drift = [(k, d.drifts_total, d.confirmed_at is not None
                  and now - d.confirmed_at < self.quiet_seconds) for k, d in self.drift.items()]
        stale = {(k.tenant_id, *k.fingerprint.split(":", 3)[2:]) for k in self.episodes.open
                 if k.fingerprint.startswith("feature:stale:")}
        limits = {k: self.stale_limit(s) for k, s in stats}
        return lambda: self._families(now, stats, drift, stale, limits)

    @staticmethod
    def _families(now: float, stats: list[tuple[FeatureKey, FeatureStats]],
                  drift: list[tuple[FeatureKey, int, bool]], stale: set[tuple[str, ...]],
                  limits: dict[FeatureKey, float | None]) -> Iterator[Metric]:
        fresh = GaugeMetricFamily(
            "mlops_feature_freshness_seconds",
            "Age of the newest event time written for the feature.", labels=LABELS)
        writes = CounterMetricFamily(
            "mlops_feature_writes", "Values written (a rewrite of the same value is not "
            "counted).", labels=LABELS)
        since = GaugeMetricFamily(
            "mlops_feature_last_write_age_seconds",
            "Seconds since a value of the feature was last written.", labels=LABELS)
        usual = GaugeMetricFamily(
            "mlops_feature_write_interval_seconds",
            "The feature's usual interval between writes (median of the recent gaps).",
            labels=LABELS)
        stale_g = GaugeMetricFamily(
            "mlops_feature_stale", "1 while the feature's staleness alert is open.",
            labels=LABELS)
        reads = CounterMetricFamily(
            "mlops_feature_online_lookups", "Entity values asked for by online reads.",
            labels=LABELS)
        missing = CounterMetricFamily(
            "mlops_feature_online_missing", "Online lookups answered with no value (absent "
            "or expired).", labels=LABELS)
        for key, s in stats:
            labels = list(key)
            if s.last_event_time is not None:
                fresh.add_metric(labels, max(0.0, now - s.last_event_time))
            if s.last_write_at is not None:
                since.add_metric(labels, max(0.0, now - s.last_write_at))
            writes.add_metric(labels, s.writes_total)
            if limits.get(key) is not None and s.usual_interval is not None:
                usual.add_metric(labels, s.usual_interval)
            stale_g.add_metric(labels, 1.0 if key in stale else 0.0)
            reads.add_metric(labels, s.reads_total)
            missing.add_metric(labels, s.missing_total)
        drifted = GaugeMetricFamily(
            "mlops_feature_drift", "1 while a confirmed drift of the feature's values is "
            "recent (its alert is open).", labels=LABELS)
        drifts = CounterMetricFamily(
            "mlops_feature_drifts", "Drifts of the feature's values confirmed by the "
            "detector and the two-sample tests.", labels=LABELS)
        for key, n, on in drift:
            drifted.add_metric(list(key), 1.0 if on else 0.0)
            drifts.add_metric(list(key), n)
        yield from (fresh, since, writes, usual, stale_g, reads, missing, drifted, drifts)


def _alarmed(detector: Detector, xs: list[Any]) -> bool:
    """Feed ``xs``; True if the detector alarmed. The reference is pinned once learnt, so
    an alarm keeps it for the tests to confirm against (a confirmed drift refreshes it)."""
    i = 0
    while detector.warming_up and i < len(xs):
        detector.update(xs[i])
        i += 1
    if i == len(xs):
        return False
    detector.pin()
    return len(detector.update_many(xs[i:])) > 0


def _fingerprint(kind: str, key: FeatureKey) -> str:
    return f"feature:{kind}:{key[1]}:{key[2]}"


def _key_of(fingerprint: str, tenant: str) -> FeatureKey | None:
    parts = fingerprint.split(":", 3)
    if len(parts) != 4 or parts[0] != "feature" or parts[1] not in ("stale", "drift"):
        return None
    return (tenant, parts[2], parts[3])


def _stats_json(key: FeatureKey, s: FeatureStats) -> dict[str, Any]:
    return {"tenant_id": key[0], "entity_type": key[1], "feature_name": key[2],
            "writes_total": s.writes_total, "reads_total": s.reads_total,
            "missing_total": s.missing_total, "last_event_time": s.last_event_time,
            "last_write_at": s.last_write_at, "gaps": list(s.gaps)}
