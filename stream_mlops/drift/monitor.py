"""Drift of every function's inputs and outputs, live (a monitor: values in, alarms out).

Per (tenant, function): latency, query length, confidence, cost per request (numeric),
the error flag (binary), the mix of error types and of models (categorical), and the
request volume per minute relative to the same hour on the previous days (numeric, once a
day of history exists, so a quiet night is not drift). Latency is fed relative to its hour
of day once whole previous days are known (:mod:`stream_mlops.stats.seasonal`), so a
daily cycle is not drift either; the hourly sums behind both come back from the cost
roll-ups after a restart. Rows are buffered per batch and
fed to the detectors every few seconds by a background job on a thread of its own,
vectorised (costs measured in ``benchmarks/monitoring.py``); the evidence and alert
changes it finds are written on the consumer's thread.

A detector's alarm is a *candidate*. It becomes a drift only when the guide's two-sample
tests of the recent window against the reference (KS, Mann-Whitney U, Anderson-Darling
or chi-square) find a significant difference *and* its effect size is meaningful; then the
alert fires and the detector re-learns its reference from the new data. A candidate the
tests do not confirm leaves the reference in place (the detector's CUSUMs restart).
Evidence is also recorded periodically for every watched metric.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import Metric

from stream_mlops.core.alerts import AlertChange, AlertKey, Episodes, alert_change
from stream_mlops.core.batch import Batch
from stream_mlops.core.families import SeriesFamily
from stream_mlops.core.monitor import (
    NOTHING,
    BackgroundJob,
    MetricsBuilder,
    Monitor,
    Observed,
    Store,
)
from stream_mlops.core.rows import OpenAlertRow
from stream_mlops.core.series import SeriesIndex
from stream_mlops.stats.drift import Detector, TestResult, compare_windows, make_detector
from stream_mlops.stats.rings import REQUESTS_PER_FUNCTION, RequestCounts, RingSums
from stream_mlops.stats.seasonal import day_profile, day_windows

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

KINDS = {"latency": "numeric", "query_length": "numeric", "confidence": "numeric",
         "cost_per_request": "numeric", "error_rate": "binary", "error_type": "categorical",
         "model": "categorical", "volume": "numeric"}
METRICS = tuple(KINDS)


@dataclass(frozen=True)
class ReferenceRow:
    """A row of mlops.drift_references (``drift_references``); metric "*": every one."""

    tenant_id: str
    function_name: str
    metric: str
    pinned: bool
    relearn_from: float | None  # unix time


@dataclass(frozen=True)
class HourRow:
    """An hour of one function from the cost roll-ups (``recent_hourly_latency``)."""

    tenant_id: str
    function_name: str
    hour: int  # unix hours
    requests: int
    latency_ms_sum: float | None  # None: not rolled up for every model of the hour


@dataclass(frozen=True)
class ReferenceControl:
    """What the user decided about a reference (mlops.drift_references)."""

    pinned: bool = False  # keep it after a confirmed drift instead of learning the new level
    relearn_from: float | None = None  # learn a new one from the rows after this time


NO_CONTROL = ReferenceControl()


@dataclass
class DriftRows:
    """One batch's columns for drift (one entry per row)."""

    function: I64  # (tenant, function) index
    created_at: F64
    latency_ms: F64
    query_length: F64  # -1: none
    confidence: F64  # -1: none
    cost_pico: I64  # -1: unpriced
    is_error: npt.NDArray[np.bool_]
    error_type: list[str | None]
    model: I64  # index into the series index's model names


@dataclass(frozen=True)
class Evidence:
    """One stored test: a row of mlops.drift_detection."""

    tenant_id: str
    function_name: str
    metric_name: str
    result: TestResult
    reference: dict[str, Any]
    current: dict[str, Any]
    alarm: bool  # taken because a detector alarmed (else periodic)


@dataclass(slots=True)  # one per (tenant, function)
class _Series:
    detectors: dict[str, Detector] = field(default_factory=dict)
    candidates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    last_minute: int = -1  # last minute fed to the volume detector
    last_periodic: float = 0.0
    confirmed: dict[str, float] = field(default_factory=dict)  # metric -> when
    p_values: dict[tuple[str, str], float] = field(default_factory=dict)
    drifts: dict[str, int] = field(default_factory=dict)
    relearned: dict[str, float] = field(default_factory=dict)  # metric -> request applied
    seasonal: bool = False  # latency is fed relative to its hour of day
    profiles: dict[int, F64 | None] = field(default_factory=dict)  # unix hour -> profile


