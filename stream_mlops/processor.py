"""Turns a batch of request rows into effects: validated, folded, aggregated per series.

The processor owns the in-memory state but performs no I/O: the consumer persists the
effects and the cursor in one transaction and only then calls :meth:`Processor.commit`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_mlops.settings import CONFIDENCE_BUCKETS, DURATION_BUCKETS_SECONDS, TOKEN_BUCKETS
from stream_mlops.stats.totals import (
    NO_CONFIDENCE,
    UNKNOWN_COST,
    Columns,
    Delta,
    SeriesKey,
    SeriesTotals,
    aggregate,
)

log = logging.getLogger(__name__)

OTHER = "__other__"
LABELS = ("tenant", "function", "model", "variant")

# Column order of the consumer's fetch query (db/queries.sql: fetch_batch).
ROW_XID, ROW_ID = 0, 1
ROW_KEY = slice(2, 6)
ROW_CREATED, ROW_LATENCY, ROW_PROMPT, ROW_COMPLETION, ROW_CACHED = 6, 7, 8, 9, 10
ROW_COST, ROW_CONFIDENCE, ROW_ERROR = 11, 12, 13
Row = Sequence[Any]

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


@dataclass
class Effects:
    """Everything one batch changes; persisted atomically with the cursor."""

    last_xid: str
    last_id: int
    events: int
    delta: Delta | None
    persisted: Delta | None
    quarantine: list[tuple[int, str]] = field(default_factory=list)
    max_created_at: float = 0.0


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
    ) -> None:
        self.totals = SeriesTotals(
            len(LATENCY_BOUNDS) + 1, len(TOKEN_BOUNDS) + 1, len(CONFIDENCE_BOUNDS) + 1
        )
        self.folder = LabelFolder(max_label_values)
        self.max_future_skew_seconds = max_future_skew_seconds
        self.clock = clock
        self._index: dict[SeriesKey, int] = {}
        self._raw_index: dict[tuple[Any, ...], int] = {}

    # -- state ------------------------------------------------------------------------
    def load(self, keys: Sequence[SeriesKey], persisted: Delta) -> None:
        self.totals.load(keys, persisted)
        self._index = {k: i for i, k in enumerate(keys)}
        self._raw_index = {}
        self.folder = LabelFolder(self.folder.limit)
        for k in keys:
            self.folder.remember(k)

    def commit(self, effects: Effects) -> None:
        if effects.delta is not None:
            self.totals.apply(effects.delta)

    # -- batch ------------------------------------------------------------------------
    def series_index(self, raw: tuple[Any, ...]) -> int:
        idx = self._raw_index.get(raw)
        if idx is None:
            key = self.folder.fold((raw[0], raw[1], raw[2], raw[3]))
            idx = self._index.get(key)
            if idx is None:
                idx = self.totals.add_series(key)
                self._index[key] = idx
            if len(self._raw_index) >= self._KEY_CACHE_LIMIT:
                self._raw_index.clear()
            self._raw_index[raw] = idx
        return idx

    def prepare(self, rows: Sequence[Row]) -> Effects:
        """Validate and aggregate ``rows`` (ordered by cursor) without changing totals."""
        last = rows[-1]
        effects = Effects(last_xid=str(last[ROW_XID]), last_id=int(last[ROW_ID]),
                          events=len(rows), delta=None, persisted=None)
        try:
            cols = self._columns(rows)
            good, reasons = self._validate(cols, rows)
            effects.quarantine = reasons
            if len(reasons):
                cols = cols.take(good)
            if len(cols):
                effects.delta = aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
                effects.max_created_at = float(cols.created_at.max())
        except Exception:
            # Something no check foresaw: isolate the poison rows one by one.
            log.exception("batch failed to aggregate; isolating rows", extra={"rows": len(rows)})
            return self._prepare_row_by_row(rows, effects)
        if effects.delta is not None:
            effects.persisted = self.totals.after(effects.delta)
        return effects

    def _prepare_row_by_row(self, rows: Sequence[Row], effects: Effects) -> Effects:
        good_rows: list[Row] = []
        effects.quarantine = []
        for row in rows:
            try:
                one = self._columns([row])
                _, why = self._validate(one, [row])
                if why:
                    effects.quarantine.extend(why)
                    continue
                aggregate(one, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
                good_rows.append(row)
            except Exception as exc:
                effects.quarantine.append((int(row[ROW_ID]), f"unprocessable row: {exc!r}"[:500]))
        if good_rows:
            cols = self._columns(good_rows)
            effects.delta = aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
            effects.persisted = self.totals.after(effects.delta)
            effects.max_created_at = float(cols.created_at.max())
        return effects

    def _columns(self, rows: Sequence[Row]) -> Columns:
        c = list(zip(*rows, strict=True))
        keys = list(zip(*c[ROW_KEY], strict=True))
        # The per-row cost to beat: one C-level dict lookup per row, Python only for new keys.
        idx: list[int | None] = list(map(self._raw_index.get, keys))
        if None in idx:
            idx = [self.series_index(k) if i is None else i for i, k in zip(idx, keys, strict=True)]
        return Columns(
            series=np.array(idx, dtype=np.int64),
            created_at=np.array(c[ROW_CREATED], dtype=np.float64),
            latency_ms=np.array(c[ROW_LATENCY], dtype=np.float64),
            prompt_tokens=np.array(c[ROW_PROMPT], dtype=np.int64),
            completion_tokens=np.array(c[ROW_COMPLETION], dtype=np.int64),
            cached_tokens=np.array(c[ROW_CACHED], dtype=np.int64),
            cost_pico=np.array(c[ROW_COST], dtype=np.int64),
            confidence=np.array(c[ROW_CONFIDENCE], dtype=np.float64),
            is_error=np.array(c[ROW_ERROR], dtype=np.bool_),
        )

    def _validate(
        self, cols: Columns, rows: Sequence[Row]
    ) -> tuple[np.ndarray[Any, np.dtype[np.bool_]], list[tuple[int, str]]]:
        """Defence in depth behind the table's CHECK constraints (which a migration, a
        restored dump or a NOT VALID constraint may not have enforced) plus what SQL cannot
        check: timestamps from a client clock far in the future."""
        now = self.clock()
        checks = (
            (~np.isfinite(cols.latency_ms) | (cols.latency_ms < 0),
             "latency_ms must be a finite number >= 0"),
            ((cols.prompt_tokens < 0) | (cols.completion_tokens < 0) | (cols.cached_tokens < 0),
             "token counts must be >= 0"),
            (cols.cached_tokens > cols.prompt_tokens,
             "cached_tokens must not exceed prompt_tokens"),
            (~((cols.confidence == NO_CONFIDENCE)
               | ((cols.confidence >= 0) & (cols.confidence <= 1))),
             "confidence must be between 0 and 1"),
            (cols.cost_pico < UNKNOWN_COST, "cost_usd must be >= 0"),
            (~np.isfinite(cols.created_at)
             | (cols.created_at > now + self.max_future_skew_seconds),
             f"created_at is more than {self.max_future_skew_seconds:g} s in the future "
             "(client clock skew?)"),
        )
        bad = np.zeros(len(cols), dtype=np.bool_)
        reasons: list[tuple[int, str]] = []
        for mask, why in checks:
            fresh = mask & ~bad
            if fresh.any():
                reasons.extend((int(rows[i][ROW_ID]), why) for i in np.flatnonzero(fresh).tolist())
                bad |= fresh
        return ~bad, reasons
