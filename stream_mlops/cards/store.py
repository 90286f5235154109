"""A connection seen as the ``rows``/``execute`` pair :mod:`stream_mlops.cards.generate`
is written against (the command line's and the benchmark's side; the processor passes
its repository)."""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from stream_mlops.cards.spec import Spec
from stream_mlops.db.queries import q

R = TypeVar("R")


def _param(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


class ConnectionRows:
    """Named queries on one connection, rows as dataclasses."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, query: str, row: type[R], /, **params: Any) -> list[R]:
        with self.conn.cursor(row_factory=class_row(row)) as cur:
            cur.execute(q(query), {k: _param(v) for k, v in params.items()})
            return cur.fetchall() if cur.description is not None else []

    def execute(self, query: str, /, **params: Any) -> None:
        self.conn.execute(q(query), {k: _param(v) for k, v in params.items()})

    def put_spec(self, tenant: str, function: str, spec: Spec, source: str) -> None:
        """Store a validated spec: the processor's cards use it from then on."""
        self.execute("put_card_spec", tenant=tenant, function=function,
                     spec=spec.model_dump(exclude_defaults=True), source=source)
