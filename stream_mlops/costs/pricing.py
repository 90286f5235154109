"""Model prices: versions in force at a time, exact request costs, and price-map import.

Pure: the database edge is :mod:`stream_mlops.costs.price_store`. Costs are integers of
pico-dollars. A price of ``p`` USD per million tokens with at most six decimals (the
table's ``numeric(14, 6)``) is ``p * 1e6`` pico-dollars per token, an integer, so the cost
computed here equals the one the insert trigger computes in SQL digit for digit.

Token conventions: ``prompt_tokens`` counts every input token, cache reads
(``cached_tokens``) and cache writes (``cache_write_tokens``) included, as OpenAI reports
it. Anthropic's ``input_tokens`` exclude both; :func:`stream_mlops.client.usage.usage_from` adds
them back, so both providers are priced the same way::

    uncached * input + cached * cached_input + written * cache_write + output * output
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_mlops.errors import MlopsError
from stream_mlops.labels import label_text

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MAX_PRICE = Decimal(1_000_000)  # USD per million tokens: the table's CHECK bound
RESOLUTION = Decimal("0.000001")  # USD per million tokens: the table's scale


@dataclass(frozen=True)
class Price:
    """One price version: USD per million tokens from ``effective_from`` on."""

    model: str
    provider: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    effective_from: float = 0.0  # unix seconds
    tenant_id: str | None = None
    source: str | None = None

    def same_prices(self, other: Price) -> bool:
        return (self.input, self.output, self.cached_input, self.cache_write) == (
            other.input, other.output, other.cached_input, other.cache_write)


def _pico_per_token(usd_per_mtok: Decimal) -> int:
    return int(usd_per_mtok * 1_000_000)


class PriceBook:
    """The price versions of every model, and what a batch of requests should cost.

    Examples
    --------
    >>> book = PriceBook([Price("gpt-4o", "openai", Decimal("2.5"), Decimal("10"),
    ...                         Decimal("1.25"))])
    >>> book.cost_pico(["gpt-4o", "unknown"], ["t", "t"], np.array([0.0, 0.0]),
    ...                prompt=np.array([1000, 10]), completion=np.array([100, 1]),
    ...                cached=np.array([400, 0]), cache_write=np.array([0, 0])).tolist()
    [3000000000, -1]
    """

    def __init__(self, prices: Iterable[Price] = ()) -> None:
        # model -> tenant (None: global) -> (effective_from ascending, per-token pico prices)
        self._versions: dict[str, dict[str | None, tuple[F64, I64]]] = {}
        grouped: dict[tuple[str, str | None], list[Price]] = {}
        for p in prices:
            grouped.setdefault((p.model, p.tenant_id), []).append(p)
        for (model, tenant), versions in grouped.items():
            versions.sort(key=lambda p: p.effective_from)
            per_token = np.array([[
                _pico_per_token(p.input), _pico_per_token(p.output),
                _pico_per_token(p.input if p.cached_input is None else p.cached_input),
                _pico_per_token(p.input if p.cache_write is None else p.cache_write),
            ] for p in versions], np.int64)
            self._versions.setdefault(model, {})[tenant] = (
                np.array([p.effective_from for p in versions], np.float64), per_token)

    def __len__(self) -> int:
        return sum(len(t) for t in self._versions.values())

    def _rates(self, model: str, tenant: str, at: F64) -> I64:
        """Per-row rates (input, output, cached, write) in force at ``at``; -1 if none."""
        out = np.full((len(at), 4), -1, np.int64)
        versions = self._versions.get(model)
        if not versions:
            return out
        for who in (None, tenant):  # the tenant's own price wins where it is in force
            if who not in versions:
                continue
            starts, per_token = versions[who]
            v = np.searchsorted(starts, at, side="right") - 1
            ok = v >= 0
            out[ok] = per_token[v[ok]]
        return out

    def cost_pico(self, models: Sequence[str], tenants: Sequence[str], at: F64, *,
                  prompt: I64, completion: I64, cached: I64, cache_write: I64) -> I64:
        """Cost of each request in pico-dollars at the price in force at its time; -1
        where the model has no price then."""
        rates = np.full((len(models), 4), -1, np.int64)
        pairs: dict[tuple[str, str], list[int]] = {}
        for i, pair in enumerate(zip(models, tenants, strict=True)):
            pairs.setdefault(pair, []).append(i)
        for (model, tenant), rows in pairs.items():
            idx = np.array(rows, np.int64)
            rates[idx] = self._rates(model, tenant, at[idx])
        uncached = prompt - cached - cache_write
        cost: I64 = (uncached * rates[:, 0] + completion * rates[:, 1]
                     + cached * rates[:, 2] + cache_write * rates[:, 3])
        cost[rates[:, 0] < 0] = -1
        return cost


# -- import ------------------------------------------------------------------------------
class PriceMapError(MlopsError, ValueError):
    """A price map that cannot be imported; the message says where and why."""


def _usd(value: Any, where: str, *, per_token: bool = False) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PriceMapError(f"{where}: expected a number, got {json.dumps(value)}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise PriceMapError(f"{where}: expected a number, got {value!r}") from None
    if not d.is_finite() or d < 0:
        raise PriceMapError(f"{where}: expected a finite number >= 0, got {value}")
    if per_token:
        d *= 1_000_000
    if d >= MAX_PRICE:  # before rounding, which a huge number would overflow
        raise PriceMapError(f"{where}: {d} USD per million tokens is not a plausible price")
    rounded = d.quantize(RESOLUTION).normalize()
    if d > 0 and rounded == 0:
        raise PriceMapError(f"{where}: {d} USD per million tokens is below the price "
                            f"table's resolution ({RESOLUTION} USD per million tokens)")
    return rounded


def _label(value: str, name: str, where: str) -> None:
    try:
        label_text(name, value, required=True)
    except ValueError as exc:
        raise PriceMapError(f"{where}: {exc}") from None


def _when(value: Any, where: str, default: float) -> float:
    if value is None:
        return default
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        raise PriceMapError(f"{where}: expected an ISO date, got {value!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def parse_price_map(data: Any, *, effective_from: float, source: str) -> list[Price]:
    """Prices from a JSON price map in one of two shapes.

    * Ours (what ``stream_mlops/prices.json`` holds): ``{"source": ..., "as_of": DATE,
      "models": [{"model", "provider", "input_usd_per_mtok", "output_usd_per_mtok",
      "cached_input_usd_per_mtok"?, "cache_write_usd_per_mtok"?, "effective_from"?}]}``.
    * LiteLLM's ``model_prices_and_context_window.json``: ``{model: {"litellm_provider",
      "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost"?,
      "cache_creation_input_token_cost"?}}``; entries without token prices (images,
      embeddings priced otherwise, the ``sample_spec``) are skipped.

    Examples
    --------
    >>> parse_price_map({"gpt-4o": {"litellm_provider": "openai",
    ...     "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}},
    ...     effective_from=0.0, source="litellm")[0].input
    Decimal('2.5')
    """
    if not isinstance(data, Mapping):
        raise PriceMapError("expected a JSON object at the top level")
    if "models" in data:
        models = data["models"]
        if not isinstance(models, list):
            raise PriceMapError('"models" must be a list')
        default = _when(data.get("as_of"), "as_of", effective_from)
        src = str(data.get("source") or source)
        out = []
        seen: dict[tuple[str, float], str] = {}
        for i, m in enumerate(models):
            where = f"models[{i}]"
            if not isinstance(m, Mapping) or not all(
                    isinstance(m.get(k), str) and m[k].strip() for k in ("model", "provider")):
                raise PriceMapError(f"{where}: needs at least model and provider (strings)")
            _label(m["model"], "model", where)
            _label(m["provider"], "provider", where)
            inp = _usd(m.get("input_usd_per_mtok"), f"{where}.input_usd_per_mtok")
            outp = _usd(m.get("output_usd_per_mtok"), f"{where}.output_usd_per_mtok")
            if inp is None or outp is None:
                raise PriceMapError(f"{where}: input_usd_per_mtok and output_usd_per_mtok "
                                    "are required")
            at = _when(m.get("effective_from"), f"{where}.effective_from", default)
            if (m["model"], at) in seen:
                raise PriceMapError(f"{where}: {m['model']} has a second price from the same "
                                    f"date (first at {seen[(m['model'], at)]})")
            seen[(m["model"], at)] = where
            out.append(Price(
                m["model"], m["provider"], inp, outp,
                _usd(m.get("cached_input_usd_per_mtok"), f"{where}.cached_input_usd_per_mtok"),
                _usd(m.get("cache_write_usd_per_mtok"), f"{where}.cache_write_usd_per_mtok"),
                at, source=str(m.get("source") or src)))
        return out
    out = []
    for name, m in data.items():
        if not isinstance(m, Mapping) or "input_cost_per_token" not in m \
                or "output_cost_per_token" not in m:
            continue
        where = str(name)
        _label(where, "model", where)
        inp = _usd(m["input_cost_per_token"], f"{where}.input_cost_per_token", per_token=True)
        outp = _usd(m["output_cost_per_token"], f"{where}.output_cost_per_token",
                    per_token=True)
        if inp is None or outp is None:
            continue
        out.append(Price(
            where, str(m.get("litellm_provider") or "unknown"), inp, outp,
            _usd(m.get("cache_read_input_token_cost"), f"{where}.cache_read_input_token_cost",
                 per_token=True),
            _usd(m.get("cache_creation_input_token_cost"),
                 f"{where}.cache_creation_input_token_cost", per_token=True),
            effective_from, source=source))
    if not out:
        raise PriceMapError("no model prices found: expected {\"models\": [...]} or a "
                            "LiteLLM-style map of model -> input_cost_per_token/...")
    return out


def changed(existing: Iterable[Price], incoming: Iterable[Price]) -> list[Price]:
    """The incoming prices that the version already in force at their date does not
    have: importing the same map twice changes nothing.

    Examples
    --------
    >>> old = Price("m", "p", Decimal(1), Decimal(2), effective_from=0.0)
    >>> same = Price("m", "p", Decimal(1), Decimal(2), effective_from=100.0)
    >>> cut = Price("m", "p", Decimal("0.5"), Decimal(2), effective_from=100.0)
    >>> [p.input for p in changed([old], [same, cut])]
    [Decimal('0.5')]
    """
    by_key: dict[tuple[str, str | None], list[Price]] = {}
    for p in existing:
        by_key.setdefault((p.model, p.tenant_id), []).append(p)
    out = []
    for p in incoming:
        earlier = [e for e in by_key.get((p.model, p.tenant_id), [])
                   if e.effective_from <= p.effective_from]
        in_force = max(earlier, key=lambda e: e.effective_from, default=None)
        if in_force is None or not in_force.same_prices(p):
            out.append(p)
    return out
