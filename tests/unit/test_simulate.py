"""Every simulator scenario shows the statistical signature it claims (seeded, no I/O)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import pytest

from stream_mlops.client.logger import request_row
from stream_mlops.dev.simulator import BASE_ERROR_RATE, SCENARIOS, Scenario, Traffic

N = 20_000
Rows = list[dict[str, Any]]


def before_after(name: str, seed: int = 3) -> tuple[Rows, Rows]:
    t = Traffic(seed, Scenario(name, change_after=100.0))
    return list(t.requests(N, elapsed=50.0)), list(t.requests(N, elapsed=150.0))


def error_rate(rows: Rows, **match: str) -> float:
    sel = [r for r in rows if all(r[k] == v for k, v in match.items())]
    errors: int = sum(r["status"] == "error" for r in sel)
    return errors / len(sel)


def median(rows: Rows, key: str, **match: str) -> float:
    return float(statistics.median(r[key] for r in rows
                                   if all(r[k] == v for k, v in match.items())))


def cost_proxy(rows: Rows) -> float:
    # gpt-4o-mini: 0.15 input, 0.60 output USD per 1M tokens
    return float(sum(r["prompt_tokens"] * 0.15 + r["completion_tokens"] * 0.60 for r in rows
                     if r["function_name"] == "summarize"))


def test_same_seed_same_stream_and_every_row_is_valid() -> None:
    a = list(Traffic(7).requests(500))
    assert a == list(Traffic(7).requests(500))
    assert a != list(Traffic(8).requests(500))
    for fields in a:
        request_row(**fields)  # raises on anything the client or the table would refuse


def test_steady_has_the_base_error_rate() -> None:
    before, after = before_after("steady")
    for rows in (before, after):
        assert abs(error_rate(rows) - BASE_ERROR_RATE) < 0.005


Check = Callable[[Rows, Rows], bool]
SIGNATURES: dict[str, Check] = {
    "latency_regression": lambda b, a: 2.5 < median(a, "latency_ms") / median(b, "latency_ms")
    < 3.5,
    "error_burst": lambda b, a: error_rate(b) < 0.03 and 0.18 < error_rate(a) < 0.22,
    "input_drift": lambda b, a: 2.5 < median(a, "query_length") / median(b, "query_length")
    < 3.5,
    "cost_spike": lambda b, a: 9 < cost_proxy(a) / cost_proxy(b) < 11,
    "treatment_better": lambda b, a: (
        error_rate(a, variant="treatment") < 0.015
        and error_rate(a, variant="control") > 0.025
        and median(a, "latency_ms", variant="treatment")
        < 0.9 * median(a, "latency_ms", variant="control")),
    "treatment_worse": lambda b, a: (
        error_rate(a, variant="treatment") > 0.05
        and error_rate(a, variant="control") < 0.025
        and median(a, "latency_ms", variant="treatment")
        > 1.2 * median(a, "latency_ms", variant="control")),
    "bad_deployment": lambda b, a: (
        error_rate(b, deployment_slot="green") < 0.04
        and error_rate(a, deployment_slot="green") > 0.25
        and error_rate(a, deployment_slot="blue") < 0.03),
}


def test_every_scenario_has_a_signature_test() -> None:
    assert set(SIGNATURES) == set(SCENARIOS) - {"steady"}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_scenario_signature(name: str) -> None:
    before, after = before_after(name)
    assert SIGNATURES[name](before, after)
    assert not SIGNATURES[name](*before_after("steady")) or name.startswith("treatment")


def test_scenario_ends_when_told() -> None:
    t = Traffic(1, Scenario("error_burst", change_after=10, end_after=20))
    during = list(t.requests(N, elapsed=15))
    back = list(t.requests(N, elapsed=25))
    assert error_rate(during) > 0.18 and error_rate(back) < 0.03


def test_unknown_scenario_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'chaos'; one of: steady"):
        Scenario("chaos")
