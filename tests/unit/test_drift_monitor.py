"""The processor's drift monitor with the user's reference decisions: a pinned reference
keeps a persistent drift's alert open, an unpinned one learns the new level and resolves,
a relearn request drops the reference and learns only from rows after it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_mlops.core.alerts import AlertChange, AlertKey
from stream_mlops.drift.monitor import (
    _METRIC_COLUMN,
    DriftMonitor,
    DriftRows,
    ReferenceRow,
    evidence_json,
)

KEYS = [("t", "fn")]
T0 = 1_800_000_000.0
HOUR = 3600.0


def rows(latency: np.ndarray[Any, Any], start: float) -> DriftRows:
    n = len(latency)
    return DriftRows(
        function=np.zeros(n, np.int64), created_at=start + np.arange(n, dtype=np.float64),
        latency_ms=latency, query_length=np.full(n, -1.0), confidence=np.full(n, -1.0),
        cost_pico=np.full(n, -1, np.int64), is_error=np.zeros(n, np.bool_),
        error_type=[None] * n, model=np.zeros(n, np.int64))


def monitor() -> DriftMonitor:
    m = DriftMonitor()
    m.index.function_id(*KEYS[0])
    return m


def feed(m: DriftMonitor, latency: np.ndarray[Any, Any], start: float,
         now: float) -> list[AlertChange]:
    m.buffer(rows(latency, start))
    m.flush()
    return m.test(now)[1]


def latency_changes(changes: list[AlertChange]) -> list[tuple[str, str]]:
    return [(c.action, c.message) for c in changes if c.fingerprint == "drift:fn:latency"]


def shifted_run(pinned: bool) -> tuple[DriftMonitor, list[list[tuple[str, str]]]]:
    """3,000 rows at the old level, then 3,000 at twice the latency, then an hour later
    3,000 more at the new level, then another hour of it."""
    rng = np.random.default_rng(7)
    m = monitor()
    if pinned:
        m.set_controls([ReferenceRow("t", "fn", "latency", True, None)])
    base = rng.lognormal(5.0, 0.5, 3000)
    out = [latency_changes(feed(m, base, T0, T0 + 3000))]
    for k in range(1, 4):
        start = T0 + k * 2 * HOUR
        out.append(latency_changes(feed(m, 2 * rng.lognormal(5.0, 0.5, 3000), start,
                                        start + 3000)))
    return m, out


def test_unpinned_reference_learns_the_new_level_and_resolves() -> None:
    _, steps = shifted_run(pinned=False)
    assert steps[0] == []
    (action, message), = steps[1]
    assert action == "fire" and "The detector now learns the new level" in message
    assert steps[2] == [("resolve", "No new drift for an hour: the new level is the "
                                    "reference now.")]
    assert steps[3] == []


def test_pinned_reference_keeps_the_alert_open_while_the_drift_lasts() -> None:
    m, steps = shifted_run(pinned=True)
    assert steps[0] == []
    (action, message), = steps[1]
    assert action == "fire" and "The reference is pinned" in message
    assert steps[2] == steps[3] == []  # confirmed again every time: still open
    assert AlertKey("t", "drift:fn:latency") in m.episodes.open
    assert m.series[0].drifts["latency"] >= 3


def test_relearn_resolves_and_learns_only_from_later_rows() -> None:
    m, _ = shifted_run(pinned=True)
    d = m.series[0].detectors["latency"]
    rng = np.random.default_rng(11)
    at = T0 + 10 * HOUR
    before, after = 2 * rng.lognormal(5.0, 0.5, 500), 2 * rng.lognormal(5.0, 0.5, 1500)
    m.set_controls([ReferenceRow("t", "fn", "latency", True, None),
                    ReferenceRow("t", "fn", "*", False, at)])
    changes = latency_changes(feed(m, np.concatenate([before, after]), at - 500, at + 1500))
    assert len(changes) == 1 and changes[0][0] == "resolve"
    assert "relearned from the requests after 2027-01-15 " in changes[0][1]
    # The reference is the first 1,000 rows at or after the request, and nothing earlier.
    assert np.array_equal(d.reference_sample(), np.sort(after[:1000].astype(np.float32)))
    # Still pinned (the metric's own decision), and applied once: nothing is dropped again.
    assert m.control("t", "fn", "latency").pinned
    again = latency_changes(feed(m, 2 * rng.lognormal(5.0, 0.5, 500), at + 2000, at + 3000))
    assert again == []
    assert np.array_equal(d.reference_sample(), np.sort(after[:1000].astype(np.float32)))


@pytest.mark.parametrize(("own", "every", "want"), [
    (None, None, (False, None)),
    ((True, None), None, (True, None)),
    (None, (True, 5.0), (True, 5.0)),
    ((False, 9.0), (True, 5.0), (True, 9.0)),
])
def test_control_combines_the_metric_and_the_function_wide_decision(
        own: tuple[bool, float | None] | None, every: tuple[bool, float | None] | None,
        want: tuple[bool, float | None]) -> None:
    m = monitor()
    m.set_controls([ReferenceRow("t", "fn", metric, *c)
                    for metric, c in (("latency", own), ("*", every)) if c is not None])
    c = m.control("t", "fn", "latency")
    assert (c.pinned, c.relearn_from) == want
    assert m.control("t", "other", "latency").pinned is False


def cyclic_run(seed: int, *, profile: bool, step_at: int | None = None,
               days: int = 3) -> list[tuple[int, str]]:
    """400 requests an hour whose latency follows the clock (x0.74 to x1.35 over a day,
    a cycle of 9,600 events, ten times the reference): the hours in which a latency drift
    fired, and its message. ``step_at``: latency x1.5 from that hour on."""
    rng = np.random.default_rng(seed)
    m = monitor()
    fired = []
    day0 = T0 - T0 % 86400
    for h in range(days * 24):
        for k in range(6):  # the drift job runs every 10 simulated minutes
            start = day0 + h * HOUR + k * 600
            t = start + np.sort(rng.uniform(0, 600, 67))
            latency = rng.lognormal(5.0, 0.5, len(t)) * np.exp(
                0.3 * np.sin(2 * np.pi * (t - day0) / 86400))
            if step_at is not None and h >= step_at:
                latency *= 1.5
            r = rows(latency, 0.0)
            r.created_at = t
            if profile:
                m.count(r)
            m.buffer(r)
            m.flush()
            fired += [(h, c.message) for c in m.test(start + 600)[1]
                      if c.action == "fire" and c.fingerprint == "drift:fn:latency"]
    return fired


def test_a_daily_cycle_is_not_drift_once_a_day_of_profile_is_known() -> None:
    without = cyclic_run(3, profile=False)
    with_profile = cyclic_run(3, profile=True)
    # The first day is the same either way (no profile yet): the cycle fires.
    assert [h for h, _ in with_profile if h < 24] == [h for h, _ in without if h < 24] != []
    assert len([h for h, _ in without if h >= 24]) >= 10
    assert [h for h, _ in with_profile if h >= 24] == []


def test_a_real_step_still_fires_relative_to_the_hour_of_day() -> None:
    """Latency x1.5 on the fourth day: found in its hour, and the day that straddles it
    does not blur the profile into new alarms (three days of history: a median)."""
    fired = [(h, message) for h, message in cyclic_run(3, profile=True, step_at=80, days=4)
             if h >= 24]
    (hour, message), = fired
    assert hour == 80
    assert message.startswith("latency of fn drifted (") and \
        "(relative to its hour of day on the last days)" in message


def test_values_beyond_float32_neither_break_the_evidence_nor_other_tenants() -> None:
    # A writer can store any query_length >= 0: 1e39 is infinite in float32 and 1e300
    # overflows a float64 mean. Evidence is JSON without NaN or infinities; one tenant's
    # values must not make the drift job fail for every function.
    m = DriftMonitor(reference_size=200)
    m.index.function_id("evil", "fn")
    m.index.function_id("t", "fn")
    rng = np.random.default_rng(3)
    n = 400
    huge = np.where(rng.random(n) < 0.5, 1e39, 1e300)
    for k, start in enumerate((T0, T0 + HOUR)):
        for f, ql in ((0, huge), (1, rng.lognormal(5.0, 0.5, n))):
            r = rows(rng.lognormal(5.0, 0.5, n), start)
            m.buffer(DriftRows(np.full(n, f, np.int64), r.created_at, r.latency_ms, ql,
                               r.confidence, r.cost_pico, r.is_error, r.error_type, r.model))
        m.flush()
        evidence, _ = m.test(start + n + k)
    evidence, _ = m.test(T0 + 3 * HOUR)
    text = evidence_json(evidence)  # raises on an infinity or NaN
    assert {(e.tenant_id, e.metric_name) for e in evidence} >= {
        ("evil", "query_length"), ("t", "query_length")}
    assert "Infinity" not in text and "NaN" not in text


def test_the_gauges_give_each_detector_its_open_alert_level_and_drifts() -> None:
    # A pinned reference keeps the latency alert open; every other metric of the function
    # has a detector without one, and a metric without a detector has no gauge at all.
    m, _ = shifted_run(pinned=True)
    m.index.function_id("t", "quiet")  # a function with no detector yet: no row
    g = m.gauges()
    row = g.keys.index(("t", "fn"))
    s = m.series[0]
    assert AlertKey("t", "drift:fn:latency") in m.episodes.open
    for metric, j in _METRIC_COLUMN.items():
        d = s.detectors.get(metric)
        if d is None:
            assert np.isnan([g.detected[row, j], g.statistic[row, j], g.events[row, j]]).all()
            continue
        assert g.detected[row, j] == float(AlertKey("t", f"drift:fn:{metric}") in m.episodes.open)
        assert g.statistic[row, j] == (0.0 if d.warming_up else float(f"{d.state().level:.4g}"))
        assert g.events[row, j] == s.drifts.get(metric, 0)
    assert g.detected[row, _METRIC_COLUMN["latency"]] == 1.0 and g.events[row, _METRIC_COLUMN[
        "latency"]] >= 1
    assert ("t", "quiet") not in g.keys
