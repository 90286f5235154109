"""Experiment configurations that would break the processor are refused where they are
made, and a running one written around those checks is skipped, not fatal."""

from __future__ import annotations

import pytest

from stream_mlops.experiments.config import (
    ExperimentError,
    ExperimentSpec,
    Variant,
    parse_variants,
)
from stream_mlops.experiments.monitor import ExperimentTracker, LiveExperimentRow
from stream_mlops.stats import SRMTest


def spec(*weights: float) -> ExperimentSpec:
    return ExperimentSpec("e", "f", variants=tuple(
        Variant(f"v{i}", w) for i, w in enumerate(weights)))


def test_weights_are_relative_even_near_the_float_limits() -> None:
    assert [v.weight for v in spec(1e308, 1e308).variants] == [1e308, 1e308]
    assert SRMTest([1e308, 1e308]).shares == [0.5, 0.5]
    assert spec(0.5, 0.0, 0.5).variants[1].weight == 0.0  # a paused arm is allowed


@pytest.mark.parametrize("weights", [(1e-200, 1e200), (1.0, 1e-5)])
def test_a_share_too_small_to_test_is_refused(weights: tuple[float, float]) -> None:
    with pytest.raises(ExperimentError, match=r"would get less than 0\.01% of the traffic"):
        spec(*weights)


def test_srm_refuses_weights_whose_share_underflows() -> None:
    with pytest.raises(ValueError, match="too uneven"):
        SRMTest([1e-300, 1e300])


def test_variant_names_and_weights_are_trimmed() -> None:
    assert [(v.name, v.weight) for v in parse_variants(" a : 1 , b : 3 ")] == [
        ("a", 1.0), ("b", 3.0)]


def row(eid: str, weights: tuple[float, float]) -> LiveExperimentRow:
    return LiveExperimentRow(eid, "t0", f"name-{eid}", "f", "running",
                             [{"name": "control", "weight": weights[0]},
                              {"name": "treatment", "weight": weights[1]}],
                             "error_rate", [], 0.05, None, 100, False, None, {})


def test_an_unusable_running_experiment_is_skipped_and_reported_once() -> None:
    tracker = ExperimentTracker()
    rows = [row("bad", (1e-300, 1e300)), row("good", (1.0, 1.0))]
    new = tracker.sync(rows)
    assert [e.name for e in new] == ["name-good"]
    assert tracker.refused == ["experiment name-bad cannot be followed: weights too uneven: "
                               "an arm's share underflows to 0"]
    assert tracker.sync(rows) == [] and tracker.refused == []  # reported once
    tracker.sync([row("good", (1.0, 1.0))])  # stopped: forgotten
    assert tracker.unusable == {}



@pytest.mark.parametrize(("function", "message"), [
    ("f\x1b[31m", "function_name must not contain control characters"),
    ("f" * 201, "function_name is longer than 200 characters"),
    ("  ", "function_name is required"),
])
def test_function_names_follow_the_rules_of_logged_rows(function: str, message: str) -> None:
    with pytest.raises(ExperimentError, match=message.replace("[", r"\[")):
        ExperimentSpec("e", function)


def test_a_guardrail_is_neither_the_primary_metric_nor_listed_twice() -> None:
    with pytest.raises(ExperimentError, match="guardrail error_rate is the primary metric"):
        ExperimentSpec("e", "f", guardrails=("error_rate",))
    with pytest.raises(ExperimentError, match="guardrail latency is listed twice"):
        ExperimentSpec("e", "f", guardrails=("latency", "latency"))
