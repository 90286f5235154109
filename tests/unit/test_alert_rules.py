"""Alert rules and lifecycle on seeded streams (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from stream_mlops.alerts import rules as alerts
from stream_mlops.alerts.performance import PerformanceAlerts
from stream_mlops.alerts.rules import AlertThresholds, Lifecycle, Verdict, Windows, evaluate
from stream_mlops.core.alerts import AlertKey
from stream_mlops.core.batch import batch_of

TH = [AlertThresholds()]
FP = AlertKey("t", "performance:error_rate:f")


def window_of(errors: np.ndarray, latency_s: np.ndarray, confidence: np.ndarray,
              t0: float = 1000.0, rate: float = 50.0) -> Windows:
    w = Windows(60, 5)
    n = len(errors)
    w.add(np.zeros(n, np.int64), t0 + np.arange(n) / rate, errors=errors.astype(np.int64),
          slow=(latency_s > 5.0).astype(np.int64), confidence=confidence)
    return w


def verdicts(w: Windows, now: float) -> dict[str, Verdict]:
    return {v.rule: v for v in evaluate(w.totals(now), [0], TH)}



def test_burst_fires_and_steady_traffic_does_not() -> None:
    rng = np.random.default_rng(11)
    n = 3000  # one minute at 50 requests/s
    calm = window_of(rng.random(n) < 0.02, rng.lognormal(0, 0.5, n), rng.beta(8, 2, n))
    v = verdicts(calm, 1000 + 60)
    assert [v[r].breach for r in alerts.RULES] == [False, False, False]
    burst = window_of(rng.random(n) < 0.20, rng.lognormal(1.8, 0.5, n), rng.beta(3, 3, n))
    v = verdicts(burst, 1000 + 60)
    assert [v[r].breach for r in alerts.RULES] == [True, True, True]
    assert v["error_rate"].severity == "critical"  # 20 % is more than twice 5 %
    assert "Error rate 19.8% over the last 60 s (545 of 2750 requests" in v["error_rate"].message(
        60.0, TH[0].latency_p95_seconds)


def test_low_traffic_never_pages() -> None:
    w = window_of(np.ones(20, bool), np.full(20, 9.0), np.full(20, 0.1))
    assert {v.breach for v in verdicts(w, 1001).values()} == {None}  # 20 < min_requests


def test_window_forgets_old_slots_and_resolves_on_silence() -> None:
    w = window_of(np.ones(100, bool), np.ones(100), np.full(100, 0.9))
    assert verdicts(w, 1002)["error_rate"].breach is True
    v = verdicts(w, 1002 + 61)
    assert v["error_rate"].n == 0 and v["error_rate"].breach is False


def test_a_true_four_percent_does_not_page_over_a_simulated_day() -> None:
    """1,440 one-minute windows at 50 requests/s with a true 4 % error rate: no breach,
    although about a third of them show an error rate above 4 %."""
    rng = np.random.default_rng(2026)
    errors = rng.binomial(3000, 0.04, size=1440)
    tot = {"n": np.full(1440, 3000.0), "errors": errors.astype(float), "slow": np.zeros(1440),
           "conf_n": np.zeros(1440), "conf_sum": np.zeros(1440), "conf_sq": np.zeros(1440)}
    v = [x for x in evaluate(tot, range(1440), TH * 1440) if x.rule == "error_rate"]
    assert sum(x.breach is True for x in v) == 0
    assert sum(x.value > 0.045 for x in v) > 0  # the noise a point estimate would page on


def test_lifecycle_fires_once_updates_sparingly_and_resolves() -> None:
    life = Lifecycle(cooldown_seconds=600, update_every_seconds=10)
    fire = Verdict(0, "error_rate", True, "warning", 0.2, 0.18, 0.05, 1000)
    clear = Verdict(0, "error_rate", False, "warning", 0.03, 0.02, 0.05, 1000)
    unsure = Verdict(0, "error_rate", None, "warning", 0.06, 0.04, 0.05, 1000)
    t = life.step(FP, fire, 0)
    assert t is not None and (t.action, t.notify) == ("fire", "firing")
    assert life.step(FP, fire, 5) is None  # nothing new within update_every
    t = life.step(FP, fire, 11)
    assert t is not None and (t.action, t.notify) == ("update", None)
    crit = Verdict(0, "error_rate", True, "critical", 0.4, 0.35, 0.05, 1000)
    t = life.step(FP, crit, 12)
    assert t is not None and t.notify == "escalated"
    assert life.step(FP, unsure, 13) is None  # hovering: no flapping
    t = life.step(FP, fire, 700)
    assert t is not None and t.notify == "still firing"  # reminder after the cool-down
    t = life.step(FP, clear, 701)
    assert t is not None and (t.action, t.notify) == ("resolve", "resolved")
    assert life.step(FP, clear, 702) is None


def test_windows_validate_their_shape() -> None:
    with pytest.raises(ValueError, match="slot_seconds"):
        Windows(window_seconds=5, slot_seconds=10)


def test_a_series_without_rows_in_the_window_reads_as_empty() -> None:
    """A series the processor knows before any of its rows reach the alert windows (one
    seen only in the cost roll-ups at start-up) must not break the evaluation of all."""
    from stream_mlops.alerts.performance import PerformanceAlerts
    from stream_mlops.core.batch import batch_of

    a = PerformanceAlerts(AlertThresholds())
    keys = [("t", "f", "m", "control"), ("t", "g", "m", "control")]
    seen = a.observe(batch_of(a.index, keys, np.zeros(200, np.int64),
                              created_at=np.full(200, 1000.0), latency_ms=np.full(200, 5.0),
                              is_error=np.ones(200, bool), confidence=np.full(200, 0.9)))
    changes = seen.alerts + a.evaluate(1001.0)
    assert [(c.function_name, c.rule) for c in changes] == [("f", "error_rate")]


def test_reading_only_breached_or_open_groups_leaves_out_only_verdicts_that_change_nothing(
        ) -> None:
    # Seeded totals on both sides of every rule, per-group thresholds, some groups with an
    # open alert: the verdicts kept are exactly those of the groups a rule breaches or
    # that have an open alert, as the one-at-a-time reading gives them.
    rng = np.random.default_rng(5)
    g = 600
    n = rng.integers(0, 200, g).astype(np.float64)
    counts = n.astype(np.int64)
    conf_n = np.floor(n * rng.random(g))
    mu = rng.choice([0.5, 0.62, 0.66, 0.72, 0.9], g)
    tot = {"n": n,
           "errors": rng.binomial(counts, rng.choice([0.01, 0.05, 0.08, 0.3], g)).astype(float),
           "slow": rng.binomial(counts, rng.choice([0.01, 0.06, 0.2], g)).astype(float),
           "conf_n": conf_n, "conf_sum": conf_n * mu, "conf_sq": conf_n * (mu * mu + 0.01)}
    ths = [AlertThresholds(error_rate=float(e), confidence_mean=float(c), min_requests=int(m))
           for e, c, m in zip(rng.choice([0.02, 0.05, 0.1], g), rng.choice([0.6, 0.7], g),
                              rng.integers(1, 80, g), strict=True)]
    opened = set(rng.choice(g, 40, replace=False).tolist())
    every = evaluate(tot, range(g), ths)
    some = evaluate(tot, range(g), ths, open_groups=opened)
    breached = {v.group for v in every if v.breach}
    assert some == [v for v in every if v.group in breached | opened]
    assert len(breached) > 50 and len(some) < len(every) - 600
    assert {v.breach for v in every if v.group not in breached} == {False, None}


@pytest.mark.parametrize("few", [0, 10_000])
def test_the_monitor_fires_and_resolves_the_same_alerts_reading_few_or_all_functions(
        few: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # 100 functions, two of them failing half of their requests: the monitor reads only
    # breached and open functions (few=0) or every one (few=10,000); the alerts are the same.
    monkeypatch.setattr(alerts, "FEW_GROUPS", few)
    m = PerformanceAlerts()
    keys = [("t", f"f{i}", "m", "control") for i in range(100)]
    series = np.repeat(np.arange(100), 60)
    t0 = 1_800_000_000.0
    failing = np.isin(series, [3, 70]) & (np.arange(len(series)) % 2 == 0)
    assert m.observe(batch_of(m.index, keys, series, now=t0 + 1,
                              created_at=t0 + np.linspace(0, 1, len(series)),
                              is_error=failing)).alerts == []  # the rules run on the tick
    fired = m.evaluate(t0 + 1)
    assert sorted((c.action, c.key.fingerprint) for c in fired) == [
        ("fire", "performance:error_rate:f3"), ("fire", "performance:error_rate:f70")]
    assert m.evaluate(t0 + 2) == []  # still firing; nothing new to say yet
    m.observe(batch_of(m.index, keys[:4], np.repeat(np.arange(4), 60), now=t0 + 90,
                       created_at=t0 + 89 + np.linspace(0, 1, 240)))
    assert sorted((c.action, c.key.fingerprint) for c in m.evaluate(t0 + 90)) == [
        ("resolve", "performance:error_rate:f3"),  # back under the threshold
        ("resolve", "performance:error_rate:f70")]  # no traffic in the window: nothing wrong
