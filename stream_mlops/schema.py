"""Bringing a database up to date: the SQL migrations, then the data they need."""

from __future__ import annotations

from typing import Any

import psycopg

from stream_mlops.costs.price_store import sync_prices
from stream_mlops.db.migrations import apply


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending migrations, then load the maintained price source (both idempotent);
    returns the migrations' names. Prices are data, not schema: a newer genai-prices
    brings its new models and price changes on the next ``migrate`` too."""
    names = apply(conn)
    sync_prices(conn)
    return names
