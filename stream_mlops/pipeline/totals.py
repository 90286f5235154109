"""Per-series running totals and histograms, updated one batch at a time with numpy.

Per-row Python work is the cost to beat in a stream processor, so a batch is aggregated
column-wise (``bincount``/``add.at``) and only the series it touched are handed back.
Costs are integers of pico-dollars (1e-12 USD) so totals equal ``SUM(cost_usd)`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_mlops.stats.rings import exact_grouped_sum
from stream_mlops.telemetry.genai import DURATION_BUCKETS_SECONDS, TOKEN_BUCKETS

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

CONFIDENCE_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

LATENCY_BOUNDS = np.array(DURATION_BUCKETS_SECONDS)
TOKEN_BOUNDS = np.array(TOKEN_BUCKETS, dtype=np.float64)
CONFIDENCE_BOUNDS = np.array(CONFIDENCE_BUCKETS)


@dataclass(frozen=True)
class Columns:
    """One batch of requests, column-wise; ``series`` maps each row to a series index."""

    series: I64
    created_at: F64  # unix seconds
    latency_ms: F64
    prompt_tokens: I64
    completion_tokens: I64
    cached_tokens: I64
    cost_pico: I64  # core.batch.UNKNOWN_COST when unpriced
    confidence: F64  # core.batch.NO_CONFIDENCE when absent
    is_error: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.series)

    def take(self, mask: npt.NDArray[np.bool_]) -> Columns:
        return Columns(*(getattr(self, f)[mask] for f in _FIELDS))


_FIELDS = tuple(Columns.__dataclass_fields__)


@dataclass(frozen=True)
class Delta:
    """What one batch adds to the series it touched (rows aligned with ``series``)."""

    series: I64
    success: I64
    error: I64
    latency_sum_seconds: F64
    latency_buckets: I64
    prompt_tokens: I64
    completion_tokens: I64
    cached_tokens: I64
    input_token_buckets: I64
    output_token_buckets: I64
    cost_pico: list[int]
    unpriced: I64
    confidence_count: I64
    confidence_sum: F64
    confidence_buckets: I64
    last_event_at: F64


def _bucket_index(values: npt.NDArray[np.floating] | I64, bounds: F64) -> I64:
    # Prometheus buckets are inclusive upper bounds (le): v lands in the first bound >= v.
    return np.searchsorted(bounds, values, side="left").astype(np.int64)


def _grouped_hist(slot: I64, values: npt.ArrayLike, bounds: F64, n: int) -> I64:
    nb = len(bounds) + 1
    b = _bucket_index(np.asarray(values), bounds)
    return np.bincount(slot * nb + b, minlength=n * nb).reshape(n, nb).astype(np.int64)


def _grouped_sum_int(slot: I64, values: I64, n: int) -> I64:
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, slot, values)
    return out


def aggregate(
    cols: Columns,
    latency_bounds: F64,
    token_bounds: F64,
    confidence_bounds: F64,
) -> Delta:
    """Aggregate a batch per series.

    Parameters
    ----------
    cols : Columns
        The batch; every row must already be valid (see the processor's validation).
    latency_bounds, token_bounds, confidence_bounds : ndarray
        Histogram upper bounds (seconds, tokens, confidence); +Inf is implicit.

    Returns
    -------
    Delta
        One row per distinct series in the batch, in ascending series order.

    Examples
    --------
    >>> import numpy as np
    >>> cols = Columns(series=np.array([3, 1, 3]), created_at=np.array([1.0, 2.0, 3.0]),
    ...     latency_ms=np.array([5.0, 50.0, 500.0]), prompt_tokens=np.array([10, 20, 30]),
    ...     completion_tokens=np.array([1, 2, 3]), cached_tokens=np.array([0, 0, 10]),
    ...     cost_pico=np.array([7, -1, 5]), confidence=np.array([0.9, -1.0, 0.5]),
    ...     is_error=np.array([False, True, False]))
    >>> d = aggregate(cols, np.array([0.01, 0.1]), np.array([16.0]), np.array([0.5, 1.0]))
    >>> d.series.tolist(), d.success.tolist(), d.error.tolist(), d.cost_pico
    ([1, 3], [0, 2], [1, 0], [0, 12])
    >>> d.latency_buckets.tolist(), d.unpriced.tolist(), d.confidence_buckets.tolist()
    ([[0, 1, 0], [1, 0, 1]], [1, 0], [[0, 0, 0], [1, 1, 0]])
    """
    touched, slot = np.unique(cols.series, return_inverse=True)
    slot = slot.astype(np.int64)
    n = len(touched)
    errors = cols.is_error.astype(np.int64)
    error = np.bincount(slot, weights=errors, minlength=n).astype(np.int64)
    total = np.bincount(slot, minlength=n).astype(np.int64)
    latency_s = cols.latency_ms / 1000.0

    priced = cols.cost_pico >= 0
    costs = np.where(priced, cols.cost_pico, 0)
    cost_sums = exact_grouped_sum(slot, costs, n)

    has_conf = cols.confidence >= 0
    conf_slot = slot[has_conf]
    conf = cols.confidence[has_conf]

    last = np.full(n, -np.inf)
    np.maximum.at(last, slot, cols.created_at)

    return Delta(
        series=touched.astype(np.int64),
        success=total - error,
        error=error,
        latency_sum_seconds=np.bincount(slot, weights=latency_s, minlength=n).astype(np.float64),
        latency_buckets=_grouped_hist(slot, latency_s, latency_bounds, n),
        prompt_tokens=_grouped_sum_int(slot, cols.prompt_tokens, n),
        completion_tokens=_grouped_sum_int(slot, cols.completion_tokens, n),
        cached_tokens=_grouped_sum_int(slot, cols.cached_tokens, n),
        input_token_buckets=_grouped_hist(slot, cols.prompt_tokens, token_bounds, n),
        output_token_buckets=_grouped_hist(slot, cols.completion_tokens, token_bounds, n),
        cost_pico=cost_sums,
        unpriced=np.bincount(slot, weights=~priced, minlength=n).astype(np.int64),
        confidence_count=np.bincount(conf_slot, minlength=n).astype(np.int64),
        confidence_sum=np.bincount(conf_slot, weights=conf, minlength=n).astype(np.float64),
        confidence_buckets=_grouped_hist(conf_slot, conf, confidence_bounds, n),
        last_event_at=last,
    )


class SeriesTotals:
    """Running totals for every series, column-wise, indexed by series number (the
    processor's :class:`~stream_mlops.core.series.SeriesIndex` names them)."""

    def __init__(self, n_latency: int = len(LATENCY_BOUNDS) + 1,
                 n_tokens: int = len(TOKEN_BOUNDS) + 1,
                 n_confidence: int = len(CONFIDENCE_BOUNDS) + 1) -> None:
        self._shape = (n_latency, n_tokens, n_confidence)
        self.success = np.zeros(0, np.int64)
        self.error = np.zeros(0, np.int64)
        self.latency_sum_seconds = np.zeros(0)
        self.latency_buckets = np.zeros((0, n_latency), np.int64)
        self.prompt_tokens = np.zeros(0, np.int64)
        self.completion_tokens = np.zeros(0, np.int64)
        self.cached_tokens = np.zeros(0, np.int64)
        self.input_token_buckets = np.zeros((0, n_tokens), np.int64)
        self.output_token_buckets = np.zeros((0, n_tokens), np.int64)
        self.cost_pico: list[int] = []
        self.unpriced = np.zeros(0, np.int64)
        self.confidence_count = np.zeros(0, np.int64)
        self.confidence_sum = np.zeros(0)
        self.confidence_buckets = np.zeros((0, n_confidence), np.int64)
        self.last_event_at = np.zeros(0)

    _ARRAYS = (
        "success", "error", "latency_sum_seconds", "latency_buckets", "prompt_tokens",
        "completion_tokens", "cached_tokens", "input_token_buckets", "output_token_buckets",
        "unpriced", "confidence_count", "confidence_sum", "confidence_buckets", "last_event_at",
    )

    def __len__(self) -> int:
        return len(self.cost_pico)

    def grow(self, n: int) -> None:
        """Zeroed totals for series up to ``n`` (new series of the index)."""
        extra = n - len(self)
        if extra <= 0:
            return
        for name in self._ARRAYS:
            arr = getattr(self, name)
            pad = np.zeros((extra, *arr.shape[1:]), arr.dtype)
            if name == "last_event_at":
                pad[:] = -np.inf
            setattr(self, name, np.concatenate([arr, pad]))
        self.cost_pico += [0] * extra

    def apply(self, d: Delta) -> None:
        """Add a batch's delta (after it has been committed)."""
        s = d.series
        for name in self._ARRAYS:
            if name == "last_event_at":
                self.last_event_at[s] = np.maximum(self.last_event_at[s], d.last_event_at)
            else:
                getattr(self, name)[s] += getattr(d, name)
        for i, c in zip(s.tolist(), d.cost_pico, strict=True):
            self.cost_pico[i] += c

    def after(self, d: Delta) -> Delta:
        """The absolute totals of ``d``'s series once ``d`` is applied (what gets persisted)."""
        s = d.series
        return Delta(
            series=s,
            cost_pico=[self.cost_pico[i] + c for i, c in zip(s.tolist(), d.cost_pico, strict=True)],
            last_event_at=np.maximum(self.last_event_at[s], d.last_event_at),
            **{
                name: getattr(self, name)[s] + getattr(d, name)
                for name in self._ARRAYS
                if name != "last_event_at"
            },
        )

    def load(self, d: Delta) -> None:
        """Replace everything with persisted totals (``d.series`` must be 0..n-1)."""
        for name in self._ARRAYS:
            setattr(self, name, np.array(getattr(d, name), copy=True))
        self.cost_pico = list(d.cost_pico)
