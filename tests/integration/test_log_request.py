"""The SQL API for callers in any language: mlops.log_request and mlops.log_requests."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.conftest import Roles


def call(conn: psycopg.Connection[Any], **kw: Any) -> None:
    args = ", ".join(f"{k} => %({k})s" for k in kw)
    conn.execute(f"SELECT mlops.log_request({args})", kw)


def rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT tenant_id, function_name, model, variant, latency_ms, prompt_tokens,"
            " cached_tokens, status, error_type, cost_usd, cost_source"
            " FROM mlops.model_performance ORDER BY id").fetchall()


def test_named_arguments_and_defaults(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        call(conn, function_name="summarize", model="gpt-4o-mini", latency_ms=812.5,
             prompt_tokens=1000, cached_tokens=400, completion_tokens=200)
        call(conn, function_name="classify", model="gpt-4o", latency_ms=30, status="error",
             error_type="Timeout", tenant_id="acme", variant="treatment")
    got = rows(db_url)
    assert got[0][:8] == ("default", "summarize", "gpt-4o-mini", "control", 812.5, 1000, 400,
                          "success")
    assert str(got[0][9]) == "0.000240000000" and got[0][10] == "price_table"
    assert got[1][0] == "acme" and got[1][3] == "treatment" and got[1][7:9] == ("error",
                                                                               "Timeout")


BAD: list[tuple[dict[str, Any], str]] = [
    ({"function_name": None}, "function_name is required"),
    ({"function_name": "  "}, "function_name is required"),
    ({"function_name": "f" * 201}, "function_name is longer than 200 characters"),
    ({"model": None}, "model is required"),
    ({"model": "m" * 201}, "model is longer than 200 characters"),
    ({"latency_ms": None}, "latency_ms is required"),
    ({"latency_ms": float("nan")}, "latency_ms must be a finite number, got NaN"),
    ({"latency_ms": float("inf")}, "latency_ms must be a finite number, got Infinity"),
    ({"latency_ms": -3.0}, "latency_ms must be >= 0, got -3"),
    ({"latency_ms": 1e9}, "latency_ms must be at most 86400000"),
    ({"prompt_tokens": -1}, "prompt_tokens must be >= 0, got -1"),
    ({"completion_tokens": -7}, "completion_tokens must be >= 0, got -7"),
    ({"cached_tokens": -1}, "cached_tokens must be >= 0"),
    ({"prompt_tokens": 10, "cached_tokens": 11}, "cached_tokens (11) cannot exceed prompt"),
    ({"status": "ok"}, "status must be 'success' or 'error', got 'ok'"),
    ({"error_type": "Timeout"}, "error_type is only allowed with status 'error'"),
    ({"confidence": 1.2}, "confidence must be between 0 and 1, got 1.2"),
    ({"confidence": float("nan")}, "confidence must be between 0 and 1, got NaN"),
    ({"query_length": -1}, "query_length must be >= 0"),
    ({"cost_usd": Decimal("-0.5")}, "cost_usd must be between 0 and 1000000, got -0.5"),
    ({"variant": ""}, "variant must be 1 to 100 characters"),
    ({"tenant_id": "t" * 101}, "tenant_id must be 1 to 100 characters"),
    ({"metadata": json.dumps([1, 2])}, "metadata must be a JSON object"),
    ({"metadata": json.dumps({"x": "y" * 20000})}, "metadata is larger than 8 kB"),
]


@pytest.mark.parametrize(("bad", "message"), BAD)
def test_log_request_names_the_field(db_url: str, bad: dict[str, Any], message: str) -> None:
    args = {"function_name": "f", "model": "gpt-4o", "latency_ms": 5.0, **bad}
    if "metadata" in args:
        args["metadata"] = Jsonb(json.loads(args["metadata"]))
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation) as err:
        call(conn, **args)
    assert f"log_request: {message}" in str(err.value)
    assert rows(db_url) == []


def json_value(v: Any) -> Any:
    """NaN and Infinity as JSON strings (which Postgres reads as those floats)."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else "Infinity"
    return float(v) if isinstance(v, Decimal) else v


@pytest.mark.parametrize(("bad", "message"), BAD)
def test_log_requests_names_the_element_and_field(db_url: str, bad: dict[str, Any],
                                                  message: str) -> None:
    good = {"function_name": "f", "model": "gpt-4o", "latency_ms": 5.0}
    wrong = {**good, **bad}
    if "metadata" in wrong:
        wrong["metadata"] = json.loads(wrong["metadata"])
    wrong = {k: json_value(v) for k, v in wrong.items()}
    body = json.dumps([good, good, wrong, good])
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation) as err:
        conn.execute("SELECT mlops.log_requests(%s::jsonb)", (body,))
    assert f"log_requests: element 3: {message}" in str(err.value)
    assert rows(db_url) == []  # all or nothing


@pytest.mark.parametrize(("body", "message"), [
    ('{"function_name": "f"}', "expected a JSON array of request objects"),
    ('[{"function_name": "f", "model": "m", "latency_ms": 1}, 7]',
     "element 2: expected an object, got number"),
    ('[{"function_name": "f", "model": "m", "latncy_ms": 1}]', 'element 1: unknown field'),
    ('[{"function_name": "f", "model": "m", "latency_ms": 1},'
     ' {"function_name": "f", "model": "m", "latency_ms": "fast"}]',
     'element 2: invalid input syntax for type double precision: "fast"'),
    ('[{"function_name": "f", "model": "m", "latency_ms": 1, "prompt_tokens": 1.5}]',
     'element 1: invalid input syntax for type integer: "1.5"'),
    ('[{"function_name": "f", "model": "m", "latency_ms": 1, "created_at": "yesterday-ish"}]',
     "element 1: invalid input syntax for type timestamp with time zone"),
])
def test_log_requests_rejects_malformed_json(db_url: str, body: str, message: str) -> None:
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.InvalidParameterValue,
                                                        match=message):
        conn.execute("SELECT mlops.log_requests(%s::jsonb)", (body,))


def test_log_requests_writes_all_with_defaults(db_url: str) -> None:
    body = json.dumps([{"function_name": "f", "model": "gpt-4o-mini", "latency_ms": i,
                        "prompt_tokens": 100} for i in range(50)]
                      + [{"function_name": "g", "model": "unknown-x", "latency_ms": 1}])
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT mlops.log_requests(%s::jsonb)", (body,)).fetchone()
    assert row is not None and row[0] == 51
    got = rows(db_url)
    assert len(got) == 51
    assert got[-1][9:] == (None, "unpriced")


def test_writer_logs_for_its_own_tenant_by_default(roles: Roles) -> None:
    with roles.as_(roles.writer_a) as w:
        call(w, function_name="f", model="gpt-4o", latency_ms=1)
        w.execute("SELECT mlops.log_requests(%s::jsonb)",
                  (json.dumps([{"function_name": "f", "model": "m", "latency_ms": 2}]),))
        w.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            call(w, function_name="f", model="gpt-4o", latency_ms=1, tenant_id="b")
    with psycopg.connect(roles.url) as su:
        tenants = su.execute("SELECT tenant_id, count(*) FROM mlops.model_performance"
                             " WHERE latency_ms IN (1, 2) GROUP BY 1").fetchall()
    assert tenants == [("a", 2)]
