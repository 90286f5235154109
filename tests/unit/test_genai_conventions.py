"""The GenAI metrics against the OpenTelemetry semantic conventions package (a convention
change fails here), and their aggregation on a seeded batch."""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any, cast

import numpy as np
import opentelemetry.semconv._incubating.attributes.gen_ai_attributes as attrs
import opentelemetry.semconv._incubating.metrics.gen_ai_metrics as conv
from opentelemetry.semconv.attributes import error_attributes
from prometheus_client.core import Metric

from stream_mlops.core.batch import batch_of
from stream_mlops.core.monitor import Store
from stream_mlops.core.series import KEY_SEPARATOR, SeriesIndex
from stream_mlops.costs.pricing import Price, PriceBook
from stream_mlops.telemetry.genai import (
    DURATION_BUCKETS_SECONDS,
    OTEL_PROVIDER,
    TOKEN_BUCKETS,
    GenAiMetrics,
    GenAiRow,
)

UNIT_SUFFIX = {"s": "_seconds", "{token}": ""}  # OpenTelemetry -> Prometheus names


def _unit(create: Any) -> str:
    return inspect.getsource(create).split('unit="')[1].split('"')[0]


def _families(m: GenAiMetrics) -> dict[str, Metric]:
    return {f.name: f for f in m.metrics(0.0)()}


def _monitor() -> GenAiMetrics:
    m = GenAiMetrics()
    m.index = SeriesIndex()
    m.prices = PriceBook([Price("gpt-4o", "openai", Decimal(1), Decimal(1)),
                          Price("gemini-2.5-pro", "google", Decimal(1), Decimal(1))])
    return m


def test_names_units_and_attributes_follow_the_conventions() -> None:
    duration = conv.GEN_AI_CLIENT_OPERATION_DURATION.replace(".", "_") + UNIT_SUFFIX[
        _unit(conv.create_gen_ai_client_operation_duration)]
    usage = conv.GEN_AI_CLIENT_TOKEN_USAGE.replace(".", "_") + UNIT_SUFFIX[
        _unit(conv.create_gen_ai_client_token_usage)]
    m = _monitor()
    m.observe(batch_of(m.index, [("t", "f", "gpt-4o", "v")], np.array([0, 0]),
                       created_at=np.array([1.0, 2.0]), latency_ms=np.array([5.0, 7.0]),
                       is_error=np.array([False, True]), error_type=[None, "Timeout"],
                       prompt_tokens=np.array([10, 0])))
    families = _families(m)
    assert set(families) == {duration, usage}
    required = {a.replace(".", "_") for a in (
        attrs.GEN_AI_OPERATION_NAME, attrs.GEN_AI_PROVIDER_NAME, attrs.GEN_AI_REQUEST_MODEL)}
    error = error_attributes.ERROR_TYPE.replace(".", "_")
    for sample in families[duration].samples:
        assert required | {error} <= set(sample.labels) | {"le"}
    for sample in families[usage].samples:
        assert required | {attrs.GEN_AI_TOKEN_TYPE.replace(".", "_")} <= set(sample.labels)
        assert sample.labels["gen_ai_token_type"] in {
            v.value for v in attrs.GenAiTokenTypeValues}
    assert {s.labels["gen_ai_operation_name"] for s in families[duration].samples} <= {
        v.value for v in attrs.GenAiOperationNameValues}
    # Every provider we rename is a value the conventions list.
    assert set(OTEL_PROVIDER.values()) <= {v.value for v in attrs.GenAiProviderNameValues}
    # The conventions' bucket advice.
    assert DURATION_BUCKETS_SECONDS[0] == 0.01 and DURATION_BUCKETS_SECONDS[-1] == 81.92
    assert tuple(4.0 ** k for k in range(14)) == TOKEN_BUCKETS