# The tests of each kind of metric (compare_windows): the p-value columns on /metrics.
TESTS = {"numeric": ("ks", "mann_whitney", "anderson_darling"), "binary": ("chi_square",),
         "categorical": ("chi_square",)}
P_COLUMNS = tuple((m, t) for m in METRICS for t in TESTS[KINDS[m]])
_METRIC_COLUMN = {m: j for j, m in enumerate(METRICS)}
_P_COLUMN = {c: j for j, c in enumerate(P_COLUMNS)}
FUNCTION_LABELS = ("tenant", "function")


@dataclass(frozen=True)
class DriftGauges:
    """What /metrics shows of the detectors, per (tenant, function) and metric of
    :data:`METRICS` (NaN where the function has no detector for it): arrays, not a tuple
    per detector, as there are seven per function."""

    keys: list[tuple[str, str]]
    detected: F64  # 1 while a confirmed drift's alert is open
    statistic: F64  # the detector's level relative to its threshold
    events: F64  # confirmed drifts
    p_values: F64  # per column of P_COLUMNS, the latest test's (NaN: none)

    def metrics(self) -> Iterator[tuple[str, str, str, bool, float, int]]:
        """(tenant, function, metric, drift open, level, drifts) of every detector."""
        for i, (tenant, function) in enumerate(self.keys):
            for j, metric in enumerate(METRICS):
                if not math.isnan(self.events[i, j]):
                    yield (tenant, function, metric, bool(self.detected[i, j]),
                           float(self.statistic[i, j]), int(self.events[i, j]))


NO_GAUGES = DriftGauges([], *(np.zeros((0, len(METRICS))),) * 3, np.zeros((0, len(P_COLUMNS))))


