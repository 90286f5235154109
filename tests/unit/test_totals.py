"""Batch aggregation equals a naive per-row reference, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from stream_mlops.pipeline.totals import (
    CONFIDENCE_BOUNDS,
    LATENCY_BOUNDS,
    TOKEN_BOUNDS,
    Columns,
    SeriesTotals,
    aggregate,
)


def random_columns(rng: np.random.Generator, n: int, n_series: int) -> Columns:
    return Columns(
        series=rng.integers(0, n_series, n),
        created_at=rng.uniform(1e9, 2e9, n),
        latency_ms=np.round(rng.lognormal(6, 1.5, n), 3),
        prompt_tokens=rng.integers(0, 100_000, n),
        completion_tokens=rng.integers(0, 5000, n),
        cached_tokens=rng.integers(0, 10, n),
        cost_pico=np.where(rng.random(n) < 0.1, -1, rng.integers(0, 10**10, n)),
        confidence=np.where(rng.random(n) < 0.2, -1.0, rng.random(n)),
        is_error=rng.random(n) < 0.05,
    )


def naive(cols: Columns) -> dict[int, dict[str, object]]:
    out: dict[int, dict[str, object]] = {}
    for i in range(len(cols)):
        s = out.setdefault(int(cols.series[i]), {
            "success": 0, "error": 0, "cost": 0, "unpriced": 0, "prompt": 0,
            "lat": np.zeros(len(LATENCY_BOUNDS) + 1, int),
            "conf": np.zeros(len(CONFIDENCE_BOUNDS) + 1, int), "conf_n": 0})
        s["error" if cols.is_error[i] else "success"] += 1  # type: ignore[operator]
        if cols.cost_pico[i] < 0:
            s["unpriced"] += 1  # type: ignore[operator]
        else:
            s["cost"] += int(cols.cost_pico[i])  # type: ignore[operator]
        s["prompt"] += int(cols.prompt_tokens[i])  # type: ignore[operator]
        lat_s = cols.latency_ms[i] / 1000
        s["lat"][next((j for j, b in enumerate(LATENCY_BOUNDS) if lat_s <= b),  # type: ignore[index]
                      len(LATENCY_BOUNDS))] += 1
        if cols.confidence[i] >= 0:
            c = cols.confidence[i]
            s["conf"][next((j for j, b in enumerate(CONFIDENCE_BOUNDS) if c <= b),  # type: ignore[index]
                           len(CONFIDENCE_BOUNDS))] += 1
            s["conf_n"] += 1  # type: ignore[operator]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aggregate_matches_naive_reference(seed: int) -> None:
    cols = random_columns(np.random.default_rng(seed), 3000, 37)
    d = aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
    ref = naive(cols)
    assert d.series.tolist() == sorted(ref)
    for k, s in enumerate(d.series.tolist()):
        r = ref[s]
        assert (d.success[k], d.error[k], d.unpriced[k]) == (r["success"], r["error"],
                                                            r["unpriced"])
        assert d.cost_pico[k] == r["cost"]
        assert d.prompt_tokens[k] == r["prompt"]
        assert d.latency_buckets[k].tolist() == r["lat"].tolist()  # type: ignore[attr-defined]
        assert d.confidence_buckets[k].tolist() == r["conf"].tolist()  # type: ignore[attr-defined]
        assert d.confidence_count[k] == r["conf_n"]


def test_bucket_bounds_are_inclusive() -> None:
    cols = random_columns(np.random.default_rng(0), 3, 1)
    cols = Columns(**{**cols.__dict__, "latency_ms": np.array([10.0, 10.0001, 81920.0]),
                      "series": np.zeros(3, np.int64)})
    d = aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
    b = d.latency_buckets[0]
    assert b[0] == 1  # exactly 0.01 s is "le 0.01"
    assert b[1] == 1
    assert b[len(LATENCY_BOUNDS) - 1] == 1  # 81.92 s is le 81.92, not +Inf


def test_huge_costs_are_summed_exactly_without_overflow() -> None:
    cols = random_columns(np.random.default_rng(3), 4, 1)
    big = 10**18  # $1,000,000 in pico-dollars: 4 of them overflow int64
    cols = Columns(**{**cols.__dict__, "series": np.zeros(4, np.int64),
                      "cost_pico": np.full(4, big, np.int64)})
    d = aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
    assert d.cost_pico == [4 * big]


def test_apply_equals_after_and_accumulates_across_batches() -> None:
    rng = np.random.default_rng(5)
    t = SeriesTotals()
    t.grow(5)
    a, b = random_columns(rng, 500, 5), random_columns(rng, 700, 5)
    for cols in (a, b):
        d = aggregate(cols, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
        after = t.after(d)
        t.apply(d)
        assert t.success[after.series].tolist() == after.success.tolist()
        assert [t.cost_pico[i] for i in after.series] == after.cost_pico
    both = Columns(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in a.__dict__))
    whole = aggregate(both, LATENCY_BOUNDS, TOKEN_BOUNDS, CONFIDENCE_BOUNDS)
    assert t.cost_pico == whole.cost_pico
    assert t.latency_buckets.tolist() == whole.latency_buckets.tolist()

