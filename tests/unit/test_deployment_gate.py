"""The deployment gate and routing, pure: share accuracy and stability of routing, the
gate's decisions on seeded streams, its false-rollback bound on A/A streams, its state."""

from __future__ import annotations

import numpy as np
import pytest

from stream_mlops.deployments.gate import HEALTH_FAILURES, Gate, Plan
from stream_mlops.deployments.routing import Route, on_new_version


def test_routing_share_is_within_one_point_over_100k_units_and_units_stay() -> None:
    units = [f"user-{i}" for i in range(100_000)]
    before: set[str] = set()
    for share in (1.0, 10.0, 25.0, 50.0, 99.0):
        on = {u for u in units if on_new_version("dep-seed", u, share)}
        assert abs(len(on) / len(units) * 100 - share) < 1.0
        assert before <= on  # a unit on the new version keeps it as the share grows
        before = on
    assert all(on_new_version("dep-seed", u, 100.0) for u in units[:1000])
    assert not any(on_new_version("dep-seed", u, 0.0) for u in units[:1000])


def test_a_route_without_a_deployment_is_the_live_slot() -> None:
    r = Route("green", "v1")
    assert r.of("anyone") == ("green", "v1")
    promoted = Route("green", "v1", "blue", "v2", "s", 100.0, promoted=True)
    assert promoted.of("anyone") == ("blue", "v2")


def _stream(rng: np.random.Generator, n: int, share: float, *, new_error: float = 0.03,
            live_error: float = 0.03, new_latency: float = 1.0
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    new = rng.random(n) < share
    err = rng.random(n) < np.where(new, new_error, live_error)
    lat = 700 * rng.lognormal(0, 0.5, n) * np.where(new, new_latency, 1.0)
    conf = np.where(err, -1.0, rng.beta(8, 2, n))
    return new, lat, err, conf


def test_the_gate_walks_a_good_version_through_every_step() -> None:
    rng = np.random.default_rng(1)
    steps = (10.0, 50.0, 100.0)
    g = Gate(Plan(steps=steps, min_samples=200, step_seconds=60))
    d = g.decide("pending", -1, None, 0.0)
    moves, since, t = [d.outcome], 0.0, 0.0
    while d.status not in ("retired", "rolled_back", "failed") and t < 10_000:
        g.enter(f"{d.status}:{d.step_index}")
        share = 1.0 if d.status == "promoted" else steps[d.step_index] / 100
        g.observe(*_stream(rng, 500, share))
        t += 30
        d = g.decide(d.status, d.step_index, since, t)
        if d.outcome != "hold":
            moves.append(d.outcome)
            since = t
    assert moves == ["step", "step", "step", "promote", "retire"]


def test_no_traffic_holds_forever_and_never_promotes() -> None:
    g = Gate(Plan(steps=(10.0,), min_samples=200, step_seconds=0))
    g.enter("shifting:0")
    for t in range(0, 100_000, 1000):
        d = g.decide("shifting", 0, 0.0, float(t))
        assert d.outcome == "hold"
        assert d.message == "waiting for samples: 0 of 200 on the new version at 10 %"
    live_only = np.zeros(5000, np.bool_)
    g.observe(live_only, np.full(5000, 700.0), np.zeros(5000, np.bool_), np.full(5000, 0.9))
    assert g.decide("shifting", 0, 0.0, 1e6).outcome == "hold"


def test_a_better_version_never_rolls_back() -> None:
    rng = np.random.default_rng(3)
    g = Gate(Plan(min_samples=100))
    g.observe(*_stream(rng, 20_000, 0.5, new_error=0.01, new_latency=0.7))
    assert g.harmed() == []
    assert g.tests["error_rate"].decision == "treatment_better"


@pytest.mark.parametrize(("bad", "metric"), [
    ({"new_error": 0.10}, "error_rate"), ({"new_latency": 1.3}, "latency")])
def test_a_regression_rolls_back_with_its_numbers(bad: dict[str, float], metric: str) -> None:
    rng = np.random.default_rng(5)
    g = Gate(Plan(min_samples=100))
    g.enter("shifting:0")
    g.observe(*_stream(rng, 4000, 0.25, **bad))
    d = g.decide("shifting", 0, 0.0, 1.0)
    assert (d.outcome, d.status, d.traffic_percent) == ("rollback", "rolled_back", 0.0)
    assert d.message.startswith(f"harm established: {metric} ")
    assert "always-valid p = " in d.message


def test_hard_guards_fail_the_deployment() -> None:
    g = Gate(Plan(min_samples=100, max_error_rate=0.2))
    g.enter("shifting:0")
    new = np.ones(150, np.bool_)
    g.observe(new, np.full(150, 500.0), np.arange(150) % 3 == 0, np.full(150, -1.0))
    d = g.decide("shifting", 0, 0.0, 1.0)
    assert (d.outcome, d.status) == ("fail", "failed")
    assert "above the ceiling 20%" in d.message
    h = Gate(Plan()).decide("shifting", 0, 0.0, 1.0, health_failures=HEALTH_FAILURES,
                            health_error="connection refused")
    assert h.outcome == "fail" and "connection refused" in h.message


def test_false_rollbacks_stay_below_alpha_when_looked_at_after_every_batch() -> None:
    """100 A/A deployments of 4,000 requests each, looked at after every 100 requests
    (benchmarks/deployments.py runs 500 and more looks)."""
    rng = np.random.default_rng(11)
    rollbacks = 0
    for _ in range(100):
        g = Gate(Plan(min_samples=100, alpha=0.05))
        for _ in range(40):
            g.observe(*_stream(rng, 100, 0.5))
            if g.harmed():
                rollbacks += 1
                break
    assert rollbacks <= 5


def test_state_round_trips_and_a_foreign_state_is_refused() -> None:
    rng = np.random.default_rng(2)
    g = Gate(Plan(min_samples=100))
    g.enter("shifting:1")
    g.observe(*_stream(rng, 1000, 0.5))
    again = Gate.from_state(g.plan, g.state())
    assert again.state() == g.state()
    with pytest.raises((ValueError, KeyError, TypeError)):
        Gate.from_state(g.plan, {**g.state(), "n": [1, -2]})