class DriftMonitor(Monitor):
    """Detectors per (tenant, function) and metric, with the evidence that confirms them."""

    name = "drift"
    # Detectors cost little per value but a fixed amount per call: feeding them every 10 s
    # instead of every second cuts the job's CPU (and its GIL contention with the
    # consumer) several-fold, for at most 10 s more delay on drifts that take minutes.
    EVERY_SECONDS = 10.0
    WARM_ROWS = 20_000  # consumed rows the references are learnt from at a restart

    QUIET_SECONDS = 3600.0  # a drift alert resolves after an hour without a new one
    # Most rows per function per flush. The service flushes every 10 s, so this thins only
    # functions above 500 requests/s, and a processor catching up on a backlog: a
    # systematic sample of a stream drifts when the stream does, and the detectors' cost
    # stays bounded per second instead of growing with the rate.
    MAX_ROWS_PER_FLUSH = 5000
    # A processor catching up on a large backlog buffers faster than the detectors need:
    # past this many buffered rows, a batch is kept as a systematic 10 % sample, which
    # bounds memory and the drift worker's share of the CPU.
    MAX_PENDING_ROWS = 100_000
    # Periodic evidence runs the scipy tests (a few ms per metric): at most this many
    # functions per evaluation, round robin, so a tick stays cheap however many there are.
    MAX_PERIODIC_PER_EVALUATION = 2

    def __init__(self, *, false_alarm_rate: float = 1e-4, reference_size: int = 1000,
                 periodic_seconds: float = 900.0, alpha: float = 0.01,
                 min_effect: float | None = None) -> None:
        self.false_alarm_rate = false_alarm_rate
        self.reference_size = reference_size
        self.periodic_seconds = periodic_seconds
        self.alpha = alpha
        self.min_effect = min_effect
        self.index = SeriesIndex()
        self.series: dict[int, _Series] = {}
        self._pending: list[DriftRows] = []
        self.episodes = Episodes()
        self.updates = 0  # metric-updates fed, for the cost per update
        self._restored: dict[AlertKey, float] = {}
        # Requests per function and minute / hour, for the volume metric and the
        # hour-of-day profiles, with the latency summed per hour (in microseconds; 0: not
        # known, in hours rolled up before the roll-ups carried it): a profile needs no
        # more than float32's seven digits of a closed hour.
        self.latency_us = RingSums(hours=8 * 24, hour_dtype=np.float32, by_minute=False)
        # buffer() runs on the consumer's thread, flush() and test() on the job's thread:
        # the buffer is handed over under this lock, and /metrics reads the snapshot taken
        # at the end of each test, never the detectors.
        self._pending_lock = threading.Lock()
        self._pending_rows = 0
        self.snapshot = NO_GAUGES
        self._periodic_cursor = 0
        # (tenant, function, metric or "*") -> the user's decision; replaced whole by
        # set_controls (consumer thread), read by the job.
        self.controls: dict[tuple[str, str, str], ReferenceControl] = {}
        self._relearned_alerts: dict[AlertKey, str] = {}  # alert -> resolution message

    # -- the monitor contract ---------------------------------------------------------
    def restore(self, store: Store) -> None:
        """Open drift alerts resolve after a quiet hour from now; the references are
        learnt from the last consumed rows, so a restart does not leave the detectors
        blind until a thousand new requests per function."""
        index = self.index
        self.configure(store)
        keys = []
        for r in store.rows("open_alerts", OpenAlertRow, type="drift"):
            function, _, metric = r.fingerprint.removeprefix("drift:").rpartition(":")
            if r.fingerprint.startswith("drift:") and function and metric in KINDS:
                keys.append(AlertKey(r.tenant_id, r.fingerprint))
            else:
                store.report(f"open alert {r.tenant_id}/{r.fingerprint!r} is not one the "
                             "drift monitor fires; left as it is")
        self.restore_open(keys, store.now)
        self.load_hours(store.rows("recent_hourly_latency", HourRow))
        rows = store.consumed(last=self.WARM_ROWS)
        if len(rows):
            series = index.series_of(rows.key)
            self.buffer(self._rows(Batch(rows, series, index, store.now)))
            self.flush()

    def configure(self, store: Store) -> None:
        self.set_controls(store.rows("drift_references", ReferenceRow))

    def set_controls(self, rows: Sequence[ReferenceRow]) -> None:
        self.controls = {(r.tenant_id, r.function_name, r.metric): ReferenceControl(
            bool(r.pinned), None if r.relearn_from is None else float(r.relearn_from))
            for r in rows}

    def load_hours(self, rows: Sequence[HourRow]) -> None:
        """Hourly requests and latency sums (of the cost roll-ups) after a restart."""
        if not rows:
            return
        f = np.array([self.index.function_id(r.tenant_id, r.function_name) for r in rows],
                     np.int64)
        hour = np.array([r.hour for r in rows], np.int64)
        self.requests.restore(f, hour, np.array([r.requests for r in rows], np.int64),
                              minutes=False)
        known = np.array([r.latency_ms_sum is not None for r in rows])
        self.latency_us.load(f[known], hour[known], np.rint(np.array(
            [r.latency_ms_sum or 0.0 for r in rows]) * 1000).astype(np.int64)[known],
            minutes=False)

    @property
    def requests(self) -> RequestCounts:
        """Requests per function (shared with the other monitors of the index)."""
        return self.index.shared(REQUESTS_PER_FUNCTION, RequestCounts)

    def observe(self, batch: Batch) -> Observed:
        rows = self._rows(batch)
        self.requests.count_once(batch.serial, rows.function, rows.created_at)
        self._count_latency(rows)
        self.buffer(rows)
        return NOTHING

    def count(self, rows: DriftRows) -> None:
        """Add rows fed without a batch to the hourly sums (the volume baselines and
        latency profiles)."""
        self.requests.add(rows.function, rows.created_at,
                          np.ones(len(rows.function), np.int64))
        self._count_latency(rows)

    def _count_latency(self, rows: DriftRows) -> None:
        self.latency_us.add(rows.function, rows.created_at,
                            np.rint(rows.latency_ms * 1000).astype(np.int64))

    def _rows(self, batch: Batch) -> DriftRows:
        r = batch.rows
        return DriftRows(batch.function, r.created_at, r.latency_ms, r.query_length,
                         r.confidence, r.cost_pico, r.is_error, r.error_type,
                         self.index.model[batch.series])

    def jobs(self) -> Sequence[BackgroundJob]:
        return (BackgroundJob("drift", self.EVERY_SECONDS, self.run, self.write),)

    def run(self, now: float) -> tuple[list[Evidence], list[AlertChange]]:
        """Feed the buffered rows to the detectors and test their candidates."""
        self.flush(now)
        return self.test(now)

    @staticmethod
    def write(store: Store, result: tuple[list[Evidence], list[AlertChange]]
              ) -> list[AlertChange]:
        evidence, changes = result
        if evidence:
            store.execute("insert_drift_evidence", rows=evidence_json(evidence))
        return changes

    def metrics(self, now: float) -> MetricsBuilder:
        snapshot = self.snapshot
        return lambda: _families(snapshot, self.index.function_texts(snapshot.keys))

    # -- reference decisions ----------------------------------------------------------

    def control(self, tenant: str, function: str, metric: str) -> ReferenceControl:
        """The metric's own decision combined with the function-wide one ("*")."""
        own = self.controls.get((tenant, function, metric))
        every = self.controls.get((tenant, function, "*"))
        if own is None or every is None:
            return own or every or NO_CONTROL
        times = [t for t in (own.relearn_from, every.relearn_from) if t is not None]
        return ReferenceControl(own.pinned or every.pinned, max(times) if times else None)

    def _relearn(self, f: int, s: _Series) -> dict[str, float]:
        """The relearn times of ``f``'s metrics; a request not applied yet drops the
        reference now (and with it the drift alert: the user accepted the new level)."""
        if not self.controls or f >= len(self.index.function_keys):
            return {}
        tenant, function = self.index.function_keys[f]
        out = {}
        for metric in METRICS:
            since = self.control(tenant, function, metric).relearn_from
            if since is None:
                continue
            out[metric] = since
            if s.relearned.get(metric, -math.inf) < since:
                s.relearned[metric] = since
                d = s.detectors.get(metric)
                if d is not None:
                    d.refresh()  # unpinned too
                s.candidates.pop(metric, None)
                s.confirmed.pop(metric, None)
                key = AlertKey(tenant, f"drift:{function}:{metric}")
                self._restored.pop(key, None)
                if key in self.episodes.open:
                    self._relearned_alerts[key] = (
                        "The reference is relearned from the requests after "
                        f"{_utc(since)} (stream-mlops drift relearn): the new level is "
                        "accepted.")
        return out

    def _detector(self, s: _Series, metric: str) -> Detector:
        d = s.detectors.get(metric)
        if d is None:
            size = 200 if metric == "error_type" else (
                100 if metric == "volume" else self.reference_size)
            d = s.detectors[metric] = make_detector(
                KINDS[metric], reference_size=size,  # type: ignore[arg-type]
                false_alarm_rate=self.false_alarm_rate, seed=len(s.detectors))
        return d

    def restore_open(self, keys: Sequence[AlertKey], now: float) -> None:
        """Open drift alerts from mlops.alerts: they resolve after a quiet hour from now."""
        self.episodes.open = set(keys)
        self._restored = dict.fromkeys(keys, now)

    def buffer(self, rows: DriftRows) -> None:
        """Buffer a batch (cheap: the detectors run in :meth:`flush`)."""
        if len(rows.function):
            with self._pending_lock:
                self._pending_rows += len(rows.function)
                if self._pending_rows > self.MAX_PENDING_ROWS:
                    rows = _take(rows, np.arange(0, len(rows.function), 10))
                self._pending.append(rows)

    def flush(self, now: float | None = None) -> None:
        """Feed the buffered rows to the detectors, per function, in arrival order (and,
        given ``now``, the request volume up to the last complete minute)."""
        with self._pending_lock:
            pending, self._pending, self._pending_rows = self._pending, [], 0
        if pending:
            r = _concat(pending)
            order = np.argsort(r.function, kind="stable")
            bounds = np.flatnonzero(np.diff(r.function[order])) + 1
            for rows in np.split(order, bounds):
                idx = rows if len(rows) <= self.MAX_ROWS_PER_FLUSH else rows[np.linspace(
                    0, len(rows) - 1, self.MAX_ROWS_PER_FLUSH).astype(np.int64)]
                self._feed(int(r.function[idx[0]]), r, idx)
        if now is not None:
            self._feed_volume(self.requests, now)

    def _series(self, f: int) -> _Series:
        s = self.series.get(f)
        if s is None:
            s = self.series[f] = _Series()
        return s

    def _feed(self, f: int, r: DriftRows, idx: I64) -> None:
        s = self._series(f)
        since = self._relearn(f, s)
        if not since:
            self._feed_values(s, self._values(f, s, r, idx))
            return
        # Rows from before a relearn request feed no reference of that metric (the warm-up
        # replay after a restart brings them back, and they are the old level).
        t = r.created_at[idx]
        for cut in sorted(set(since.values())):
            metrics = {m for m in METRICS if since.get(m) == cut}
            self._feed_values(s, {m: xs for m, xs in self._values(f, s, r, idx[t >= cut]).items()
                                  if m in metrics})
        self._feed_values(s, {m: xs for m, xs in self._values(f, s, r, idx).items()
                              if m not in since})

    def _values(self, f: int, s: _Series, r: DriftRows, idx: I64) -> dict[str, Any]:
        values = _values(r, idx)
        values["latency"] = self._relative_to_hour(f, s, r.created_at[idx], values["latency"])
        return values

    def _relative_to_hour(self, f: int, s: _Series, t: F64, latency: F64) -> F64:
        """Latency over its hour-of-day profile once one is known (else as it is); the
        reference is relearnt, on the new scale, when the profile first becomes known.

        The profile is interpolated between the middles of the hours: a step at each hour
        would leave a saw-tooth of the cycle's slope (±4 % an hour at the steepest of a
        ±30 % cycle), which the trend detectors can see at thousands of values an hour."""
        if not len(t):
            return latency
        u = t / 3600 - 0.5  # in hours since the middle of unix hour 0
        hours, at = np.unique(np.floor(u).astype(np.int64), return_inverse=True)
        profiles = [self._profile(f, s, h) for h in hours.tolist()]
        if not s.seasonal:
            if all(p is None for p in profiles):
                return latency
            s.seasonal = True
            d = s.detectors.get("latency")
            if d is not None:
                d.refresh()
                s.candidates.pop("latency", None)
        ends = np.array([(0.0, 0.0) if p is None else (p[0], p[1]) for p in profiles])
        at = at.reshape(-1)
        w = u - hours[at]
        out: F64 = latency * np.exp(-((1 - w) * ends[at, 0] + w * ends[at, 1]))
        return out

    def _profile(self, f: int, s: _Series, hour: int) -> F64 | None:
        """:meth:`hour_profile`, once per function and hour (a profile reads only whole
        past hours, and costs ~0.25 ms: every flush of every function would add up)."""
        if hour not in s.profiles:
            for old in [h for h in s.profiles if h < hour - 1]:
                del s.profiles[old]
            s.profiles[hour] = self.hour_profile(f, hour)
        return s.profiles[hour]

    def hour_profile(self, f: int, hour: int) -> F64 | None:
        """Function ``f``'s latency profile for the 24 hours from unix hour ``hour`` on
        (:func:`~stream_mlops.stats.seasonal.day_profile`; None: not known)."""
        if f >= self.requests.groups:
            return None
        held = self.requests.hour_id[self.requests.hour_sums[f] > 0]
        if not len(held):
            return None
        windows = day_windows(hour)
        sums = self.latency_us.at(f, windows)
        return day_profile(np.where(sums > 0, self.requests.at(f, windows), 0), sums / 1000.0,
                           windows[:, 0] >= held.min())

    def _feed_values(self, s: _Series, values: dict[str, Any]) -> None:
        for metric, xs in values.items():
            if len(xs):
                self._update(s, metric, xs)

    def _update(self, s: _Series, metric: str, xs: Any) -> None:
        d = self._detector(s, metric)
        found = d.update_many(xs)
        self.updates += len(xs)
        if len(found):
            s.candidates[metric] = d.state().last_drift_cusums
        if not d.pinned and not d.warming_up:
            # Pinned, so an alarm keeps the reference for the evidence; the monitor
            # refreshes it only when the evidence confirms the drift.
            d.pin()

    def _feed_volume(self, volume: RingSums, now: float) -> None:
        """Requests per minute over the same hour's average on the last days (>= 1)."""
        minute = math.floor(now / 60) - 1  # the last complete minute
        for f in range(min(volume.groups, len(self.index.function_keys))):
            s = self._series(f)
            since = self._relearn(f, s).get("volume")
            first = max(s.last_minute + 1, minute - 59)
            if since is not None:  # whole minutes after the relearn request
                first = max(first, math.ceil(since / 60))
            ratios = []
            for m in range(first, minute + 1):
                col = m % RingSums.MINUTES
                if volume.minute_id[col] != m:
                    continue
                expected = _same_hour_rate(volume, f, m * 60.0)
                if expected is None:
                    continue
                ratios.append((volume.minute_sums[f, col] + 0.5) / (expected + 0.5))
            s.last_minute = minute
            if ratios:
                self._update(s, "volume", np.array(ratios))

    def test(self, now: float) -> tuple[list[Evidence], list[AlertChange]]:
        """Test every candidate (and, periodically, every metric); alert on confirmed
        drifts; resolve alerts quiet for an hour."""
        evidence: list[Evidence] = []
        changes: list[AlertChange] = []
        wanted: set[AlertKey] = set()
        due = self._periodic_due(now)
        keys = self.index.function_keys
        for f, s in self.series.items():
            if f >= len(keys):
                continue
            tenant, function = keys[f]
            periodic = f in due
            for metric, d in s.detectors.items():
                if metric in s.candidates or (periodic and not d.warming_up):
                    changes += self._test_metric(s, (tenant, function), metric, now, evidence)
            if periodic:
                s.last_periodic = now
            for metric, at in s.confirmed.items():
                if now - at < self.QUIET_SECONDS:
                    wanted.add(AlertKey(tenant, f"drift:{function}:{metric}"))
        wanted |= {k for k, at in self._restored.items() if now - at < self.QUIET_SECONDS}
        changes = self.episodes.settle(wanted, changes, self._resolved)
        self.snapshot = self.gauges()
        return evidence, changes

    def _test_metric(self, s: _Series, fn: tuple[str, str], metric: str, now: float,
                     evidence: list[Evidence]) -> list[AlertChange]:
        """Compare recent values with the reference (evidence); confirm an alarm or not."""
        tenant, function = fn
        d = s.detectors[metric]
        alarm = metric in s.candidates
        ref, cur = d.reference_sample(), d.recent_sample()
        if metric == "model":  # codes -> names, for the evidence and the message
            ref, cur = self._names(ref), self._names(cur)
        if len(ref) < 20 or len(cur) < 20:
            return []
        results = compare_windows(ref, cur, KINDS[metric],  # type: ignore[arg-type]
                                  alpha=self.alpha, min_effect=self.min_effect)
        for res in results:
            s.p_values[(metric, res.test_name)] = res.p_value
            evidence.append(Evidence(tenant, function, metric, res, _window(ref),
                                     _window(cur), alarm))
        if not alarm:
            return []
        cusums = s.candidates.pop(metric)
        confirmed = [res for res in results if res.drift_detected]
        if not confirmed:
            return []
        s.confirmed[metric] = now
        s.drifts[metric] = s.drifts.get(metric, 0) + 1
        key = AlertKey(tenant, f"drift:{function}:{metric}")
        pinned = self.control(tenant, function, metric).pinned
        if not pinned:  # pinned: it keeps alarming while the drift lasts
            d.refresh()  # learn the new normal (unpinned until the next reference)
        if key in self.episodes.open:
            return []
        return [self._alert(key, function, metric, cusums=cusums, confirmed=confirmed,
                            ref=ref, cur=cur, pinned=pinned,
                            seasonal=s.seasonal and metric == "latency")]

    def _resolved(self, key: AlertKey) -> AlertChange:
        function, metric = key.fingerprint[len("drift:"):].rsplit(":", 1)
        why = self._relearned_alerts.pop(key, None) or (
            "No drift confirmed for an hour: the data are back at the pinned reference."
            if self.control(key.tenant_id, function, metric).pinned else
            "No new drift for an hour: the new level is the reference now.")
        return alert_change("resolve", key, "drift", rule="drift", function=function,
                            message=why)

    def _names(self, codes: Any) -> npt.NDArray[Any]:
        names = np.asarray(self.index.model_names or ["?"], dtype=object)
        out: npt.NDArray[Any] = names[np.clip(np.asarray(codes, np.int64), 0, len(names) - 1)]
        return out

    def _periodic_due(self, now: float) -> set[int]:
        """Series whose periodic evidence is due, a few per evaluation, round robin."""
        order = sorted(self.series)
        due: set[int] = set()
        for k in range(len(order)):
            f = order[(self._periodic_cursor + k) % len(order)]
            s = self.series[f]
            if s.last_periodic == 0.0:
                s.last_periodic = now  # first evidence one period after the series appears
            elif now - s.last_periodic >= self.periodic_seconds:
                due.add(f)
                if len(due) >= self.MAX_PERIODIC_PER_EVALUATION:
                    self._periodic_cursor = (self._periodic_cursor + k + 1) % len(order)
                    break
        return due

    def _alert(self, key: AlertKey, function: str, metric: str, *, cusums: tuple[str, ...],
               confirmed: list[TestResult], ref: Any, cur: Any, pinned: bool,
               seasonal: bool = False) -> AlertChange:
        best = min(confirmed, key=lambda r: r.p_value)
        what = ", ".join(c.replace("_", " ") for c in cusums) or "a change"
        scale = " (relative to its hour of day on the last days)" if seasonal else ""
        message = (f"{metric} of {function} drifted ({what}): "
                   f"{_describe(metric, ref, cur)}{scale}; "
                   f"{best.test_name} p = {best.p_value:.2g} (threshold {best.threshold:g}), "
                   f"effect size {best.effect_size:.3g}, {best.n_reference} reference vs "
                   f"{best.n_current} recent values. " + (
                       "The reference is pinned: the alert stays open while the data stay "
                       "away from it." if pinned else "The detector now learns the new level "
                       "(`stream-mlops drift pin` keeps the reference instead)."))
        return alert_change("fire", key, "drift", rule="drift", severity="warning",
                            function=function,
                            title=f"Drift in {metric} of {function} (tenant {key.tenant_id})",
                            message=message, value=best.effect_size,
                            threshold=best.threshold)

    def gauges(self) -> DriftGauges:
        """The detectors' state for /metrics (see :class:`DriftGauges`)."""
        keys = self.index.function_keys
        functions = [f for f in self.series if f < len(keys)]
        shape = (len(functions), len(METRICS))
        detected, statistic, events = np.full(shape, np.nan), np.full(shape, np.nan), \
            np.full(shape, np.nan)
        p_values = np.full((len(functions), len(P_COLUMNS)), np.nan)
        for i, f in enumerate(functions):
            s = self.series[f]
            for metric, d in s.detectors.items():
                j = _METRIC_COLUMN[metric]
                detected[i, j] = 0.0
                statistic[i, j] = 0.0 if d.warming_up else _digits(d.level)
                events[i, j] = s.drifts.get(metric, 0)
            for column, v in s.p_values.items():
                if column in _P_COLUMN and math.isfinite(v):
                    p_values[i, _P_COLUMN[column]] = _digits(v)
        # The few open alerts, not an alert key per detector (32,000 at 5,000 functions,
        # every 10 s on the drift worker's thread).
        row = {f: i for i, f in enumerate(functions)}
        for key in self.episodes.open:
            function, _, metric = key.fingerprint.removeprefix("drift:").rpartition(":")
            fn = self.index.known_function(key.tenant_id, function)
            at = None if fn is None else row.get(fn)
            if at is not None and fn is not None and metric in self.series[fn].detectors:
                detected[at, _METRIC_COLUMN[metric]] = 1.0
        return DriftGauges([keys[f] for f in functions], detected, statistic, events,
                           p_values)


