"""A batch of request rows as monitors see it (pure data, column-wise numpy arrays)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_mlops.core.series import KEY_SEPARATOR, SeriesIndex

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

UNKNOWN_COST = -1  # cost_pico of a row whose model is not in the price table
NO_CONFIDENCE = -1.0  # confidence of a row that sent none
NO_QUERY_LENGTH = -1.0


@dataclass(frozen=True)
class RawBatch:
    """Rows after the cursor, column-wise, in cursor order, as the repository read them.

    ``key`` holds ``tenant, function, model, variant`` joined by
    :data:`~stream_mlops.core.series.KEY_SEPARATOR`; costs are pico-dollars with
    :data:`UNKNOWN_COST` for unpriced rows; confidence is :data:`NO_CONFIDENCE` and
    query length :data:`NO_QUERY_LENGTH` when absent.
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
    is_error: Bools
    # Cache-creation tokens, and whether cost_usd was sent by the caller (checked against
    # the price table) rather than computed by the database: absent in replays that do
    # not need them, filled with their neutral values.
    cache_write_tokens: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    caller_cost: Bools = field(default_factory=lambda: np.zeros(0, np.bool_))
    experiment_id: list[str | None] = field(default_factory=list)
    query_length: F64 = field(default_factory=lambda: np.zeros(0, np.float64))
    error_type: list[str | None] = field(default_factory=list)
    cache_write_1h_tokens: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    # OpenTelemetry operation and provider joined by KEY_SEPARATOR; None for the usual
    # ("chat", the provider of the price table).
    gen_ai: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.id)
        # Frozen, so set through object: only to fill in columns a caller left out.
        if len(self.cache_write_tokens) != n:
            object.__setattr__(self, "cache_write_tokens", np.zeros(n, np.int64))
        if len(self.caller_cost) != n:
            object.__setattr__(self, "caller_cost", np.zeros(n, np.bool_))
        if len(self.experiment_id) != n:
            object.__setattr__(self, "experiment_id", [None] * n)
        if len(self.query_length) != n:
            object.__setattr__(self, "query_length", np.full(n, NO_QUERY_LENGTH))
        if len(self.error_type) != n:
            object.__setattr__(self, "error_type", [None] * n)
        if len(self.cache_write_1h_tokens) != n:
            object.__setattr__(self, "cache_write_1h_tokens", np.zeros(n, np.int64))
        if len(self.gen_ai) != n:
            object.__setattr__(self, "gen_ai", [None] * n)

    def __len__(self) -> int:
        return len(self.id)

    def take(self, where: Bools | I64) -> RawBatch:
        """The rows selected by a mask or by indices, in their order."""
        picked = np.flatnonzero(where) if where.dtype == np.bool_ else where
        rows = picked.tolist()
        cols: dict[str, Any] = {f: getattr(self, f)[picked] for f in _ARRAY_FIELDS}
        cols |= {f: [getattr(self, f)[i] for i in rows] for f in _LIST_FIELDS}
        return RawBatch(**cols)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> RawBatch:
        """From row tuples ``(xid, id, tenant, function, model, variant, created_at,
        latency_ms, prompt, completion, cached, cost_pico, confidence, is_error)``
        (tests and tools; the repository reads columns directly)."""
        c = list(zip(*rows, strict=True)) or [()] * 14
        return cls(
            xid=np.array(c[0], np.int64), id=np.array(c[1], np.int64),
            key=[KEY_SEPARATOR.join(k) for k in zip(*c[2:6], strict=True)],
            created_at=np.array(c[6], np.float64), latency_ms=np.array(c[7], np.float64),
            prompt_tokens=np.array(c[8], np.int64), completion_tokens=np.array(c[9], np.int64),
            cached_tokens=np.array(c[10], np.int64), cost_pico=np.array(c[11], np.int64),
            confidence=np.array(c[12], np.float64), is_error=np.array(c[13], np.bool_))


_LIST_FIELDS = ("key", "experiment_id", "error_type", "gen_ai")
_ARRAY_FIELDS = tuple(f for f in RawBatch.__dataclass_fields__ if f not in _LIST_FIELDS)


@dataclass(frozen=True)
class Batch:
    """A batch's valid rows in cursor order, each with its series: what monitors observe.

    ``index`` is the processor's series index (read it, never grow it here); group
    numbers of the rows are ``index.function[series]``, ``index.group[series]`` and so on.
    ``now`` is the processor's clock, or the newest row's time if that is later.
    ``serial`` tells batches apart, so that state shared by several monitors
    (:meth:`SeriesIndex.shared`) adds each batch once.
    """

    rows: RawBatch
    series: I64
    index: SeriesIndex
    now: float
    serial: int = field(default_factory=itertools.count().__next__, compare=False)

    def __len__(self) -> int:
        return len(self.series)

    @property
    def function(self) -> I64:
        """Each row's function number."""
        out: I64 = self.index.function[self.series]
        return out

    @property
    def group(self) -> I64:
        """Each row's model group number."""
        out: I64 = self.index.group[self.series]
        return out


def batch_of(index: SeriesIndex, keys: Sequence[tuple[str, str, str, str]], series: I64, *,
             created_at: F64, now: float | None = None, **columns: Any) -> Batch:
    """A batch for tests, benchmarks and tools: row ``i`` belongs to ``keys[series[i]]``;
    columns not given take neutral values (no tokens, cost 0, no confidence, success).

    Examples
    --------
    >>> ix = SeriesIndex()
    >>> b = batch_of(ix, [("t", "f", "m", "v")], np.array([0, 0]),
    ...              created_at=np.array([10.0, 11.0]), latency_ms=np.array([5.0, 7.0]))
    >>> len(b), b.now, ix.keys
    (2, 11.0, [('t', 'f', 'm', 'v')])
    """
    n = len(series)
    raw = [KEY_SEPARATOR.join(k) for k in keys]
    numbers = index.series_of(raw) if raw else np.zeros(0, np.int64)
    ints = ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_pico",
            "cache_write_tokens")
    cols: dict[str, Any] = {name: np.zeros(n, np.int64) for name in ints}
    cols |= {"latency_ms": np.zeros(n), "confidence": np.full(n, NO_CONFIDENCE),
             "is_error": np.zeros(n, np.bool_)}
    cols |= columns
    rows = RawBatch(xid=np.zeros(n, np.int64), id=np.arange(n, dtype=np.int64),
                    key=[raw[s] for s in series.tolist()], created_at=created_at, **cols)
    return Batch(rows, numbers[series] if n else np.zeros(0, np.int64), index,
                 float(created_at.max()) if now is None and n else (now or 0.0))
