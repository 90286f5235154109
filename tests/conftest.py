"""Shared fixtures: a real PostgreSQL started by the suite, one migrated template database
copied per test."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
