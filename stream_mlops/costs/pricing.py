"""Model prices: versions in force at a time, exact request costs, and price-map import.

Pure: the database edge is :mod:`stream_mlops.costs.price_store`. Costs are integers of
pico-dollars. A price of ``p`` USD per million tokens with at most six decimals (the
table's ``numeric(14, 6)``) is ``p * 1e6`` pico-dollars per token, an integer, so the cost
computed here equals the one the insert trigger computes in SQL digit for digit.

Token conventions: ``prompt_tokens`` counts every input token, cache reads
(``cached_tokens``) and cache writes (``cache_write_tokens``) included, as OpenAI reports
it. Anthropic's ``input_tokens`` exclude both; :func:`stream_mlops.client.usage.usage_from` adds
them back, so both providers are priced the same way::

    uncached * input + cached * cached_input + written_5m * cache_write
        + written_1h * cache_write_1h + output * output

A price version may have tiers: rows with ``above_input_tokens`` > 0 that price *every*
token of a request whose input exceeds it (long-context prices). Callers' model names are
matched as ``mlops.priced_model`` does (``sql/0015_price_source.sql``): the exact name,
else :func:`model_key`, else :func:`undated_model_key`, through the alias table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_mlops.core.monitor import Store
from stream_mlops.errors import MlopsError
from stream_mlops.labels import label_text

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MAX_PRICE = Decimal(1_000_000)  # USD per million tokens: the table's CHECK bound
RESOLUTION = Decimal("0.000001")  # USD per million tokens: the table's scale


_PREFIX = re.compile(r"^.*/")
_RELEASE = re.compile(r"([-@](\d{4}-\d{2}-\d{2}|\d{8})|-\d{3})$")


def model_key(name: str) -> str:
    """A model name as matched: lower case, without a gateway's prefix (``mlops.model_key``).

    Examples
    --------
    >>> model_key("openrouter/OpenAI/GPT-4o")
    'gpt-4o'
    """
    return _PREFIX.sub("", name, count=1).lower()


def undated_model_key(name: str) -> str:
    """:func:`model_key` without a release date or revision at its end.

    Examples
    --------
    >>> [undated_model_key(m) for m in ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929",
    ...                                  "models/gemini-1.5-pro-002", "o3")]
    ['gpt-4o', 'claude-sonnet-4-5', 'gemini-1.5-pro', 'o3']
    """
    return _RELEASE.sub("", model_key(name), count=1)


@dataclass(frozen=True)
class Price:
    """One price row: USD per million tokens from ``effective_from`` on, for requests
    whose input exceeds ``above_input_tokens`` (0: the base tier)."""

    model: str
    provider: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    effective_from: float = 0.0  # unix seconds
    tenant_id: str | None = None
    source: str | None = None
    cache_write_1h: Decimal | None = None
    above_input_tokens: int = 0
    per_krequests: Decimal | None = None  # USD per thousand requests, on top of tokens
    synced: bool = False  # from the maintained source; imported prices win over it

    def prices(self) -> tuple[Any, ...]:
        return (self.above_input_tokens, self.input, self.output, self.cached_input,
                self.cache_write, self.cache_write_1h, self.per_krequests)

    def rates(self) -> list[int]:
        """Pico-dollars per token (input, output, cache read, 5-minute and 1-hour write)
        and per request."""
        write = self.input if self.cache_write is None else self.cache_write
        return [_pico_per_token(p) for p in (
            self.input, self.output,
            self.input if self.cached_input is None else self.cached_input,
            write, write if self.cache_write_1h is None else self.cache_write_1h)] + [
            int((self.per_krequests or 0) * 1_000_000_000)]


def _pico_per_token(usd_per_mtok: Decimal) -> int:
    return int(usd_per_mtok * 1_000_000)


class PriceBook:
    """The price versions of every model, and what a batch of requests should cost.

    ``aliases`` maps ``(alias, tenant or None)`` to the priced model, as
    ``mlops.model_aliases`` does.

    Examples
    --------
    >>> book = PriceBook([Price("gpt-4o", "openai", Decimal("2.5"), Decimal("10"),
    ...                         Decimal("1.25"))])
    >>> book.cost_pico(["gpt-4o-2024-08-06", "unknown"], ["t", "t"], np.array([0.0, 0.0]),
    ...                prompt=np.array([1000, 10]), completion=np.array([100, 1]),
    ...                cached=np.array([400, 0]), cache_write=np.array([0, 0])).tolist()
    [3000000000, -1]
    """

    def __init__(self, prices: Iterable[Price] = (),
                 aliases: Mapping[tuple[str, str | None], str] | None = None) -> None:
        # (model, tenant or None, synced) -> (effective_from, above_input_tokens, rates)
        # rows sorted
        self._versions: dict[tuple[str, str | None, bool], tuple[F64, I64, I64]] = {}
        grouped: dict[tuple[str, str | None, bool], list[Price]] = {}
        prices_seen = list(prices)
        for p in prices_seen:
            grouped.setdefault((p.model, p.tenant_id, p.synced), []).append(p)
        for key, rows in grouped.items():
            rows.sort(key=lambda p: (p.effective_from, p.above_input_tokens))
            self._versions[key] = (
                np.array([p.effective_from for p in rows], np.float64),
                np.array([p.above_input_tokens for p in rows], np.int64),
                np.array([p.rates() for p in rows], np.int64))
        self._priced = {m for m, _, _ in self._versions}
        self._provider = {p.model: p.provider for p in prices_seen}
        self._aliases = dict(aliases or {})
        for model in self._priced:  # a priced name is reached by its key too
            self._aliases.setdefault((model_key(model), None), model)

    def __len__(self) -> int:
        return len(self._versions)

    def resolve(self, model: str, tenant: str) -> str | None:
        """The priced model a request's model is priced as (``mlops.priced_model``)."""
        if any((model, who, synced) in self._versions
               for who in (None, tenant) for synced in (False, True)):
            return model
        for key in (model_key(model), undated_model_key(model)):
            for who in (tenant, None):
                if (key, who) in self._aliases:
                    return self._aliases[(key, who)]
        return None

    def provider(self, model: str, tenant: str) -> str | None:
        """The provider of the model a request's model is priced as (None: unpriced)."""
        priced = self.resolve(model, tenant)
        return None if priced is None else self._provider.get(priced)

    def _rates(self, model: str | None, tenant: str, at: F64, prompt: I64) -> I64:
        """Per-row rates in force at ``at`` for ``prompt`` input tokens; -1 if none."""
        out = np.full((len(at), 6), -1, np.int64)
        # Later wins where in force: the tenant's own over global prices, prices people
        # imported over the source's (the order of mlops.request_price).
        for version in ((None, True), (None, False), (tenant, True), (tenant, False)):
            if model is None or (model, *version) not in self._versions:
                continue
            starts, above, rates = self._versions[(model, *version)]
            # The latest version in force, then its highest tier the input crosses:
            # rows sort by (start, above), so the last row of the version whose tier
            # applies is found by scanning back from the version's last row.
            last = np.searchsorted(starts, at, side="right") - 1
            if not above.any():  # no tiers: one vectorised lookup
                ok = last >= 0
                out[ok] = rates[last[ok]]
                continue
            for i in np.flatnonzero(last >= 0).tolist():
                j = int(last[i])
                start = starts[j]
                while j > 0 and starts[j - 1] == start and above[j] > 0 \
                        and prompt[i] <= above[j]:
                    j -= 1
                if above[j] == 0 or prompt[i] > above[j]:
                    out[i] = rates[j]
        return out

    def cost_pico(self, models: Sequence[str], tenants: Sequence[str], at: F64, *,
                  prompt: I64, completion: I64, cached: I64, cache_write: I64,
                  cache_write_1h: I64 | None = None) -> I64:
        """Cost of each request in pico-dollars at the price in force at its time; -1
        where the model has no price then."""
        written_1h = np.zeros(len(models), np.int64) if cache_write_1h is None \
            else cache_write_1h
        rates = np.full((len(models), 6), -1, np.int64)
        pairs: dict[tuple[str, str], list[int]] = {}
        for i, pair in enumerate(zip(models, tenants, strict=True)):
            pairs.setdefault(pair, []).append(i)
        for (model, tenant), rows in pairs.items():
            idx = np.array(rows, np.int64)
            rates[idx] = self._rates(self.resolve(model, tenant), tenant, at[idx],
                                     prompt[idx])
        uncached = prompt - cached - cache_write
        cost: I64 = (uncached * rates[:, 0] + completion * rates[:, 1]
                     + cached * rates[:, 2] + (cache_write - written_1h) * rates[:, 3]
                     + written_1h * rates[:, 4] + rates[:, 5])
        cost[rates[:, 0] < 0] = -1
        return cost