def _digits(v: float) -> float:
    """``v`` to four significant digits: what a level or a p-value means, and a shorter
    number on /metrics (seventeen digits each were a fifth of a scrape at 5,000
    functions)."""
    return float(f"{v:.4g}")


def _same_hour_rate(volume: RingSums, f: int, t: float) -> float | None:
    """Average requests per minute in the same hour on up to 7 previous days."""
    rates = []
    for d in range(1, 8):
        h = math.floor((t - d * 86400) / 3600)
        col = h % volume.HOURS
        if volume.hour_id[col] == h:
            rates.append(volume.hour_sums[f, col] / 60)
    return float(np.median(rates)) if rates else None


def _values(r: DriftRows, idx: I64) -> dict[str, Any]:
    """Each metric's values among rows ``idx``, in arrival order."""
    err = r.is_error[idx]
    return {
        "latency": r.latency_ms[idx],
        "query_length": r.query_length[idx][r.query_length[idx] >= 0],
        "confidence": r.confidence[idx][r.confidence[idx] >= 0],
        "cost_per_request": r.cost_pico[idx][r.cost_pico[idx] >= 0] / 1e12,
        "error_rate": err.astype(np.int8),
        "error_type": [r.error_type[i] or "unknown" for i in idx[err].tolist()],
        "model": r.model[idx],
    }


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _window(xs: Any) -> dict[str, Any]:
    arr = np.asarray(xs)
    if arr.dtype.kind in "fiub" and len(arr):
        a = arr.astype(np.float64)
        q = np.quantile(a, [0.5, 0.95])
        return {"n": len(a), "mean": float(a.mean()), "p50": float(q[0]), "p95": float(q[1])}
    labels, counts = np.unique(arr.astype(str), return_counts=True)
    top = np.argsort(-counts)[:10]
    return {"n": len(arr), "shares": {str(labels[i]): round(counts[i] / len(arr), 4)
                                      for i in top.tolist()}}


