"""The OpenTelemetry GenAI client metrics, by the attributes the conventions require.

``gen_ai.client.operation.duration`` (every request) and ``gen_ai.client.token.usage``
(requests that succeeded, input and output tokens) as Prometheus histograms, with
``gen_ai.operation.name`` (logged per request; ``chat`` by default),
``gen_ai.provider.name`` (logged per request, else the price table's provider of the
model, in the conventions' names), ``gen_ai.request.model`` and, on failures,
``error.type``. Exported as ``gen_ai_client_operation_duration_seconds`` and
``gen_ai_client_token_usage`` with the attributes' dots as underscores; the names are
checked against the ``opentelemetry-semantic-conventions`` package in the tests.

The aggregates are the processor's, kept in ``mlops.genai_totals`` with each batch like
the series totals, so they survive restarts and count every row once. Models are the
series index's (a tenant past its series budget shows as ``__other__``), and a model's
error types past :attr:`GenAiMetrics.MAX_ERROR_TYPES` fold into ``_OTHER``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import HistogramMetricFamily, Metric

from stream_mlops.core.batch import Batch
from stream_mlops.core.monitor import MetricsBuilder, Monitor, Observed, Store, Write
from stream_mlops.core.series import KEY_SEPARATOR, SeriesIndex
from stream_mlops.costs.pricing import PriceBook, price_book

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Histogram bucket advice of the OpenTelemetry GenAI semantic conventions.
DURATION_BUCKETS_SECONDS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
_DURATION = np.array(DURATION_BUCKETS_SECONDS)
_TOKENS = np.array(TOKEN_BUCKETS, np.float64)

# The price source's provider ids in the conventions' gen_ai.provider.name values (ids
# the conventions do not list are used as they are).
OTEL_PROVIDER = {"google": "gcp.gemini", "mistral": "mistral_ai", "x-ai": "x_ai",
                 "aws": "aws.bedrock", "azure": "azure.ai.openai"}
OTHER = "_OTHER"
DEFAULT_OPERATION = "chat"

Key = tuple[str, str, str, str]  # model, operation, provider, error type ('' = success)


@dataclass(frozen=True)
class GenAiRow:
    """A row of mlops.genai_totals (``genai_totals``)."""

    model: str
    operation: str
    provider: str
    error_type: str
    duration_count: int
    duration_sum: float
    duration_buckets: list[int]
    input_sum: int
    input_buckets: list[int]
    output_sum: int
    output_buckets: list[int]


def _bucket(values: F64, bounds: F64) -> I64:
    """Histogram bucket of each value (``le`` semantics: a value on a bound is in it)."""
    out: I64 = np.searchsorted(bounds, values, side="left").astype(np.int64)
    return out


class GenAiMetrics(Monitor):
    """Keeps the GenAI histograms (see the module docstring)."""

    name = "genai"
    MAX_ERROR_TYPES = 20  # per model: error types are callers' text

    def __init__(self) -> None:
        self.index = SeriesIndex()
        self.prices = PriceBook()
        self._providers: dict[str, str] = {}
        self.keys: dict[Key, int] = {}
        self.errors: dict[str, set[str]] = {}  # model -> its error types (labels)
        nd, nt = len(_DURATION) + 1, len(_TOKENS) + 1
        self.duration_count = np.zeros(0, np.int64)
        self.duration_sum = np.zeros(0, np.float64)
        self.duration_buckets = np.zeros((0, nd), np.int64)
        self.input_sum = np.zeros(0, np.int64)
        self.input_buckets = np.zeros((0, nt), np.int64)
        self.output_sum = np.zeros(0, np.int64)
        self.output_buckets = np.zeros((0, nt), np.int64)

    # -- state ------------------------------------------------------------------------
    def configure(self, store: Store) -> None:
        """The price table: the provider of models whose rows do not name one."""
        self.prices = price_book(store)
        self._providers = {}

    def restore(self, store: Store) -> None:
        self.configure(store)
        rows = store.rows("genai_totals", GenAiRow)
        ids = self._ids([(r.model, r.operation, r.provider, r.error_type) for r in rows])
        for i, r in zip(ids.tolist(), rows, strict=True):
            self.duration_count[i], self.duration_sum[i] = r.duration_count, r.duration_sum
            self.duration_buckets[i] = r.duration_buckets
            self.input_sum[i], self.input_buckets[i] = r.input_sum, r.input_buckets
            self.output_sum[i], self.output_buckets[i] = r.output_sum, r.output_buckets

    def _ids(self, keys: list[Key]) -> I64:
        """Numbers of ``keys``, growing the arrays for new ones."""
        out = np.empty(len(keys), np.int64)
        for j, key in enumerate(keys):
            i = self.keys.get(key)
            if i is None:
                i = self.keys[key] = len(self.keys)
                if key[3] and key[3] != OTHER:
                    self.errors.setdefault(key[0], set()).add(key[3])
            out[j] = i
        grow = len(self.keys) - len(self.duration_count)
        if grow > 0:
            for name in ("duration_count", "duration_sum", "input_sum", "output_sum",
                         "duration_buckets", "input_buckets", "output_buckets"):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.zeros((grow, *a.shape[1:]),
                                                                a.dtype)]))
        return out

    def provider(self, model: str, tenant: str) -> str:
        """A model's gen_ai.provider.name from the price table (``_OTHER``: unpriced)."""
        known = self._providers.get(model)
        if known is None:
            p = self.prices.provider(model, tenant)
            known = self._providers[model] = OTHER if p is None else OTEL_PROVIDER.get(p, p)
        return known

    # -- data -------------------------------------------------------------------------
    def observe(self, batch: Batch) -> Observed:
        rows, index = batch.rows, batch.index
        if not len(batch):
            return Observed()
        model = index.model[batch.series]
        # Small integer codes per row, then one unique over their combination: the
        # per-row text columns are mostly None (chat, provider from the price table;
        # success), so only their few distinct values are looked at.
        extra = _codes(rows.gen_ai)
        error = _codes([e if bad else None for e, bad in
                        zip(rows.error_type, rows.is_error.tolist(), strict=True)]
                       if rows.is_error.any() else [None] * len(batch))
        failed = rows.is_error & (error[0] == 0)  # failures without a type
        err_code = np.where(failed, len(error[1]) + 1, error[0])
        combined = (model << 40) | (extra[0] << 20) | err_code
        uniq, inv = np.unique(combined, return_inverse=True)
        inv = inv.reshape(-1)
        keys = []
        names = index.model_names
        first = np.zeros(len(uniq), np.int64)
        first[inv[::-1]] = np.arange(len(inv))[::-1]  # a row of each combination
        for u, row in zip(uniq.tolist(), first.tolist(), strict=True):
            m, x, e = u >> 40, (u >> 20) & 0xFFFFF, u & 0xFFFFF
            name = names[m]
            operation, provider = DEFAULT_OPERATION, ""
            if x:
                operation, _, provider = extra[1][x - 1].partition(KEY_SEPARATOR)
            if not provider:
                provider = self.provider(name, index.keys[int(batch.series[row])][0])
            error_type = "" if e == 0 else (
                error[1][e - 1] if e <= len(error[1]) else OTHER)
            keys.append((name, operation, provider, self._error_label(name, error_type)))
        ids = self._ids(keys)[inv]
        nd, nt = self.duration_buckets.shape[1], self.input_buckets.shape[1]
        seconds = rows.latency_ms / 1000.0
        n = len(self.keys)
        self.duration_count += np.bincount(ids, minlength=n)
        self.duration_sum += np.bincount(ids, weights=seconds, minlength=n)
        self.duration_buckets += np.bincount(
            ids * nd + _bucket(seconds, _DURATION), minlength=n * nd).reshape(n, nd)
        ok = ~rows.is_error
        for tokens, total, buckets in ((rows.prompt_tokens, self.input_sum,
                                        self.input_buckets),
                                       (rows.completion_tokens, self.output_sum,
                                        self.output_buckets)):
            np.add(total, np.bincount(ids[ok], weights=tokens[ok], minlength=n).astype(
                np.int64), out=total)
            np.add(buckets, np.bincount(ids[ok] * nt + _bucket(
                tokens[ok].astype(np.float64), _TOKENS), minlength=n * nt).reshape(n, nt),
                out=buckets)
        return Observed(writes=[Write("write_genai_totals",
                                      {"totals": {"rows": self._rows(np.unique(ids))}})])

    def _error_label(self, model: str, error_type: str) -> str:
        if not error_type or error_type == OTHER:
            return error_type
        seen = self.errors.setdefault(model, set())
        if error_type in seen:
            return error_type
        if len(seen) < self.MAX_ERROR_TYPES:
            seen.add(error_type)
            return error_type
        return OTHER

    def _rows(self, ids: I64) -> list[dict[str, Any]]:
        keys = list(self.keys)
        return [{"model": keys[i][0], "operation": keys[i][1], "provider": keys[i][2],
                 "error_type": keys[i][3], "duration_count": int(self.duration_count[i]),
                 "duration_sum": float(self.duration_sum[i]),
                 "duration_buckets": self.duration_buckets[i].tolist(),
                 "input_sum": int(self.input_sum[i]),
                 "input_buckets": self.input_buckets[i].tolist(),
                 "output_sum": int(self.output_sum[i]),
                 "output_buckets": self.output_buckets[i].tolist()}
                for i in ids.tolist()]

    # -- metrics ----------------------------------------------------------------------
    def metrics(self, now: float) -> MetricsBuilder:
        keys = list(self.keys)
        arrays = {name: getattr(self, name).copy() for name in (
            "duration_count", "duration_sum", "duration_buckets", "input_sum",
            "input_buckets", "output_sum", "output_buckets")}
        return lambda: _families(keys, arrays)


