"""Deterministic traffic splitting: stable, balanced, minimal movement (pure)."""

from __future__ import annotations

import math

import pytest

from stream_mlops.experiments.assignment import assign

ARMS = [("control", 0.5), ("treatment", 0.5)]



def test_same_unit_same_variant_and_seed_matters() -> None:
    a = [assign("seed-a", f"u{i}", ARMS) for i in range(1000)]
    assert a == [assign("seed-a", f"u{i}", ARMS) for i in range(1000)]
    b = [assign("seed-b", f"u{i}", ARMS) for i in range(1000)]
    assert 400 < sum(x != y for x, y in zip(a, b, strict=True)) < 600  # independent seeds


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.9, 0.1), (1, 2, 7), (0.2, 0.3, 0.5)])
def test_weights_are_respected_within_sampling_error(weights: tuple[float, ...]) -> None:
    n = 100_000
    arms = [(f"v{i}", w) for i, w in enumerate(weights)]
    counts = {name: 0 for name, _ in arms}
    for i in range(n):
        counts[assign("balance", str(i), arms)] += 1
    total = sum(weights)
    for name, w in arms:
        p = w / total
        assert abs(counts[name] - n * p) < 4 * math.sqrt(n * p * (1 - p)), (name, counts)


def test_changing_weights_moves_only_the_units_it_must() -> None:
    n = 50_000
    before = [assign("move", str(i), [("control", 0.5), ("treatment", 0.5)]) for i in range(n)]
    after = [assign("move", str(i), [("control", 0.6), ("treatment", 0.4)]) for i in range(n)]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
    assert all(b == "treatment" and a == "control" for b, a in moved)  # one direction only
    assert abs(len(moved) / n - 0.10) < 0.01


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="weights"):
        assign("s", "u", [("a", 0), ("b", 0)])
