"""Bringing a database up to date: the SQL migrations, then the data they need."""

from __future__ import annotations

from typing import Any

import psycopg

from stream_mlops.costs.price_store import seed_bundled
from stream_mlops.db.migrations import apply


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending migrations (idempotent); returns their names."""
    names = apply(conn)
    if names:
        # Prices are data, not schema: the bundled snapshot is imported (idempotently)
        # whenever the schema moves, so a fresh database prices the common models.
        seed_bundled(conn)
    return names
