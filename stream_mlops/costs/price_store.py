"""Price table I/O: read the versions, import a price map, re-cost rows after a correction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row

from stream_mlops.core.monitor import Cursor
from stream_mlops.costs.pricing import Price, PriceBook, PriceMapError, changed, parse_price_map
from stream_mlops.db.queries import q

Conn = psycopg.Connection[Any]


def price_versions(conn: Conn) -> list[Price]:
    with conn.cursor(row_factory=class_row(Price)) as cur:
        return cur.execute(q("price_versions")).fetchall()


def price_book(conn: Conn) -> PriceBook:
    return PriceBook(price_versions(conn))


def import_prices(conn: Conn, prices: list[Price]) -> list[Price]:
    """Add the versions that change something (all or none); returns them."""
    with conn.transaction():
        new = changed(price_versions(conn), prices)
        for p in new:
            conn.execute(q("upsert_price"), {
                "model": p.model, "provider": p.provider, "tenant_id": p.tenant_id,
                "input": p.input, "output": p.output, "cached_input": p.cached_input,
                "cache_write": p.cache_write, "effective_from": p.effective_from,
                "source": p.source})
    return new


def load_price_map(path: Path | None, *, effective_from: float) -> list[Price]:
    """Prices from a JSON file (the bundled snapshot when ``path`` is None)."""
    if path is None:
        text = resources.files("stream_mlops.costs").joinpath("prices.json").read_text()
        source = "bundled snapshot"
    else:
        try:
            text, source = path.read_text(encoding="utf-8"), path.name
        except OSError as exc:
            raise PriceMapError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise PriceMapError(f"{path}: not UTF-8 text (a JSON price map is)") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PriceMapError(f"{source}: not valid JSON ({exc})") from None
    return parse_price_map(data, effective_from=effective_from, source=source)


def seed_bundled(conn: Conn) -> int:
    """Import the bundled snapshot (idempotent); returns how many versions it added."""
    return len(import_prices(conn, load_price_map(None, effective_from=0.0)))


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
