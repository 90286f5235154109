"""Shared fixtures: a real PostgreSQL started by the suite, one migrated template database
copied per test."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stream_mlops.dev.embedded import EmbeddedPostgres
from stream_mlops.schema import migrate

TEMPLATE = "mlops_template"
_counter = itertools.count()


def start_server() -> tuple[EmbeddedPostgres, Path]:
    base = Path(tempfile.mkdtemp(prefix="stream-mlops-test-"))
    pg = EmbeddedPostgres(base / "data", fast_unsafe=True).start()
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    with psycopg.connect(pg.url_for(TEMPLATE)) as conn:
        migrate(conn)
    return pg, base


def new_database(pg: EmbeddedPostgres) -> str:
    name = f"test_{next(_counter)}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return pg.url_for(name)


@contextmanager
def running_server() -> Iterator[EmbeddedPostgres]:
    server, base = start_server()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg() -> Iterator[EmbeddedPostgres]:
    with running_server() as server:
        yield server


@pytest.fixture
def db_url(pg: EmbeddedPostgres) -> str:
    """A fresh, migrated database of its own for each test."""
    return new_database(pg)


@pytest.fixture
def own_pg() -> Iterator[EmbeddedPostgres]:
    """A server of the test's own, for tests that restart or break Postgres."""
    with running_server() as server:
        yield server


_roles = itertools.count()


@dataclass
class Roles:
    url: str
    pg: EmbeddedPostgres
    dbname: str
    reader_a: str
    reader_b: str
    writer_a: str
    writer_b: str
    processor: str

    def as_(self, role: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.url_for(self.dbname, user=role))


@pytest.fixture
def roles(pg: EmbeddedPostgres, db_url: str) -> Iterator[Roles]:
    k = next(_roles)
    names = {r: f"{r}_{k}" for r in ("reader_a", "reader_b", "writer_a", "writer_b",
                                      "processor")}
    dbname = db_url.rsplit("/", 1)[1]
    with psycopg.connect(db_url, autocommit=True) as su:
        for role, group in (("reader_a", "mlops_reader"), ("reader_b", "mlops_reader"),
                            ("writer_a", "mlops_writer"), ("writer_b", "mlops_writer"),
                            ("processor", "mlops_processor")):
            su.execute(f"CREATE ROLE {names[role]} LOGIN IN ROLE {group}")
        su.execute("INSERT INTO mlops.tenant_roles (role_name, tenant_id) VALUES"
                   " (%s, 'a'), (%s, 'b'), (%s, 'a'), (%s, 'b')",
                   (names["reader_a"], names["reader_b"], names["writer_a"],
                    names["writer_b"]))
        for t in ("a", "b"):
            su.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                       " latency_ms) VALUES (%s, 'f', 'gpt-4o', 10)", (t,))
            su.execute("INSERT INTO mlops.alerts (tenant_id, alert_type, fingerprint, title,"
                       " message) VALUES (%s, 'performance', 'performance:error_rate:f', 't',"
                       " 'm')", (t,))
    yield Roles(db_url, pg, dbname, **names)
    with psycopg.connect(pg.url, autocommit=True) as su:
        su.execute(f"DROP DATABASE {dbname} WITH (FORCE)")
        for n in names.values():
            su.execute(f"DROP ROLE {n}")