def _codes(values: list[str | None]) -> tuple[I64, list[str]]:
    """Per value 0 (None) or 1 + its number among the distinct others."""
    distinct: dict[str, int] = {}
    out = np.zeros(len(values), np.int64)
    for i, v in enumerate(values):
        if v is not None:
            out[i] = distinct.setdefault(v, len(distinct) + 1)
    return out, list(distinct)


def _le(bounds: F64) -> list[str]:
    return [format(float(b), "g") for b in bounds] + ["+Inf"]


def _families(keys: list[Key], a: dict[str, Any]) -> Iterator[Metric]:
    attrs = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
    duration = HistogramMetricFamily(
        "gen_ai_client_operation_duration_seconds", "GenAI operation duration.",
        labels=[*attrs, "error_type"], unit="seconds")
    usage = HistogramMetricFamily(
        "gen_ai_client_token_usage", "Number of input and output tokens used.",
        labels=[*attrs, "gen_ai_token_type"])
    le_d, le_t = _le(_DURATION), _le(_TOKENS)
    tokens: dict[tuple[str, str, str], list[Any]] = {}
    for i, (model, operation, provider, error_type) in enumerate(keys):
        duration.add_metric([operation, provider, model, error_type], _cumulative(
            le_d, a["duration_buckets"][i]), float(a["duration_sum"][i]))
        # Token usage has no error attribute: sum a model's successes across error keys.
        t = tokens.setdefault((operation, provider, model), [0, 0, 0, 0])
        t[0] = t[0] + a["input_buckets"][i]
        t[1] += int(a["input_sum"][i])
        t[2] = t[2] + a["output_buckets"][i]
        t[3] += int(a["output_sum"][i])
    for (operation, provider, model), (ib, isum, ob, osum) in tokens.items():
        usage.add_metric([operation, provider, model, "input"], _cumulative(le_t, ib),
                         float(isum))
        usage.add_metric([operation, provider, model, "output"], _cumulative(le_t, ob),
                         float(osum))
    yield duration
    yield usage


def _cumulative(le: list[str], counts: I64) -> list[tuple[str, float]]:
    return list(zip(le, np.cumsum(counts).astype(float).tolist(), strict=True))
