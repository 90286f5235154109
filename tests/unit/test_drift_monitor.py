"""The processor's drift monitor with the user's reference decisions: a pinned reference
keeps a persistent drift's alert open, an unpinned one learns the new level and resolves,
a relearn request drops the reference and learns only from rows after it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_mlops.core.alerts import AlertChange, AlertKey
from stream_mlops.drift.monitor import DriftMonitor, DriftRows, ReferenceRow

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
    assert np.array_equal(d.reference_sample(), np.sort(after[:1000]))
    # Still pinned (the metric's own decision), and applied once: nothing is dropped again.
    assert m.control("t", "fn", "latency").pinned
    again = latency_changes(feed(m, 2 * rng.lognormal(5.0, 0.5, 500), at + 2000, at + 3000))
    assert again == [] and np.array_equal(d.reference_sample(), np.sort(after[:1000]))


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
