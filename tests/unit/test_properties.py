"""Properties of the series index and exact sums on generated inputs (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_mlops.core.series import KEY_SEPARATOR, OTHER, SeriesBudget, SeriesIndex
from stream_mlops.stats.rings import RingSums, exact_grouped_sum

label = st.text(alphabet="abcxyz-_", min_size=1, max_size=3)
key = st.tuples(label, label, label, label)


@settings(max_examples=200, deadline=None)
@given(st.lists(key, max_size=60), st.integers(min_value=1, max_value=5))
def test_series_index_is_stable_bounded_and_consistent(keys: list[tuple[str, ...]],
                                                       limit: int) -> None:
    ix = SeriesIndex(SeriesBudget(per_tenant=limit, total=3 * limit))
    raw = [KEY_SEPARATOR.join(k) for k in keys]
    # The arrays are built after the first half and extended after the rest (and after a
    # group added on its own, as a restore does).
    ix.series_of(raw[:len(raw) // 2])
    assert len(ix.function) == len(ix.keys)
    ix.group_id("restored", "f", "m")
    first = ix.series_of(raw)
    assert len(ix.group_function) == len(ix.group_keys)
    assert ix.series_of(raw).tolist() == first.tolist()  # the same key, the same series
    for tenant in {k[0] for k in ix.keys}:  # at most `limit` real series per tenant
        assert len([k for k in ix.keys if k[0] == tenant and k[1] != OTHER]) <= limit
    assert len([k for k in ix.keys if k[1] != OTHER]) <= 3 * limit
    for s, k in enumerate(ix.keys):  # the group arrays agree with the keys
        assert ix.function_keys[ix.function[s]] == (k[0], k[1])
        assert ix.group_keys[ix.group[s]] == (k[0], k[1], k[2])
        assert ix.model_names[ix.model[s]] == k[2]
        assert ix.group_function[ix.group[s]] == ix.function[s]
    for want_key, s in zip(keys, first.tolist(), strict=True):  # unfolded labels are kept
        assert all(got in (want, OTHER) for got, want in zip(ix.keys[s], want_key, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**62)), max_size=50))
def test_exact_grouped_sum_equals_python_integers(pairs: list[tuple[int, int]]) -> None:
    slots = np.array([s for s, _ in pairs], np.int64)
    values = np.array([v for _, v in pairs], np.int64)
    want = [sum(v for s, v in pairs if s == g) for g in range(4)]
    assert exact_grouped_sum(slots, values, 4) == want


@given(st.lists(st.tuples(st.integers(0, 4), st.floats(0, 3600.0 * 24 * 40),
                          st.integers(0, 2**40)), max_size=40),
       st.sampled_from([np.int64, np.int32]))
def test_ring_sums_one_row_at_a_time_equal_one_batch(
        rows: list[tuple[int, float, int]], dtype: type) -> None:
    # Single-row batches take a scalar path: it must claim and zero columns exactly as the
    # vectorised one does, old rows that no longer fit included.
    values = [(g, t, v % 2**20 if dtype is np.int32 else v) for g, t, v in rows]
    one, batch = (RingSums(hours=48, days=3, dtype=dtype) for _ in range(2))
    for g, t, v in values:
        one.add(np.array([g]), np.array([t]), np.array([v], np.int64))
    for k in range(0, len(values), 7):  # the vectorised path in batches of up to 7
        part = values[k:k + 7]
        batch.add(np.array([g for g, _, _ in part], np.int64),
                  np.array([t for _, t, _ in part]), np.array([v for _, _, v in part], np.int64))
    assert np.array_equal(one.minute_id, batch.minute_id)
    assert np.array_equal(one.hour_id, batch.hour_id)
    n = max(one.groups, batch.groups)
    one.grow(n)
    batch.grow(n)
    assert np.array_equal(one.minute_sums[:n], batch.minute_sums[:n])
    assert np.array_equal(one.hour_sums[:n], batch.hour_sums[:n])
    assert np.array_equal(one.day_id, batch.day_id)
    assert np.array_equal(one.day_sums[:n], batch.day_sums[:n])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 3600.0 * 8),
                          st.integers(0, 10**14)), max_size=60),
       st.booleans(), st.integers(1, 9))
def test_float32_hour_sums_are_the_rounded_exact_sums(
        rows: list[tuple[int, float, int]], in_order: bool, batch: int) -> None:
    # Hours of a float32 ring hold the float32 nearest the exact sum: exactly that while
    # rows come in time order (the open hours are summed as integers and copied, so no
    # rounding accumulates), and within float32's precision when rows come late.
    if in_order:
        rows = sorted(rows, key=lambda r: r[1])
    exact, rounded = RingSums(hours=48), RingSums(hours=48, hour_dtype=np.float32)
    for k in range(0, len(rows), batch):
        part = rows[k:k + batch]
        for ring in (exact, rounded):
            ring.add(np.array([g for g, _, _ in part], np.int64),
                     np.array([t for _, t, _ in part]),
                     np.array([v for _, _, v in part], np.int64))
    assert rounded.hour_sums.dtype == np.float32
    assert np.array_equal(exact.hour_id, rounded.hour_id)
    assert np.array_equal(exact.minute_sums, rounded.minute_sums)
    want = exact.hour_sums.astype(np.float32)
    if in_order:
        assert np.array_equal(rounded.hour_sums, want)
    else:
        assert np.allclose(rounded.hour_sums, want, rtol=len(rows) * 2.0**-23, atol=0)


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_float32_hour_sums_of_a_long_stream_in_order(batch: int) -> None:
    # Thousands of costs an hour (one row at a time takes a scalar path): float adds would
    # drift from the exact sum; copies of the exact open hours do not.
    g = np.random.default_rng(batch)
    n = 3000
    t, group = np.sort(g.uniform(0, 3600 * 10, n)), g.integers(0, 3, n)
    values = g.integers(10**6, 10**12, n)
    exact, rounded = RingSums(hours=48), RingSums(hours=48, hour_dtype=np.float32)
    for k in range(0, n, batch):
        for ring in (exact, rounded):
            ring.add(group[k:k + batch], t[k:k + batch], values[k:k + batch])
    assert np.array_equal(rounded.hour_sums, exact.hour_sums.astype(np.float32))


def test_a_ring_without_minutes_keeps_the_same_hours() -> None:
    g = np.random.default_rng(3)
    t, group = g.uniform(0, 3600 * 30, 500), g.integers(0, 4, 500)
    values = g.integers(0, 10**9, 500)
    full, hourly = RingSums(hours=24, days=2), RingSums(hours=24, days=2, by_minute=False)
    for ring in (full, hourly):
        for k in range(0, 500, 3):
            ring.add(group[k:k + 3], t[k:k + 3], values[k:k + 3])
        ring.add(group[:1], t[:1], values[:1])  # and the one-row path
    assert hourly.minute_sums.size == 0 and full.minute_sums.any()
    assert np.array_equal(full.hour_sums, hourly.hour_sums)
    assert np.array_equal(full.day_sums, hourly.day_sums)


def test_an_integer_ring_reads_hours_exactly_past_float_precision() -> None:
    ring = RingSums(hours=24)
    ring.add(np.array([0, 0]), np.array([10.0, 20.0]), np.array([2**62, 1]))
    assert ring.at(0, np.array([0, 1])).tolist() == [2**62 + 1, 0]
    assert ring.at(5, np.array([0])).tolist() == [0]  # a group it never saw
