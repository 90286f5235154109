"""Validation of the Python client and token usage from SDK responses (no I/O)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from stream_mlops.client.logger import COLUMNS, request_row
from stream_mlops.client.usage import Usage, UsageError, usage_from

GOOD: dict[str, Any] = {"function_name": "f", "model": "gpt-4o", "latency_ms": 12.5}


def test_valid_row_in_column_order() -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    row = dict(zip(COLUMNS, request_row(**GOOD, prompt_tokens=10, cached_tokens=4,
                                        cost_usd=0.25, created_at=at), strict=True))
    assert row["function_name"] == "f" and row["latency_ms"] == 12.5
    assert row["tenant_id"] == "default" and row["variant"] == "control"
    assert row["cost_usd"] == "0.25" and row["created_at"] == at.timestamp()
    assert row["status"] == "success" and row["metadata"] is None


@pytest.mark.parametrize(("bad", "message"), [
    ({"function_name": None}, "function_name is required"),
    ({"function_name": "  "}, "function_name is required"),
    ({"function_name": 5}, "function_name must be a string"),
    ({"function_name": "f" * 201}, "function_name is longer than 200"),
    ({"function_name": "a\x1fb"}, "function_name must not contain control characters"),
    ({"function_name": "a\u2028b"}, "function_name must not contain control characters"),
    ({"model": "gpt\u202e"}, "model must not contain control characters"),
    ({"variant": "b\x85"}, "variant must not contain control characters"),
    ({"model": ""}, "model is required"),
    ({"latency_ms": float("nan")}, "latency_ms must be a finite number"),
    ({"latency_ms": float("inf")}, "latency_ms must be a finite number"),
    ({"latency_ms": -1}, "latency_ms must be between 0 and 86400000, got -1"),
    ({"latency_ms": "12"}, "latency_ms must be a number"),
    ({"latency_ms": True}, "latency_ms must be a number"),
    ({"prompt_tokens": -1}, "prompt_tokens must be >= 0"),
    ({"prompt_tokens": 1.5}, "prompt_tokens must be an integer"),
    ({"completion_tokens": -2}, "completion_tokens must be >= 0"),
    ({"prompt_tokens": 5, "cached_tokens": 6}, "cached_tokens (6) cannot exceed"),
    ({"status": "failed"}, "status must be 'success' or 'error'"),
    ({"error_type": "Timeout"}, "error_type is only allowed with status 'error'"),
    ({"confidence": 1.01}, "confidence must be between 0 and 1"),
    ({"confidence": float("nan")}, "confidence must be a finite number"),
    ({"query_length": -1}, "query_length must be >= 0"),
    ({"cost_usd": -0.01}, "cost_usd must be between 0 and"),
    ({"cost_usd": float("nan")}, "cost_usd must be a finite number"),
    ({"tenant_id": "t" * 101}, "tenant_id is longer than 100"),
    ({"variant": ""}, "variant is required"),
    ({"metadata": [1, 2]}, "metadata must be a dict"),
    ({"metadata": {"x": "y" * 9000}}, "metadata is larger than 8 kB"),
    ({"metadata": {"x": object()}}, "metadata is not JSON-serialisable"),
    ({"created_at": datetime(2026, 1, 1)}, "created_at must be a timezone-aware datetime"),
])
def test_bad_input_names_the_field(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        request_row(**{**GOOD, **bad})


def test_openai_chat_usage_includes_cached() -> None:
    resp = SimpleNamespace(usage=SimpleNamespace(
        prompt_tokens=1000, completion_tokens=50,
        prompt_tokens_details=SimpleNamespace(cached_tokens=640)))
    assert usage_from(resp) == Usage(1000, 50, 640)


def test_openai_responses_usage() -> None:
    resp = {"usage": {"input_tokens": 300, "output_tokens": 20,
                      "input_tokens_details": {"cached_tokens": 128}}}
    assert usage_from(resp) == Usage(300, 20, 128)


def test_anthropic_usage_adds_cache_reads_and_writes() -> None:
    resp = SimpleNamespace(usage=SimpleNamespace(
        input_tokens=25, output_tokens=70, cache_read_input_tokens=1000,
        cache_creation_input_tokens=200))
    assert usage_from(resp) == Usage(1225, 70, 1000, 200)


def test_missing_or_odd_usage() -> None:
    assert usage_from(None) is None
    assert usage_from({"choices": []}) is None
    # A usage that is there but unreadable is an error, not zero tokens ($0).
    with pytest.raises(UsageError, match="none of prompt_tokens"):
        usage_from({"usage": {"prompt_tokens": None, "total": 3}})
    # Embeddings have no completion tokens: 0 is the truth there.
    assert usage_from({"usage": {"prompt_tokens": 5, "completion_tokens": None}}) == \
        Usage(5, 0, 0)

