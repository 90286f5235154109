"""Turns a batch of request rows into effects: validated, folded, aggregated per series,
and observed by every monitor.

The processor owns the in-memory state but performs no I/O: the consumer persists the
effects and the cursor in one transaction and only then calls :meth:`Processor.commit`.

Commit rule. Only the series totals (what ``/metrics`` counts) wait for the commit;
:meth:`Processor.prepare` already moves the monitors' state (alert windows, cost rings,
experiment tests, drift buffers). So when a persist fails, the consumer never retries the
batch on this state: it drops the whole processor state and loads a new one from the
database (:meth:`Processor.loaded`, then :meth:`Processor.adopt`), in which the batch
does not exist. ``tests/unit/test_processor.py`` fails a persist after ``prepare`` and
checks that no monitor state of that batch survives.
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from stream_mlops.core.alerts import AlertChange
from stream_mlops.core.batch import NO_CONFIDENCE, UNKNOWN_COST, Batch, RawBatch
from stream_mlops.core.monitor import BackgroundJob, DatabaseJob, Job, Monitor, Store, Write
from stream_mlops.core.rows import ThresholdRow
from stream_mlops.core.series import SeriesBudget, SeriesIndex, SeriesKey
from stream_mlops.pipeline.monitors import build_monitors
from stream_mlops.pipeline.totals import (
    CONFIDENCE_BOUNDS,
    LATENCY_BOUNDS,
    TOKEN_BOUNDS,
    Columns,
    Delta,
    SeriesTotals,
    aggregate,
)

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Monitor)
# Rows dated before this (2000-01-01 UTC) are a zero or garbled timestamp, not a backfill.
# Hours since then fit the costs' roll-up key, and calendar days stay within what
# Python's dates can hold; a year-1653 row made every batch it was in fail to aggregate.
EARLIEST_CREATED_AT = 946_684_800.0


@dataclass
class Effects:
    """Everything one batch changes; persisted atomically with the cursor."""

    events: int
    delta: Delta | None
    persisted: Delta | None
    quarantine: list[tuple[int, str]] = field(default_factory=list)
    max_created_at: float = 0.0
    writes: list[Write] = field(default_factory=list)  # the monitors', in the transaction
    alerts: list[AlertChange] = field(default_factory=list)  # written after the commit


class Processor:
    """Pure state machine over request rows (no sockets, no database)."""

    def __init__(
        self,
        *,
        monitors: Callable[[], Sequence[Monitor]] | None = None,
        series_budget: SeriesBudget | None = None,
        max_future_skew_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._new_monitors = monitors or default_monitors
        self.series_budget = series_budget or SeriesBudget()
        self.max_future_skew_seconds = max_future_skew_seconds
        self.clock = clock
        self.generation = 0  # bumped by adopt(): work computed on older state is stale
        self._fresh()

    def _fresh(self) -> None:
        self.index = SeriesIndex(replace(self.series_budget))
        self.totals = SeriesTotals()
        self.monitors: list[Monitor] = list(self._new_monitors())
        for m in self.monitors:
            m.index = self.index

    def monitor(self, kind: type[M]) -> M:
        """The monitor of a kind (KeyError if it is not registered)."""
        for m in self.monitors:
            if isinstance(m, kind):
                return m
        raise KeyError(kind.__name__)

    # -- state ------------------------------------------------------------------------
    def loaded(self, keys: Sequence[SeriesKey], persisted: Delta, store: Store) -> Processor:
        """A processor with this one's settings holding the durable state, built off to
        the side and taken over whole with :meth:`adopt`, so no reader (``/metrics``, a
        background job) ever sees half of it."""
        p = copy.copy(self)
        p._fresh()
        p.load(keys, persisted)
        p.configure_budgets(store)
        for i, m in enumerate(p.monitors):
            # One monitor's unreadable state (a hand edit, an old dump, a bug) must not keep
            # the others, and every tenant's monitoring, from starting: it starts empty.
            if not store.isolated(f"{m.name}: its stored state cannot be restored; it "
                                  "starts empty", functools.partial(m.restore, store)):
                fresh = next(f for f in self._new_monitors() if type(f) is type(m))
                fresh.index = p.index
                p.monitors[i] = fresh
        p.totals.grow(len(p.index))  # monitors' replays may have met new series
        return p

    def adopt(self, other: Processor) -> None:
        """Take over ``other``'s state (one step: call it under the lock readers hold)."""
        generation = self.generation
        self.__dict__.update(other.__dict__)
        self.generation = generation + 1

    def load(self, keys: Sequence[SeriesKey], persisted: Delta) -> None:
        """Series and their persisted totals (monitors start empty: see :meth:`loaded`)."""
        self.index.load(keys)
        self.totals.load(persisted)

    def commit(self, effects: Effects) -> None:
        if effects.delta is not None:
            self.totals.apply(effects.delta)

    # -- periodic ---------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[AlertChange]:
        """Every monitor's rules at ``now`` (silence resolves alerts too)."""
        at = self.clock() if now is None else now
        return [c for m in self.monitors for c in m.evaluate(at)]

    def configure(self, store: Store) -> None:
        self.configure_budgets(store)
        for m in self.monitors:
            m.configure(store)

    def configure_budgets(self, store: Store) -> None:
        """Per-tenant series budgets (``max_series`` in mlops.thresholds)."""
        self.index.budget.overrides = {
            r.tenant_id: max(0, int(r.value)) for r in store.rows("alert_thresholds", ThresholdRow)
            if r.metric == "max_series" and r.function_name is None}

    def jobs(self) -> list[Job | BackgroundJob | DatabaseJob]:
        return [j for m in self.monitors for j in m.jobs()]

    def metrics(self, now: float) -> Iterator[Callable[[], Any]]:
        """Each monitor's metric builder (call under the lock; build after it)."""
        return (m.metrics(now) for m in self.monitors)

    # -- batch ------------------------------------------------------------------------
    def prepare(self, batch: RawBatch) -> Effects:
        """Validate and aggregate ``batch`` (in cursor order) without changing totals."""
        effects = Effects(events=len(batch), delta=None, persisted=None)
        try:
            good, effects.quarantine = self.validate(batch)
            self._aggregate(batch.take(good) if effects.quarantine else batch, effects)
        except Exception:
            # Something no check foresaw: isolate the poison rows one by one.
            log.exception("batch failed to aggregate; isolating rows",
                          extra={"rows": len(batch)})
            self._prepare_row_by_row(batch, effects)
        return effects

    def _aggregate(self, rows: RawBatch, effects: Effects) -> None:
        if not len(rows):
            return
        series = self.index.series_of(rows.key)
        self.totals.grow(len(self.index))
        cols = _columns(rows, series)
        effects.delta = aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
        effects.persisted = self.totals.after(effects.delta)
        effects.max_created_at = float(cols.created_at.max())
        batch = Batch(rows, series, self.index, max(self.clock(), effects.max_created_at))
        for m in self.monitors:
            seen = m.observe(batch)
            effects.writes += seen.writes
            effects.alerts += seen.alerts

    def _prepare_row_by_row(self, batch: RawBatch, effects: Effects) -> None:
        good = np.zeros(len(batch), np.bool_)
        effects.quarantine = []
        for i in range(len(batch)):
            one = batch.take(np.array([i], np.int64))
            try:
                _, why = self.validate(one)
                if why:
                    effects.quarantine.extend(why)
                    continue
                aggregate(_columns(one, self.index.series_of(one.key)), LATENCY_BOUNDS,
                          TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
                good[i] = True
            except Exception as exc:
                effects.quarantine.append((int(one.id[0]), f"unprocessable row: {exc}"[:500]))
        self._aggregate(batch.take(good), effects)

    def validate(
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
            (b.created_at < EARLIEST_CREATED_AT,
             "created_at is before 2000-01-01 (a zero or garbled timestamp?)"),
        )
        bad = np.zeros(len(b), dtype=np.bool_)
        reasons: list[tuple[int, str]] = []
        for mask, why in checks:
            fresh = mask & ~bad
            if fresh.any():
                reasons.extend((int(b.id[i]), why) for i in np.flatnonzero(fresh).tolist())
                bad |= fresh
        return ~bad, reasons


def _columns(rows: RawBatch, series: npt.NDArray[np.int64]) -> Columns:
    return Columns(series=series, created_at=rows.created_at, latency_ms=rows.latency_ms,
                   prompt_tokens=rows.prompt_tokens, completion_tokens=rows.completion_tokens,
                   cached_tokens=rows.cached_tokens, cost_pico=rows.cost_pico,
                   confidence=rows.confidence, is_error=rows.is_error)


def default_monitors() -> list[Monitor]:
    """Every monitor with its default settings (the service builds them from Settings)."""
    return build_monitors(None)
