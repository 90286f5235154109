"""What the commands share: settings from their flags, a checked connection, typed reads,
argument types and the formatting of times and numbers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import class_row, dict_row

from stream_mlops.db.connect import connect
from stream_mlops.db.migrations import ensure_current
from stream_mlops.db.queries import q
from stream_mlops.errors import MlopsError
from stream_mlops.settings import Settings, load_settings

R = TypeVar("R")
Conn = psycopg.Connection[tuple[Any, ...]]
# add(name, help) -> a new command's parser, already given the options every command takes.
AddCommand = Callable[[str, str], argparse.ArgumentParser]


def settings(args: argparse.Namespace) -> Settings:
    """The settings, with whichever of the command's options were given taking precedence."""
    return load_settings(
        database_url=getattr(args, "database_url", None),
        metrics_host=getattr(args, "metrics_host", None),
        metrics_port=getattr(args, "metrics_port", None),
        consumer_name=getattr(args, "consumer", None),
        batch_size=getattr(args, "batch_size", None),
        poll_interval_seconds=getattr(args, "poll_interval", None),
    )


@contextmanager
def database(s: Settings, *, autocommit: bool = False) -> Iterator[Conn]:
    """A connection to a database whose schema is current (else a one-line error)."""
    with connect(s.database_url, timeout=s.connect_timeout_seconds,
                 autocommit=autocommit) as conn:
        ensure_current(conn)
        yield conn


def rows(conn: Conn, query: str, row: type[R], /, **params: Any) -> list[R]:
    """The named query's rows as ``row`` dataclasses (its columns are named like the fields)."""
    with conn.cursor(row_factory=class_row(row)) as cur:
        return cur.execute(q(query), params).fetchall()


def column(conn: Conn, query: str, name: str, /, **params: Any) -> Any:
    """Column ``name`` of the named query's first row; None when there is no row."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(q(query), params).fetchone()
    return None if row is None else row[name]


def number(kind: type[int] | type[float], lo: float, hi: float) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` within [lo, hi]."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
                ) from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(
                f"must be between {plain(lo)} and {plain(hi)}, got {text}")
        return value
    return parse


def nonempty(text: str) -> str:
    """An argparse type: any text but blank."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def plain(v: float) -> str:
    """A bound as a user would write it.

    >>> plain(3660.0), plain(1e9), plain(0.01)
    ('3,660', '1,000,000,000', '0.01')
    """
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def parse_time(text: str) -> float:
    """An ISO date or time (UTC unless it says otherwise) as unix seconds."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise MlopsError(f"expected an ISO date or time such as 2026-11-01, got {text!r}"
                         ) from None
    try:
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).timestamp()
    except (OverflowError, ValueError):
        raise MlopsError(f"{text!r} is out of the range of dates") from None


def utc(t: float) -> str:
    """Unix seconds as ``YYYY-MM-DD HH:MM`` in UTC."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")
