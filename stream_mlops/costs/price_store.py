"""Price table I/O: read the versions, sync the maintained source, import a price map,
re-cost rows after a correction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row

from stream_mlops.core.monitor import Cursor
from stream_mlops.costs.price_source import DEFAULT_PROVIDERS, SOURCE, SourcePrices, load
from stream_mlops.costs.pricing import (
    AliasRow,
    Price,
    PriceBook,
    PriceMapError,
    changed,
    check_keys,
    model_key,
    parse_price_map,
)
from stream_mlops.db.queries import q

Conn = psycopg.Connection[Any]


def alias_map(aliases: Sequence[AliasRow]) -> dict[tuple[str, str | None], str]:
    return {(a.alias, a.tenant_id): a.model for a in aliases}


def price_versions(conn: Conn) -> list[Price]:
    with conn.cursor(row_factory=class_row(Price)) as cur:
        return cur.execute(q("price_versions")).fetchall()


def price_aliases(conn: Conn) -> list[AliasRow]:
    with conn.cursor(row_factory=class_row(AliasRow)) as cur:
        return cur.execute(q("price_aliases")).fetchall()


def price_book(conn: Conn) -> PriceBook:
    return PriceBook(price_versions(conn), alias_map(price_aliases(conn)))


def import_prices(conn: Conn, prices: list[Price]) -> list[Price]:
    """Add the versions that change something (all or none), and the model names as
    aliases; returns the rows written. A name that is another stored model's after
    normalisation is refused (:func:`~stream_mlops.costs.pricing.check_keys`)."""
    with conn.transaction():
        aliases = price_aliases(conn)
        check_keys(prices, alias_map(aliases))
        new = _write(conn, prices, sync=False)
        _write_aliases(conn, {(model_key(p.model), p.tenant_id): (p.model, p.source)
                              for p in prices}, sync=False)
    return new


@dataclass(frozen=True)
class Synced:
    added: list[Price]
    aliases: int
    source: SourcePrices


def sync_prices(conn: Conn, providers: Sequence[str] = DEFAULT_PROVIDERS) -> Synced:
    """Load the maintained source's prices of ``providers`` (all or none): new and
    changed versions, and the aliases of their names. What people imported stays: a sync
    replaces only rows and aliases a sync wrote."""
    try:
        source = load(providers)
    except ValueError as exc:
        raise PriceMapError(str(exc)) from None
    with conn.transaction():
        new = _write(conn, source.prices, sync=True)
        aliases: dict[tuple[str, str | None], tuple[str, str | None]] = {
            (alias, None): (model, SOURCE) for alias, model in source.aliases.items()}
        n = _write_aliases(conn, aliases, sync=True)
    return Synced(new, n, source)


def _write(conn: Conn, prices: list[Price], *, sync: bool) -> list[Price]:
    # A sync compares with what syncs wrote; an import with everything in force.
    new = changed([p for p in price_versions(conn) if p.synced or not sync], prices)
    versions: dict[tuple[str, str | None, float], list[int]] = {}
    for p in new:
        conn.execute(q("upsert_price"), {
            "model": p.model, "provider": p.provider, "tenant_id": p.tenant_id,
            "input": p.input, "output": p.output, "cached_input": p.cached_input,
            "cache_write": p.cache_write, "cache_write_1h": p.cache_write_1h,
            "above_input_tokens": p.above_input_tokens, "per_krequests": p.per_krequests,
            "effective_from": p.effective_from,
            "source": p.source, "sync": sync})
        versions.setdefault((p.model, p.tenant_id, p.effective_from), []).append(
            p.above_input_tokens)
    for (model, tenant, at), tiers in versions.items():
        conn.execute(q("drop_other_tiers"), {"model": model, "tenant_id": tenant,
                                             "effective_from": at, "tiers": tiers,
                                             "sync": sync})
    return new


def _write_aliases(conn: Conn, aliases: dict[tuple[str, str | None], tuple[str, str | None]],
                   *, sync: bool) -> int:
    stored = alias_map(price_aliases(conn))
    n = 0
    for (alias, tenant), (model, source) in aliases.items():
        if stored.get((alias, tenant)) == model:
            continue
        conn.execute(q("upsert_alias"), {"alias": alias, "model": model, "tenant_id": tenant,
                                         "source": source, "sync": sync})
        n += 1
    return n


def load_price_map(path: Path, *, effective_from: float) -> list[Price]:
    """Prices from a JSON price map file (our format or LiteLLM's)."""
    try:
        text, source = path.read_text(encoding="utf-8"), path.name
    except OSError as exc:
        raise PriceMapError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PriceMapError(f"{path}: not UTF-8 text (a JSON price map is)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceMapError(f"{source}: not valid JSON ({exc})") from None
    return parse_price_map(data, effective_from=effective_from, source=source)


@dataclass(frozen=True)
class Recomputed:
    rows: int
    consumed_rows: int
    delta_usd: Decimal
    newly_priced: int


def recompute(conn: Conn, since: datetime, consumer: str = "default") -> Recomputed:
    """Re-cost rows priced by the table (or unpriced) created since ``since`` with the
    versions now in force at their time, and move the aggregates with them.

    Rows the processor already consumed have their hourly roll-ups and series totals
    shifted here, in the same transaction; rows it has not reached are simply read with
    their new cost. The cursor row is locked first and its state version bumped, so a
    processor mid-batch fails its compare-and-set and reloads instead of writing totals
    computed from the old costs.
    """
    with conn.transaction():
        with conn.cursor(row_factory=dict_row) as cur:
            cursors = {r.pop("consumer"): Cursor(**r)
                       for r in cur.execute(q("lock_checkpoints")).fetchall()}
        cursor = cursors.get(consumer, Cursor())
        groups = conn.execute(q("recompute_costs"),
                              {"since": since, **cursor.params()}).fetchall()
        rows = consumed = newly = 0
        delta = Decimal(0)
        for tenant, function, model, variant, hour, was_consumed, n, cost, priced in groups:
            rows += n
            delta += cost
            newly += priced
            if not was_consumed:
                continue
            consumed += n
            params = {"tenant": tenant, "function": function, "model": model, "hour": hour,
                      "delta": cost, "variant": variant, "newly_priced": priced,
                      "consumer": consumer}
            conn.execute(q("shift_hourly_cost"), params)
            conn.execute(q("shift_series_cost"), params)
        if consumer in cursors:
            conn.execute(q("bump_state_version"), {"consumer": consumer})
    return Recomputed(rows, consumed, delta, newly)