@dataclass(frozen=True)
class AliasRow:
    """A row of mlops.model_aliases (``price_aliases``)."""

    alias: str
    tenant_id: str | None
    model: str
    source: str | None


def price_book(store: Store) -> PriceBook:
    """The price table and its aliases as a monitor reads them."""
    return PriceBook(store.rows("price_versions", Price),
                     {(a.alias, a.tenant_id): a.model
                      for a in store.rows("price_aliases", AliasRow)})


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

    * Ours: ``{"source": ..., "as_of": DATE, "models": [{"model", "provider",
      "input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok"?,
      "cache_write_usd_per_mtok"?, "cache_write_1h_usd_per_mtok"?, "effective_from"?,
      "above_input_tokens"?}]}``; an entry with ``above_input_tokens`` is a long-context
      tier of the entry of the same model and date without it.
    * LiteLLM's ``model_prices_and_context_window.json``: ``{model: {"litellm_provider",
      "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost"?,
      "cache_creation_input_token_cost"?, "cache_creation_input_token_cost_above_1hr"?,
      "input_cost_per_token_above_200k_tokens"? ...}}``; entries without token prices
      (images, embeddings priced otherwise, the ``sample_spec``) are skipped.

    Two names of one model (the same :func:`model_key`) are refused: which one would
    price a request would depend on how the caller spelt it.

    Examples
    --------
    >>> parse_price_map({"gpt-4o": {"litellm_provider": "openai",
    ...     "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}},
    ...     effective_from=0.0, source="litellm")[0].input
    Decimal('2.5')
    """
    if not isinstance(data, Mapping):
        raise PriceMapError("expected a JSON object at the top level")
    out = _ours(data, effective_from, source) if "models" in data \
        else _litellm(data, effective_from, source)
    if not out:
        raise PriceMapError("no model prices found: expected {\"models\": [...]} or a "
                            "LiteLLM-style map of model -> input_cost_per_token/...")
    check_keys(out)
    return out


def _ours(data: Mapping[str, Any], effective_from: float, source: str) -> list[Price]:
    models = data["models"]
    if not isinstance(models, list):
        raise PriceMapError('"models" must be a list')
    default = _when(data.get("as_of"), "as_of", effective_from)
    src = str(data.get("source") or source)
    out = []
    seen: dict[tuple[str, float, int], str] = {}
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
        above = m.get("above_input_tokens", 0)
        if isinstance(above, bool) or not isinstance(above, int) or not 0 <= above < 2**31:
            raise PriceMapError(f"{where}.above_input_tokens: expected a whole number of "
                                f"tokens >= 0, got {json.dumps(above)}")
        at = _when(m.get("effective_from"), f"{where}.effective_from", default)
        if (m["model"], at, above) in seen:
            raise PriceMapError(f"{where}: {m['model']} has a second price from the same "
                                f"date (first at {seen[(m['model'], at, above)]})")
        seen[(m["model"], at, above)] = where
        out.append(Price(
            m["model"], m["provider"], inp, outp,
            _usd(m.get("cached_input_usd_per_mtok"), f"{where}.cached_input_usd_per_mtok"),
            _usd(m.get("cache_write_usd_per_mtok"), f"{where}.cache_write_usd_per_mtok"),
            at, source=str(m.get("source") or src),
            cache_write_1h=_usd(m.get("cache_write_1h_usd_per_mtok"),
                                f"{where}.cache_write_1h_usd_per_mtok"),
            above_input_tokens=above))
    for (model, at, above), where in seen.items():
        if above and (model, at, 0) not in seen:
            raise PriceMapError(f"{where}: a tier above {above} input tokens needs the base "
                                f"price of {model} from the same date (without "
                                "above_input_tokens)")
    return out


_LITELLM_TIER = "_above_200k_tokens"


def _litellm(data: Mapping[str, Any], effective_from: float, source: str) -> list[Price]:
    out = []
    for name, m in data.items():
        if not isinstance(m, Mapping) or "input_cost_per_token" not in m \
                or "output_cost_per_token" not in m:
            continue
        where = str(name)
        _label(where, "model", where)
        provider = str(m.get("litellm_provider") or "unknown")

        def usd(field: str, m: Mapping[str, Any] = m, where: str = where) -> Decimal | None:
            return _usd(m.get(field), f"{where}.{field}", per_token=True)

        write_1h = usd("cache_creation_input_token_cost_above_1hr")
        for suffix, above in (("", 0), (_LITELLM_TIER, 200_000)):
            inp, outp = usd("input_cost_per_token" + suffix), usd("output_cost_per_token" + suffix)
            if inp is None or outp is None:
                continue
            out.append(Price(
                where, provider, inp, outp, usd("cache_read_input_token_cost" + suffix),
                usd("cache_creation_input_token_cost" + suffix), effective_from,
                source=source, cache_write_1h=write_1h, above_input_tokens=above))
    return out


def check_keys(prices: Iterable[Price],
               aliases: Mapping[tuple[str, str | None], str] | None = None) -> None:
    """Refuse two model names that are one model after normalisation (:func:`model_key`):
    within ``prices``, or against ``aliases`` already stored (``(alias, tenant)`` → model).

    Examples
    --------
    >>> check_keys([Price("gpt-4o", "openai", Decimal(1), Decimal(2)),  # doctest: +ELLIPSIS
    ...             Price("OpenAI/GPT-4o", "openai", Decimal(1), Decimal(3))])
    Traceback (most recent call last):
    ...
    stream_mlops.costs.pricing.PriceMapError: 'OpenAI/GPT-4o' and 'gpt-4o' are one model ...
    """
    names: dict[tuple[str, str | None], str] = {}
    for (alias, tenant), model in (aliases or {}).items():
        names[(alias, tenant)] = model
    for p in prices:
        key = (model_key(p.model), p.tenant_id)
        other = names.setdefault(key, p.model)
        if other != p.model:
            raise PriceMapError(f"{p.model!r} and {other!r} are one model after "
                                f"normalisation (key {key[0]!r}): keep one name")


def changed(existing: Iterable[Price], incoming: Iterable[Price]) -> list[Price]:
    """The incoming versions that differ from the version already in force at their date
    (a version: a model's rows of one date, its tiers included; written whole, so a later
    version never leaves an earlier tier in force). Importing twice changes nothing.

    Examples
    --------
    >>> old = Price("m", "p", Decimal(1), Decimal(2), effective_from=0.0)
    >>> same = Price("m", "p", Decimal(1), Decimal(2), effective_from=100.0)
    >>> cut = Price("m", "p", Decimal("0.5"), Decimal(2), effective_from=200.0)
    >>> [p.input for p in changed([old], [same, cut])]
    [Decimal('0.5')]
    """
    def versions(prices: Iterable[Price]) -> dict[tuple[str, str | None, float], list[Price]]:
        out: dict[tuple[str, str | None, float], list[Price]] = {}
        for p in prices:
            out.setdefault((p.model, p.tenant_id, p.effective_from), []).append(p)
        return out

    def tiers(rows: list[Price]) -> set[tuple[Any, ...]]:
        return {p.prices() for p in rows}

    stored = versions(existing)
    dates: dict[tuple[str, str | None], list[float]] = {}
    for model, tenant, at in stored:
        dates.setdefault((model, tenant), []).append(at)
    out = []
    for (model, tenant, at), rows in versions(incoming).items():
        before = [d for d in dates.get((model, tenant), []) if d <= at]
        in_force = stored[(model, tenant, max(before))] if before else []
        if tiers(in_force) != tiers(rows):
            out.extend(rows)
    return out