def _describe(metric: str, ref: Any, cur: Any) -> str:
    a, b = _window(ref), _window(cur)
    if "mean" in a:
        if metric == "error_rate":
            return f"rate {a['mean']:.2%} -> {b['mean']:.2%}"
        return (f"median {a['p50']:.4g} -> {b['p50']:.4g}, p95 {a['p95']:.4g} -> "
                f"{b['p95']:.4g}")
    moved = sorted(set(a["shares"]) | set(b["shares"]),
                   key=lambda k: -abs(b["shares"].get(k, 0) - a["shares"].get(k, 0)))[:2]
    return ", ".join(f"{k} {a['shares'].get(k, 0):.0%} -> {b['shares'].get(k, 0):.0%}"
                     for k in moved)


def _take(r: DriftRows, idx: I64) -> DriftRows:
    rows = idx.tolist()
    return DriftRows(r.function[idx], r.created_at[idx], r.latency_ms[idx], r.query_length[idx],
                     r.confidence[idx], r.cost_pico[idx], r.is_error[idx],
                     [r.error_type[i] for i in rows], r.model[idx])


def _concat(parts: list[DriftRows]) -> DriftRows:
    if len(parts) == 1:
        return parts[0]
    return DriftRows(
        np.concatenate([p.function for p in parts]),
        np.concatenate([p.created_at for p in parts]),
        np.concatenate([p.latency_ms for p in parts]),
        np.concatenate([p.query_length for p in parts]),
        np.concatenate([p.confidence for p in parts]),
        np.concatenate([p.cost_pico for p in parts]),
        np.concatenate([p.is_error for p in parts]),
        [e for p in parts for e in p.error_type], np.concatenate([p.model for p in parts]))


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON (and so the table) has no NaN


