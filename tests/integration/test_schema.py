"""Migrations, constraints and the pricing trigger against a real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stream_mlops.db import migrations
from stream_mlops.errors import SchemaError
from stream_mlops.schema import migrate

GUIDE_TABLES = {"model_performance", "experiments", "feature_store", "drift_detection",
                "cost_tracking", "alerts", "model_cards", "deployments"}


def test_migrations_are_recorded_and_idempotent(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert migrate(conn) == []
        versions = [r[0] for r in conn.execute(
            "SELECT version FROM mlops.schema_migrations ORDER BY version")]
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'mlops'")}
    assert versions == [m.version for m in migrations.migrations()]
    assert tables >= GUIDE_TABLES
    assert {"model_prices", "consumer_checkpoints", "quarantine", "audit_log"} <= tables


def test_edited_migration_is_refused(db_url: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for m in migrations.migrations():
        (tmp_path / f"{m.name}.sql").write_text(m.sql)
    first = migrations.migrations()[0]
    (tmp_path / f"{first.name}.sql").write_text(first.sql + "\n-- edited\n")
    monkeypatch.setattr(migrations, "SQL_DIR", tmp_path)
    monkeypatch.setattr(migrations.migrations, "__defaults__", (tmp_path,))
    with psycopg.connect(db_url) as conn, pytest.raises(SchemaError, match="was changed"):
        migrations.pending(conn)


def test_unmigrated_database_is_reported(pg: Any) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS empty_db")
        conn.execute("CREATE DATABASE empty_db")
    with psycopg.connect(pg.url_for("empty_db")) as conn, \
            pytest.raises(SchemaError, match="stream-mlops migrate"):
        migrations.ensure_current(conn)


BASE: dict[str, Any] = {"function_name": "f", "model": "gpt-4o-mini", "latency_ms": 10.0}


@pytest.mark.parametrize(("column", "value", "constraint"), [
    ("latency_ms", -1.0, "latency_ms"),
    ("latency_ms", float("nan"), "latency_ms"),
    ("latency_ms", float("inf"), "latency_ms"),
    ("latency_ms", 1e12, "latency_ms"),
    ("prompt_tokens", -5, "prompt_tokens"),
    ("completion_tokens", -1, "completion_tokens"),
    ("cached_tokens", 999999, "cached_tokens"),
    ("confidence", 1.5, "confidence"),
    ("confidence", -0.1, "confidence"),
    ("confidence", float("nan"), "confidence"),
    ("cost_usd", Decimal("-0.01"), "cost_usd"),
    ("cost_usd", Decimal("NaN"), "cost_usd"),
    ("function_name", "", "function_name"),
    ("function_name", "x" * 201, "function_name"),
    ("function_name", "bad\nname", "function_name"),
    ("model", "", "model"),
    ("tenant_id", "t" * 101, "tenant_id"),
    ("status", "ok", "status"),
    ("error_type", "Timeout", "error_type"),  # error_type without status = 'error'
    ("query_length", -3, "query_length"),
    ("request_id", "r" * 201, "request_id"),
])
def test_impossible_values_are_rejected_naming_the_column(
        db_url: str, column: str, value: Any, constraint: str) -> None:
    row = {**BASE, column: value}
    cols = ", ".join(row)
    ph = ", ".join(["%s"] * len(row))
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation) as err:
        conn.execute(f"INSERT INTO mlops.model_performance ({cols}) VALUES ({ph})",
                     list(row.values()))
    assert constraint in str(err.value)


def test_oversized_metadata_is_rejected(db_url: str) -> None:
    big = '{"blob": "' + "x" * 20000 + '"}'
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation,
                                                        match="metadata"):
        conn.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms,"
                     " metadata) VALUES ('f', 'm', 1, %s::jsonb)", (big,))


def _insert(conn: psycopg.Connection[Any], **kw: Any) -> tuple[Any, ...]:
    row = {**BASE, **kw}
    cols = ", ".join(row)
    ph = ", ".join(["%s"] * len(row))
    out = conn.execute(f"INSERT INTO mlops.model_performance ({cols}) VALUES ({ph})"
                       " RETURNING cost_usd, cost_source", list(row.values())).fetchone()
    assert out is not None
    return tuple(out)


def test_trigger_prices_tokens_with_cached_share(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        # gpt-4o-mini: 0.15 input, 0.075 cached input, 0.60 output per 1M tokens.
        cost, source = _insert(conn, prompt_tokens=1000, cached_tokens=400, completion_tokens=200)
    assert source == "price_table"
    assert cost == Decimal("0.000240000000")  # (600*0.15 + 400*0.075 + 200*0.6) / 1e6


def test_unknown_model_is_unpriced_not_zero(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        cost, source = _insert(conn, model="my-finetune-v9", prompt_tokens=100)
    assert (cost, source) == (None, "unpriced")


def test_caller_cost_is_kept(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        cost, source = _insert(conn, prompt_tokens=100, cost_usd=Decimal("0.5"))
    assert (cost, source) == (Decimal("0.500000000000"), "caller")


def test_price_in_force_at_request_time_and_tenant_override(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO mlops.model_prices (model, provider, input_usd_per_mtok,"
            " output_usd_per_mtok, effective_from) VALUES"
            " ('m1', 'x', 1, 2, '2025-01-01'), ('m1', 'x', 10, 20, '2025-06-01')")
        conn.execute(
            "INSERT INTO mlops.model_prices (model, provider, tenant_id, input_usd_per_mtok,"
            " output_usd_per_mtok, effective_from) VALUES ('m1', 'x', 'acme', 0.5, 0.5,"
            " '2025-01-01')")
        old = _insert(conn, model="m1", prompt_tokens=1_000_000, created_at="2025-03-01")
        new = _insert(conn, model="m1", prompt_tokens=1_000_000, created_at="2025-07-01")
        acme = _insert(conn, model="m1", prompt_tokens=1_000_000, created_at="2025-07-01",
                       tenant_id="acme")
        before = _insert(conn, model="m1", prompt_tokens=1_000_000, created_at="2024-07-01")
    assert old[0] == Decimal(1)
    assert new[0] == Decimal(10)
    assert acme[0] == Decimal("0.5")
    assert before == (None, "unpriced")


def test_notify_is_one_wakeup_per_statement_without_data(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener, psycopg.connect(db_url) as w:
        listener.execute("LISTEN mlops_events")
        with w.transaction(), w.cursor() as cur:
            cur.executemany(
                "INSERT INTO mlops.model_performance (function_name, model, latency_ms)"
                " VALUES ('f', 'm', %s)", [(float(i),) for i in range(3)])
        w.execute("INSERT INTO mlops.model_performance (function_name, model, latency_ms)"
                  " SELECT 'f', 'm', g FROM generate_series(1, 50) g")
        w.commit()
        got = list(listener.notifies(timeout=1.0))
    assert got, "no notification arrived"
    assert all(n.payload == "" for n in got)
    assert len(got) <= 2  # identical payloads in one transaction are folded by Postgres
