"""Turns a batch of request rows into effects: validated, folded, aggregated per series.

The processor owns the in-memory state but performs no I/O: the consumer persists the
effects and the cursor in one transaction and only then calls :meth:`Processor.commit`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_mlops.alerts.performance import AlertChange, PerformanceAlerts
from stream_mlops.alerts.rules import AlertThresholds
from stream_mlops.costs.monitor import CostTracker
from stream_mlops.costs.windows import SpikeRule
from stream_mlops.drift.monitor import DriftMonitor, DriftRows, Evidence
from stream_mlops.experiments.monitor import ArmRows, ExperimentTracker
from stream_mlops.pipeline.totals import (
    F64,
    I64,
    NO_CONFIDENCE,
    UNKNOWN_COST,
    Columns,
    Delta,
    SeriesKey,
    SeriesTotals,
    aggregate,
)
from stream_mlops.settings import CONFIDENCE_BUCKETS, DURATION_BUCKETS_SECONDS, TOKEN_BUCKETS

log = logging.getLogger(__name__)

OTHER = "__other__"
LABELS = ("tenant", "function", "model", "variant")

KEY_SEPARATOR = "\x1f"  # the fetch query joins the four labels with it (see queries.sql)

LATENCY_BOUNDS = np.array(DURATION_BUCKETS_SECONDS)
TOKEN_BOUNDS = np.array(TOKEN_BUCKETS, dtype=np.float64)
CONFIDENCE_BOUNDS = np.array(CONFIDENCE_BUCKETS)


class LabelFolder:
    """Bounds label cardinality: past ``limit`` distinct values a label folds to ``__other__``.

    One misbehaving client sending a fresh function name per request must not be able to
    create unbounded Prometheus series (or unbounded processor memory).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.known: list[set[str]] = [set() for _ in LABELS]
        self.folded_values = [0] * len(LABELS)

    def remember(self, key: SeriesKey) -> None:
        for seen, value in zip(self.known, key, strict=True):
            if value != OTHER:
                seen.add(value)

    def fold(self, key: SeriesKey) -> SeriesKey:
        out = []
        for i, value in enumerate(key):
            seen = self.known[i]
            if value in seen:
                out.append(value)
            elif len(seen) < self.limit:
                seen.add(value)
                out.append(value)
            else:
                self.folded_values[i] += 1
                out.append(OTHER)
        return (out[0], out[1], out[2], out[3])


