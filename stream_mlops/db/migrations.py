"""Ordered, idempotent migrations from ``sql/NNNN_name.sql``, recorded in a table."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from stream_mlops.errors import SchemaError

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_LOCK_KEY = 0x6D6C6F7073  # "mlops": one migrator at a time

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations(directory: Path = SQL_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _FILE.match(path.name)
        if m:
            found.append(Migration(int(m.group(1)), path.stem, path.read_text()))
    return found


def _applied(conn: Conn) -> dict[int, str]:
    exists = conn.execute("SELECT to_regclass('mlops.schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    return dict(conn.execute("SELECT version, checksum FROM mlops.schema_migrations").fetchall())


def pending(conn: Conn) -> list[Migration]:
    """Migrations not yet applied; raises :class:`SchemaError` if an applied one changed."""
    done = _applied(conn)
    todo = []
    for m in migrations():
        if m.version not in done:
            todo.append(m)
        elif done[m.version] != m.checksum:
            raise SchemaError(
                f"migration {m.name}.sql was changed after it was applied; "
                "add a new migration instead of editing an old one"
            )
    return todo


def apply(conn: Conn) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns their names (see
    :func:`stream_mlops.schema.migrate` for the data that goes with them)."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        with conn.transaction():
            conn.execute("CREATE SCHEMA IF NOT EXISTS mlops")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS mlops.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_by text NOT NULL DEFAULT current_user,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        names = []
        for m in pending(conn):
            with conn.transaction():
                conn.execute(m.sql.encode())
                conn.execute("RESET ROLE")
                conn.execute(
                    "INSERT INTO mlops.schema_migrations (version, name, checksum)"
                    " VALUES (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
            names.append(m.name)
        return names
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def ensure_current(conn: Conn) -> None:
    todo = pending(conn)
    if todo:
        raise SchemaError(
            f"database schema is not up to date ({len(todo)} migration(s) pending, first "
            f"{todo[0].name}): run `stream-mlops migrate`"
        )