def test_a_seeded_batch_lands_in_exact_buckets_by_attribute() -> None:
    m = _monitor()
    rng = np.random.default_rng(5)
    n = 400
    keys = [("t", "f", "gpt-4o", "v"), ("t", "g", "gemini-2.5-pro", "v"),
            ("t", "h", "acme-llm", "v")]
    series = rng.integers(0, 3, n)
    latency = rng.lognormal(6, 1, n)
    errors = rng.random(n) < 0.2
    error_type = [("Timeout", "RateLimit")[i % 2] if e else None
                  for i, e in enumerate(errors.tolist())]
    gen_ai = [f"embeddings{KEY_SEPARATOR}" if i % 10 == 0 else None for i in range(n)]
    prompt = rng.integers(0, 5000, n)
    m.observe(batch_of(m.index, keys, series, created_at=np.arange(n, dtype=float),
                       latency_ms=latency, is_error=errors, error_type=error_type,
                       gen_ai=gen_ai, prompt_tokens=prompt,
                       completion_tokens=rng.integers(0, 500, n)))
    provider = {0: "openai", 1: "gcp.gemini", 2: "_OTHER"}
    model = {0: "gpt-4o", 1: "gemini-2.5-pro", 2: "acme-llm"}
    expected: dict[tuple[str, str, str, str], list[float]] = {}
    for i in range(n):
        op = "embeddings" if i % 10 == 0 else "chat"
        key = (op, provider[int(series[i])], model[int(series[i])], error_type[i] or "")
        expected.setdefault(key, []).append(latency[i] / 1000)
    fam = _families(m)["gen_ai_client_operation_duration_seconds"]
    counts = {tuple(s.labels[k] for k in ("gen_ai_operation_name", "gen_ai_provider_name",
                                         "gen_ai_request_model", "error_type")): s.value
              for s in fam.samples if s.name.endswith("_count")}
    assert counts == {k: len(v) for k, v in expected.items()}
    buckets = {(tuple(s.labels[k] for k in ("gen_ai_operation_name", "gen_ai_provider_name",
                                           "gen_ai_request_model", "error_type")),
                s.labels["le"]): s.value for s in fam.samples if s.name.endswith("_bucket")}
    for k, values in expected.items():
        for le in (0.16, 1.28, 10.24):
            assert buckets[(k, format(le, "g"))] == sum(v <= le for v in values)
    usage = _families(m)["gen_ai_client_token_usage"]
    sums = {(s.labels["gen_ai_request_model"], s.labels["gen_ai_operation_name"]): s.value
            for s in usage.samples if s.name.endswith("_sum")
            and s.labels["gen_ai_token_type"] == "input"}
    # Token usage counts the successes only.
    for j, name in model.items():
        for op, picks in (("chat", [i for i in range(n) if i % 10]),
                          ("embeddings", [i for i in range(n) if i % 10 == 0])):
            want = sum(int(prompt[i]) for i in picks if series[i] == j and not errors[i])
            assert sums.get((name, op), 0) == want


def test_error_types_past_the_limit_fold_and_the_state_round_trips() -> None:
    m = _monitor()
    m.MAX_ERROR_TYPES = 3
    n = 10
    b = batch_of(m.index, [("t", "f", "gpt-4o", "v")], np.zeros(n, np.int64),
                 created_at=np.arange(n, dtype=float), latency_ms=np.full(n, 100.0),
                 is_error=np.ones(n, np.bool_), error_type=[f"E{i}" for i in range(n)])
    written = m.observe(b).writes[0].params["totals"]["rows"]
    labels = sorted(r["error_type"] for r in written)
    assert labels == ["E0", "E1", "E2", "_OTHER"]
    assert {r["error_type"]: r["duration_count"] for r in written}["_OTHER"] == 7
    # What was written is what a restart reads back.
    restored = _monitor()
    restored.restore(cast(Store, _Rows([GenAiRow(**r) for r in written])))
    assert _families(restored).keys() == _families(m).keys()
    assert [s for f in _families(restored).values() for s in f.samples] == [
        s for f in _families(m).values() for s in f.samples]


class _Rows:
    """A store holding the genai_totals rows (and an empty price table)."""

    def __init__(self, rows: list[GenAiRow]) -> None:
        self._rows = rows

    def rows(self, query: str, row: type[Any], /, **params: Any) -> list[Any]:
        return self._rows if query == "genai_totals" else []
