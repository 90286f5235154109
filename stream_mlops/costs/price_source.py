"""The maintained price source: genai-prices' model database as price rows and aliases.

`genai-prices <https://github.com/pydantic/genai-prices>`_ ships (offline) the prices of
thousands of models with the names their APIs answer with, dated price changes and
long-context tiers. This module turns the token prices of the chosen providers into
:class:`~stream_mlops.costs.pricing.Price` rows and the alias table that lets dated and
prefixed names find them. Pure: the database edge is
:mod:`stream_mlops.costs.price_store`.

What it does not model, and so leaves out (listed by ``stream-mlops prices sync``) rather
than price wrongly: time-of-day prices (DeepSeek's off-peak hours), models priced by
something other than tokens (audio seconds, images), and prices finer than the table's
six decimals. Per-call extras (web searches) and service-tier variants (batch, flex,
priority) are not priced: the standard token price is (and a per-request fee where the
model has one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp

from stream_mlops.costs.pricing import RESOLUTION, Price, model_key

# First-party APIs first: a model two providers list (Google's Vertex serves Claude) is
# priced as its maker bills it.
DEFAULT_PROVIDERS = ("openai", "anthropic", "google", "mistral", "deepseek", "x-ai",
                     "cohere", "moonshotai", "zai", "perplexity")
SOURCE = f"genai-prices {genai_prices.__version__}"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC).timestamp()  # the table's "always"
_KEYS = {  # Price field -> genai-prices price key
    "input": "input_mtok", "output": "output_mtok", "cached_input": "cache_read_mtok",
    "cache_write": "cache_write_mtok", "cache_write_1h": "cache_write_1h_mtok",
    "per_krequests": "requests_kcount"}


@dataclass(frozen=True)
class Skipped:
    provider: str
    model: str
    reason: str


@dataclass
class SourcePrices:
    """What a sync loads: price rows, aliases (model key -> priced model), and what it
    left out with the reason."""

    prices: list[Price] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)


def providers() -> list[str]:
    """Every provider id the source knows."""
    return [p.id for p in data_snapshot.get_snapshot().providers]


def load(chosen: Sequence[str] = DEFAULT_PROVIDERS) -> SourcePrices:
    """The chosen providers' token prices, in priority order (the first provider to list a
    model name prices it). Unknown provider ids raise ValueError naming the known ones."""
    by_id = {p.id: p for p in data_snapshot.get_snapshot().providers}
    unknown = [c for c in chosen if c not in by_id]
    if unknown:
        raise ValueError(f"unknown provider(s) {', '.join(unknown)}; genai-prices knows: "
                         + ", ".join(sorted(by_id)))
    out = SourcePrices(providers=list(chosen))
    for pid in chosen:
        for m in by_id[pid].models:
            if model_key(m.id) in out.aliases:  # its name prices as an earlier model
                continue
            rows = _rows(pid, m, out.skipped)
            if not rows:
                continue
            out.prices.extend(rows)
            for name in [m.id, *_literals(m.match)]:
                out.aliases.setdefault(model_key(name), m.id)
    return out


def _literals(clause: Any) -> Iterable[str]:
    """The names a match clause spells out (equals, and the prefixes of starts_with)."""
    if isinstance(clause, gp.ClauseEquals):
        yield clause.equals
    elif isinstance(clause, gp.ClauseStartsWith):
        yield clause.starts_with
    elif isinstance(clause, gp.ClauseOr):
        for c in clause.or_:
            yield from _literals(c)


def _rows(provider: str, m: gp.ModelInfo, skipped: list[Skipped]) -> list[Price]:
    """The model's price versions as rows (a row per tier), or [] with the reason kept."""
    versions = m.prices if isinstance(m.prices, list) else [gp.ConditionalPrice(
        prices=m.prices)]
    if any(isinstance(v.constraint, gp.TimeOfDateConstraint) for v in versions):
        skipped.append(Skipped(provider, m.id, "prices by time of day"))
        return []
    rows: list[Price] = []
    for i, v in enumerate(versions):
        if isinstance(v.constraint, gp.StartDateConstraint) and i > 0:
            at = datetime.combine(v.constraint.start_date, time(), UTC).timestamp()
        else:  # the first version applies before any date (genai-prices' fallback)
            at = _EPOCH
        version = _tiers(provider, m.id, v.prices, at)
        if isinstance(version, str):
            skipped.append(Skipped(provider, m.id, version))
            return []
        rows = [r for r in rows if r.effective_from != at] + version
    return rows


def _tiers(provider: str, model: str, price: gp.ModelPrice, at: float) -> list[Price] | str:
    """A version's rows (base, then a row per tier threshold), or why it cannot be one."""
    raw = {f: getattr(price, k, None) for f, k in _KEYS.items()}
    if raw["input"] is None and raw["output"] is None:
        return "not priced by tokens"
    starts = sorted({t.start for v in raw.values() if isinstance(v, gp.TieredPrices)
                     for t in v.tiers})
    rows = []
    for above in [0, *starts]:
        values: dict[str, Decimal | None] = {}
        for f, v in raw.items():
            d = _at_tier(v, above)
            if d is not None and (not d.is_finite() or d < 0 or d >= 1_000_000
                                  or d != d.quantize(RESOLUTION)):
                return f"{f} price {d} is not representable (6 decimals, under 1,000,000)"
            values[f] = d
        rows.append(Price(
            model, provider, values["input"] or Decimal(0), values["output"] or Decimal(0),
            values["cached_input"], values["cache_write"], at, source=SOURCE,
            cache_write_1h=values["cache_write_1h"], above_input_tokens=above,
            per_krequests=values["per_krequests"], synced=True))
    return rows


def _at_tier(value: Decimal | gp.TieredPrices | None, above: int) -> Decimal | None:
    """The price for requests above ``above`` input tokens (genai-prices: a tier applies
    when the input exceeds its start)."""
    if not isinstance(value, gp.TieredPrices):
        return value
    price = value.base
    for t in value.tiers:
        if above >= t.start:
            price = t.price
    return price