@dataclass(frozen=True)
class RawBatch:
    """Rows after the cursor, column-wise, in cursor order, as the consumer fetched them.

    ``key`` holds ``tenant, function, model, variant`` joined by :data:`KEY_SEPARATOR`;
    costs are pico-dollars with ``UNKNOWN_COST`` for unpriced rows and confidence is
    ``NO_CONFIDENCE`` when absent.
    """

    xid: I64
    id: I64
    key: list[str]
    created_at: F64
    latency_ms: F64
    prompt_tokens: I64
    completion_tokens: I64
    cached_tokens: I64
    cost_pico: I64
    confidence: F64
    is_error: npt.NDArray[np.bool_]
    # Cache-creation tokens, and whether cost_usd was sent by the caller (checked against
    # the price table) rather than computed by the database; absent in older callers.
    cache_write_tokens: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    caller_cost: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    experiment_id: list[str | None] = field(default_factory=list)
    query_length: F64 = field(default_factory=lambda: np.zeros(0, np.float64))  # -1: none
    error_type: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.id)
        # Frozen, so set through object: only to fill in columns an old caller left out.
        if len(self.cache_write_tokens) != n:
            object.__setattr__(self, "cache_write_tokens", np.zeros(n, np.int64))
        if len(self.caller_cost) != n:
            object.__setattr__(self, "caller_cost", np.zeros(n, np.bool_))
        if len(self.experiment_id) != n:
            object.__setattr__(self, "experiment_id", [None] * n)
        if len(self.query_length) != n:
            object.__setattr__(self, "query_length", np.full(n, -1.0))
        if len(self.error_type) != n:
            object.__setattr__(self, "error_type", [None] * n)

    def __len__(self) -> int:
        return len(self.id)

    def take(self, where: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> RawBatch:
        picked = np.flatnonzero(where) if where.dtype == np.bool_ else where
        rows = picked.tolist()
        lists = ("key", "experiment_id", "error_type")
        cols: dict[str, Any] = {f: getattr(self, f)[picked] for f in _RAW_FIELDS
                                if f not in lists}
        cols |= {f: [getattr(self, f)[i] for i in rows] for f in lists}
        return RawBatch(**cols)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> RawBatch:
        """From row tuples ``(xid, id, tenant, function, model, variant, created_at,
        latency_ms, prompt, completion, cached, cost_pico, confidence, is_error)``."""
        c = list(zip(*rows, strict=True))
        return cls(
            xid=np.array(c[0], np.int64), id=np.array(c[1], np.int64),
            key=[KEY_SEPARATOR.join(k) for k in zip(*c[2:6], strict=True)],
            created_at=np.array(c[6], np.float64), latency_ms=np.array(c[7], np.float64),
            prompt_tokens=np.array(c[8], np.int64), completion_tokens=np.array(c[9], np.int64),
            cached_tokens=np.array(c[10], np.int64), cost_pico=np.array(c[11], np.int64),
            confidence=np.array(c[12], np.float64), is_error=np.array(c[13], np.bool_))


_RAW_FIELDS = tuple(RawBatch.__dataclass_fields__)


@dataclass
class Effects:
    """Everything one batch changes; persisted atomically with the cursor."""

    last_xid: int
    last_id: int
    events: int
    delta: Delta | None
    persisted: Delta | None
    quarantine: list[tuple[int, str]] = field(default_factory=list)
    max_created_at: float = 0.0
    alerts: list[AlertChange] = field(default_factory=list)
    hourly_costs: dict[str, Any] = field(default_factory=dict)


class Processor:
    """Pure state machine over request rows (no sockets, no database)."""

    # A cache of raw key -> series index; cleared when a flood of junk keys grows it.
    _KEY_CACHE_LIMIT = 100_000

    def __init__(
        self,
        *,
        max_label_values: int = 200,
        max_future_skew_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        alert_thresholds: AlertThresholds | None = None,
        alert_window_seconds: float = 60.0,
        alert_cooldown_seconds: float = 3600.0,
        cost_budgets: dict[str, float] | None = None,
        cost_timezone: str = "UTC",
        cost_spike: SpikeRule | None = None,
        cost_mismatch_tolerance: float = 0.01,
    ) -> None:
        self.totals = SeriesTotals(
            len(LATENCY_BOUNDS) + 1, len(TOKEN_BOUNDS) + 1, len(CONFIDENCE_BOUNDS) + 1
        )
        self.folder = LabelFolder(max_label_values)
        self.max_future_skew_seconds = max_future_skew_seconds
        self.clock = clock
        self._index: dict[SeriesKey, int] = {}
        self._raw_index: dict[str, int] = {}
        self._alert_config = (alert_thresholds or AlertThresholds(), alert_window_seconds,
                              alert_cooldown_seconds)
        self.alerts = self._new_alerts()
        self._cost_config = (cost_budgets or {"day": 1.0, "week": 5.0, "month": 20.0},
                             cost_timezone, cost_spike or SpikeRule(), cost_mismatch_tolerance)
        self.costs = self._new_costs()
        self.experiments = ExperimentTracker()
        self.drift = DriftMonitor()
        self._series_model = np.zeros(0, np.int64)  # series -> index in drift.model_names
        self._model_index: dict[str, int] = {}

    def _new_costs(self) -> CostTracker:
        budgets, tz, spike, tolerance = self._cost_config
        return CostTracker(budgets=dict(budgets), timezone=tz, spike=spike,
                           mismatch_tolerance=tolerance)

    def _new_alerts(self) -> PerformanceAlerts:
        th, window, cooldown = self._alert_config
        return PerformanceAlerts(th, window_seconds=window, cooldown_seconds=cooldown)

    # -- state ------------------------------------------------------------------------
    def loaded(self, keys: Sequence[SeriesKey], persisted: Delta) -> Processor:
        """A processor with this one's settings holding the given state, built off to the
        side: the rest of a restart's state is loaded into it and then taken over whole
        with :meth:`adopt`, so no reader ever sees half of it."""
        p = copy.copy(self)
        p.totals = SeriesTotals(len(LATENCY_BOUNDS) + 1, len(TOKEN_BOUNDS) + 1,
                                len(CONFIDENCE_BOUNDS) + 1)
        p.load(keys, persisted)
        return p

    def adopt(self, other: Processor) -> None:
        """Take over ``other``'s state (one step: call it under the lock readers hold)."""
        self.__dict__.update(other.__dict__)

    def load(self, keys: Sequence[SeriesKey], persisted: Delta) -> None:
        self.totals.load(keys, persisted)
        self._index = {k: i for i, k in enumerate(keys)}
        self._raw_index = {}
        self.folder = LabelFolder(self.folder.limit)
        for k in keys:
            self.folder.remember(k)
        self.alerts = self._new_alerts()
        self.costs = self._new_costs()
        self.experiments = ExperimentTracker()
        self.drift = DriftMonitor()
        self._series_model = np.zeros(0, np.int64)  # series indices were renumbered
        self._model_index = {}

    def replay(self, batch: RawBatch) -> None:
        """Put already-consumed rows back into the alert windows (after a restart)."""
        if len(batch):
            cols = self._columns(batch)
            self.alerts.observe(self.totals.keys, cols.series, created_at=cols.created_at,
                                latency_ms=cols.latency_ms, is_error=cols.is_error,
                                confidence=cols.confidence)

    def replay_drift(self, batch: RawBatch) -> None:
        """Already-consumed rows into the drift detectors (their references, at start-up)."""
        good, _ = self._validate(batch)
        batch = batch.take(good)
        if len(batch):
            cols = self._columns(batch)
            self.costs.observe_keys(self.totals.keys)
            self.observe_drift(batch, cols)
            self.drift.flush(self.costs.function_keys)

    def tick(self, now: float | None = None) -> list[AlertChange]:
        """Re-read every alert rule and budget at ``now`` (silence resolves alerts too)."""
        at = self.clock() if now is None else now
        return self.alerts.evaluate(at) + self.costs.evaluate(at)

    def commit(self, effects: Effects) -> None:
        if effects.delta is not None:
            self.totals.apply(effects.delta)

    # -- batch ------------------------------------------------------------------------
    def series_index(self, raw: str) -> int:
        """Index of the (folded) series of a joined raw key; ValueError if malformed."""
        idx = self._raw_index.get(raw)
        if idx is None:
            parts = raw.split(KEY_SEPARATOR)
            if len(parts) != 4:
                raise ValueError("label values must not contain control characters")
            key = self.folder.fold((parts[0], parts[1], parts[2], parts[3]))
            idx = self._index.get(key)
            if idx is None:
                idx = self.totals.add_series(key)
                self._index[key] = idx
            if len(self._raw_index) >= self._KEY_CACHE_LIMIT:
                self._raw_index.clear()
            self._raw_index[raw] = idx
        return idx

    def prepare(self, batch: RawBatch) -> Effects:
        """Validate and aggregate ``batch`` (in cursor order) without changing totals."""
        effects = Effects(last_xid=int(batch.xid[-1]), last_id=int(batch.id[-1]),
                          events=len(batch), delta=None, persisted=None)
        try:
            good, effects.quarantine = self._validate(batch)
            self._aggregate(batch.take(good) if effects.quarantine else batch, effects)
        except Exception:
            # Something no check foresaw: isolate the poison rows one by one.
            log.exception("batch failed to aggregate; isolating rows",
                          extra={"rows": len(batch)})
            self._prepare_row_by_row(batch, effects)
        return effects

    def _aggregate(self, batch: RawBatch, effects: Effects) -> None:
        if not len(batch):
            return
        cols = self._columns(batch)
        effects.delta = aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
        effects.persisted = self.totals.after(effects.delta)
        effects.max_created_at = float(cols.created_at.max())
        touched = self.alerts.observe(
            self.totals.keys, cols.series, created_at=cols.created_at,
            latency_ms=cols.latency_ms, is_error=cols.is_error, confidence=cols.confidence)
        effects.alerts = self.alerts.evaluate(max(self.clock(), effects.max_created_at),
                                              touched)
        effects.hourly_costs = self.costs.observe(
            self.totals.keys, cols.series, created_at=cols.created_at,
            cost_pico=cols.cost_pico, prompt=cols.prompt_tokens,
            completion=cols.completion_tokens, cached=cols.cached_tokens,
            cache_write=batch.cache_write_tokens, caller_cost=batch.caller_cost)
        if self.experiments.live:
            self.observe_experiments(batch)
        self.observe_drift(batch, cols)

    def observe_drift(self, batch: RawBatch, cols: Columns) -> None:
        keys = self.totals.keys
        if len(self._series_model) < len(keys):
            for k in keys[len(self._series_model):]:
                self._model_index.setdefault(k[2], len(self._model_index))
            self._series_model = np.array([self._model_index[k[2]] for k in keys], np.int64)
            self.drift.model_names = list(self._model_index)
        self.drift.observe(DriftRows(
            self.costs.function_of(cols.series), cols.created_at, cols.latency_ms,
            batch.query_length, cols.confidence, cols.cost_pico, cols.is_error,
            batch.error_type, self._series_model[cols.series]))

    def drift_tick(self, now: float | None = None) -> tuple[list[Evidence], list[AlertChange]]:
        """Run the detectors on the buffered rows and test their candidates."""
        at = self.clock() if now is None else now
        self.drift.flush(self.costs.function_keys, self.costs.fn_requests, at)
        return self.drift.evaluate(at)

    def observe_experiments(self, batch: RawBatch) -> None:
        """Rows of running experiments into their tests (variants from the raw labels:
        folding must not merge arms)."""
        rows = [i for i, e in enumerate(batch.experiment_id) if e is not None]
        if rows:
            part = batch.take(np.array(rows, np.int64))
            self.experiments.observe(
                part.experiment_id, [k.rsplit(KEY_SEPARATOR, 1)[-1] for k in part.key],
                ArmRows(part.latency_ms, part.is_error, part.confidence, part.cost_pico))

    def _prepare_row_by_row(self, batch: RawBatch, effects: Effects) -> None:
        good = np.zeros(len(batch), np.bool_)
        effects.quarantine = []
        for i in range(len(batch)):
            one = batch.take(np.array([i], np.int64))
            try:
                _, why = self._validate(one)
                if why:
                    effects.quarantine.extend(why)
                    continue
                aggregate(self._columns(one), LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
                good[i] = True
            except Exception as exc:
                effects.quarantine.append((int(one.id[0]), f"unprocessable row: {exc}"[:500]))
        self._aggregate(batch.take(good), effects)

    def _columns(self, batch: RawBatch) -> Columns:
        # The per-row cost to beat: one C-level dict lookup per row, Python only for new keys.
        idx: list[int | None] = list(map(self._raw_index.get, batch.key))
        if None in idx:
            idx = [self.series_index(k) if i is None else i
                   for i, k in zip(idx, batch.key, strict=True)]
        return Columns(
            series=np.array(idx, dtype=np.int64),
            created_at=batch.created_at,
            latency_ms=batch.latency_ms,
            prompt_tokens=batch.prompt_tokens,
            completion_tokens=batch.completion_tokens,
            cached_tokens=batch.cached_tokens,
            cost_pico=batch.cost_pico,
            confidence=batch.confidence,
            is_error=batch.is_error,
        )

    def _validate(
        self, b: RawBatch
    ) -> tuple[npt.NDArray[np.bool_], list[tuple[int, str]]]:
        """Defence in depth behind the table's CHECK constraints (which a migration, a
        restored dump or a NOT VALID constraint may not have enforced) plus what SQL cannot
        check: timestamps from a client clock far in the future."""
        now = self.clock()
        checks = (
            (~np.isfinite(b.latency_ms) | (b.latency_ms < 0),
             "latency_ms must be a finite number >= 0"),
            ((b.prompt_tokens < 0) | (b.completion_tokens < 0) | (b.cached_tokens < 0),
             "token counts must be >= 0"),
            (b.cached_tokens > b.prompt_tokens,
             "cached_tokens must not exceed prompt_tokens"),
            ((b.cache_write_tokens < 0)
             | (b.cached_tokens + b.cache_write_tokens > b.prompt_tokens),
             "cache_write_tokens must be >= 0 and, with cached_tokens, within prompt_tokens"),
            (~((b.confidence == NO_CONFIDENCE) | ((b.confidence >= 0) & (b.confidence <= 1))),
             "confidence must be between 0 and 1"),
            (b.cost_pico < UNKNOWN_COST, "cost_usd must be >= 0"),
            (~np.isfinite(b.created_at) | (b.created_at > now + self.max_future_skew_seconds),
             f"created_at is more than {self.max_future_skew_seconds:g} s in the future "
             "(client clock skew?)"),
        )
        bad = np.zeros(len(b), dtype=np.bool_)
        reasons: list[tuple[int, str]] = []
        for mask, why in checks:
            fresh = mask & ~bad
            if fresh.any():
                reasons.extend((int(b.id[i]), why) for i in np.flatnonzero(fresh).tolist())
                bad |= fresh
        return ~bad, reasons
