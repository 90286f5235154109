"""Row Level Security with real login roles: tenants cannot see or write each other."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.conftest import Roles


def tenants_seen(conn: psycopg.Connection[Any], table: str) -> set[str]:
    return {r[0] for r in conn.execute(f"SELECT tenant_id FROM mlops.{table}")}


def test_reader_sees_only_its_tenant(roles: Roles) -> None:
    with roles.as_(roles.reader_a) as a, roles.as_(roles.reader_b) as b:
        assert tenants_seen(a, "model_performance") == {"a"}
        assert tenants_seen(a, "alerts") == {"a"}
        assert tenants_seen(b, "model_performance") == {"b"}


def test_reader_cannot_write(roles: Roles) -> None:
    with roles.as_(roles.reader_a) as a, pytest.raises(psycopg.errors.InsufficientPrivilege):
        a.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                  " latency_ms) VALUES ('a', 'f', 'm', 1)")


def test_writer_inserts_own_tenant_only_and_cannot_read(roles: Roles) -> None:
    with roles.as_(roles.writer_a) as w:
        w.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                  " latency_ms, prompt_tokens) VALUES ('a', 'f', 'gpt-4o', 1, 1000000)")
        w.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            w.execute("INSERT INTO mlops.model_performance (tenant_id, function_name, model,"
                      " latency_ms) VALUES ('b', 'f', 'm', 1)")
        w.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            w.execute("SELECT * FROM mlops.model_performance")
        w.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            w.execute("UPDATE mlops.model_performance SET latency_ms = 0")
    with psycopg.connect(roles.url) as su:
        row = su.execute("SELECT cost_usd FROM mlops.model_performance WHERE tenant_id = 'a'"
                         " AND prompt_tokens = 1000000").fetchone()
    assert row is not None and float(row[0]) == 2.5  # priced by the trigger as the writer


def test_session_setting_cannot_change_tenant(roles: Roles) -> None:
    with roles.as_(roles.reader_a) as a:
        a.execute("SET mlops.tenant_id = 'b'")
        a.execute("SET application_name = 'b'")
        assert tenants_seen(a, "model_performance") == {"a"}
        # Asking about another role's tenants yields nothing.
        row = a.execute("SELECT mlops.tenants_of(%s)", (roles.reader_b,)).fetchone()
        assert row is not None and row[0] == []


def test_table_owner_does_not_bypass_policies(roles: Roles) -> None:
    with psycopg.connect(roles.url) as su:
        su.execute("SET ROLE mlops_owner")
        assert tenants_seen(su, "model_performance") == set()
        assert tenants_seen(su, "alerts") == set()


def test_view_runs_with_callers_rights(roles: Roles) -> None:
    with psycopg.connect(roles.url) as su:
        su.execute("INSERT INTO mlops.series_totals (consumer, tenant_id, function_name, model,"
                   " variant, latency_buckets, input_token_buckets, output_token_buckets,"
                   " confidence_buckets) SELECT 'default', t, 'f', 'm', 'control', '{}', '{}',"
                   " '{}', '{}' FROM unnest(ARRAY['a', 'b']) t")
    with roles.as_(roles.reader_a) as a:
        assert tenants_seen(a, "performance_summary") == {"a"}


def test_processor_role_reads_every_tenant(roles: Roles) -> None:
    with roles.as_(roles.processor) as p:
        assert tenants_seen(p, "model_performance") == {"a", "b"}


def test_config_changes_are_audited_with_actor(roles: Roles) -> None:
    with roles.as_(roles.processor) as p:
        p.execute("INSERT INTO mlops.thresholds (tenant_id, metric, value)"
                  " VALUES ('a', 'error_rate', 0.05)")
        p.execute("UPDATE mlops.thresholds SET value = 0.1 WHERE metric = 'error_rate'")
        p.execute("UPDATE mlops.thresholds SET updated_at = now()")  # bookkeeping: not audited
        p.commit()
    with psycopg.connect(roles.url) as su:
        rows = su.execute("SELECT operation, actor, row_after->>'value' FROM mlops.audit_log"
                          " WHERE table_name = 'thresholds' ORDER BY id").fetchall()
    assert rows == [("INSERT", roles.processor, "0.05"), ("UPDATE", roles.processor, "0.1")]