def evidence_json(evidence: list[Evidence]) -> str:
    """Evidence as the JSON array ``insert_drift_evidence`` reads."""
    return json.dumps([{
        "tenant_id": e.tenant_id, "function_name": e.function_name,
        "metric_name": e.metric_name, "test_name": e.result.test_name,
        "statistic": _num(e.result.statistic), "p_value": _num(e.result.p_value),
        "threshold": e.result.threshold, "effect_size": _num(e.result.effect_size),
        "drift_detected": e.result.drift_detected,
        "reference_window": e.reference, "current_window": e.current | {"alarm": e.alarm},
    } for e in evidence], allow_nan=False)


def _families(g: DriftGauges, texts: Sequence[str]) -> Iterator[Metric]:
    def family(name: str, doc: str, typ: str, columns: Sequence[Any],
               values: F64) -> SeriesFamily:
        sample = f"{name}_total" if typ == "counter" else name
        return SeriesFamily(
            name, doc, typ, label_names=FUNCTION_LABELS, keys=g.keys, texts=texts,
            columns=[(sample, c) for c in columns], values=list(values.T), nan_is_absent=True)

    per_metric = [(("metric", m),) for m in METRICS]
    yield family("mlops_drift_detected", "1 while a confirmed drift's alert is open.",
                 "gauge", per_metric, g.detected)
    yield family("mlops_drift_statistic", "Highest CUSUM level of the metric's detector "
                 "relative to its alarm threshold (1 = alarm).", "gauge", per_metric,
                 g.statistic)
    yield family("mlops_drift_p_value",
                 "Latest two-sample test of recent values vs the reference.", "gauge",
                 [(("metric", m), ("test", t)) for m, t in P_COLUMNS], g.p_values)
    yield family("mlops_drift_events", "Drifts confirmed by the detector and the tests.",
                 "counter", per_metric, g.events)
