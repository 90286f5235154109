"""Cost windows, calendar periods and budgets (pure, seeded, exact)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from stream_mlops.core.alerts import AlertKey
from stream_mlops.core.batch import batch_of
from stream_mlops.core.rows import ThresholdRow
from stream_mlops.costs.monitor import CostTracker
from stream_mlops.costs.rules import period_bounds, read_budget, window_sums
from stream_mlops.stats.rings import RingSums, day_of_hour

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def ts(*args: int, tz: ZoneInfo = UTC) -> float:
    parts = (*args, 0, 0, 0, 0, 0)[:6]
    return datetime(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5],
                    tzinfo=tz).timestamp()



@pytest.mark.parametrize(("period", "at", "start", "hours"), [
    ("day", (2026, 10, 25, 12), (2026, 10, 25), 25),  # DST ends: a 25-hour day
    ("day", (2026, 3, 29, 1), (2026, 3, 29), 23),  # DST starts: 23 hours
    ("week", (2026, 3, 29, 12), (2026, 3, 23), 7 * 24 - 1),  # Monday to Monday, over DST
    ("month", (2026, 2, 28, 23), (2026, 2, 1), 28 * 24),
    ("month", (2026, 12, 31, 23), (2026, 12, 1), 31 * 24),
    ("week", (2027, 1, 1, 12), (2026, 12, 28), 7 * 24),  # ISO week across the year end
])
def test_calendar_periods_in_a_time_zone(period: str, at: tuple[int, ...],
                                         start: tuple[int, ...], hours: int) -> None:
    lo, hi = period_bounds(period, ts(*at, tz=BERLIN), BERLIN)
    assert lo == ts(*start, tz=BERLIN)
    assert (hi - lo) / 3600 == hours


def naive(t: np.ndarray, c: np.ndarray, lo: float, hi: float) -> int:
    return int(c[(t >= lo) & (t < hi)].sum())


@pytest.mark.parametrize(("tz", "at"), [
    (UTC, (2026, 11, 26, 13, 37, 12)),
    (BERLIN, (2026, 11, 2, 0, 37, 12)),  # a month and a week that began after DST ended
    (ZoneInfo("Asia/Kolkata"), (2026, 12, 1, 0, 20)),  # +05:30, the first of the month
    (ZoneInfo("America/St_Johns"), (2026, 3, 9, 4, 10)),  # -02:30, a day after DST began
])
def test_windows_equal_naive_sums_exactly(tz: ZoneInfo, at: tuple[int, ...]) -> None:
    # Calendar periods are summed by local days: exact against the rows themselves, from
    # the UTC hour that contains local midnight (where the offset is not whole hours).
    rng = np.random.default_rng(8)
    now = ts(*at)
    t = now - rng.uniform(0, 40 * 86400, 20000)
    c = rng.integers(0, 10**9, 20000)
    g = rng.integers(0, 3, 20000)
    w = RingSums(hours=8 * 24, days=35, tz=tz)
    order = np.argsort(t)  # arrive in time order, in batches
    for chunk in np.array_split(order, 40):
        w.add(g[chunk], t[chunk], c[chunk])
    got = window_sums(w, now)
    minute, hour = now // 60 * 60, now // 3600 * 3600
    for k in range(3):
        m = g == k
        assert got["1h"][k] == naive(t[m], c[m], minute - 59 * 60, now + 1)
        assert got["24h"][k] == naive(t[m], c[m], hour - 23 * 3600, now + 1)
        assert got["7d"][k] == naive(t[m], c[m], hour - 167 * 3600, now + 1)
        for period in ("day", "week", "month"):
            lo, _ = period_bounds(period, now, tz)
            assert got[period][k] == naive(t[m], c[m], lo // 3600 * 3600, now + 1)


def test_day_sums_restored_from_hours_equal_the_live_ones() -> None:
    # After a restart the rings are rebuilt from hourly roll-ups: the day sums must come
    # out as they were when the rows themselves were added.
    rng = np.random.default_rng(9)
    now = ts(2026, 11, 26, 13)
    t = np.sort(now - rng.uniform(0, 34 * 86400, 5000))
    c = rng.integers(0, 10**9, 5000)
    g = rng.integers(0, 2, 5000)
    live = RingSums(hours=8 * 24, days=35, tz=BERLIN)
    live.add(g, t, c)
    hour = (t // 3600).astype(np.int64)
    keys, inv = np.unique(g * 10**6 + hour, return_inverse=True)
    restored = RingSums(hours=8 * 24, days=35, tz=BERLIN)
    restored.load(keys // 10**6, keys % 10**6, np.bincount(inv, weights=c).astype(np.int64),
                  minutes=False)
    assert np.array_equal(window_sums(live, now)["month"], window_sums(restored, now)["month"])
    assert np.array_equal(live.day_sums[:2], restored.day_sums[:2])
    assert np.array_equal(live.hour_sums[:2], restored.hour_sums[:2])


def test_forecast_of_a_linear_burn() -> None:
    start = ts(2026, 11, 1)
    now = ts(2026, 11, 11)  # a third of November
    r = read_budget("month", 10.0, 20.0, now, UTC)
    assert r.forecast_usd == pytest.approx(30.0)
    assert r.utilization == 0.5
    assert r.reached_at == pytest.approx(start + 20 * 86400)  # $1/day reaches $20 on the 21st


def tracker_with(spend_usd: float, at: float, **kw: object) -> CostTracker:
    t = CostTracker(budgets={"day": 10.0, "week": 1e9, "month": 1e9}, **kw)  # type: ignore[arg-type]
    t.observe(batch_of(t.index, [("acme", "summarize", "gpt-4o", "control")], np.array([0]),
                       created_at=np.array([at]), cost_pico=np.array([int(spend_usd * 1e12)]),
                       prompt_tokens=np.array([1]), completion_tokens=np.array([1])))
    return t


def test_early_warnings_fire_once_each_and_resolve_with_the_day() -> None:
    morning = ts(2026, 11, 26, 8)
    t = tracker_with(6.0, morning)  # 60 % of $10 by 8 am: $10 at 13:21
    first = t.evaluate(morning + 60)
    fps = sorted(c.fingerprint for c in first)
    assert fps == ["cost:*:day:2026-11-26:budget:50", "cost:*:day:2026-11-26:forecast"]
    assert all(c.action == "fire" and c.alert_type == "cost" for c in first)
    forecast = next(c for c in first if c.fingerprint.endswith("forecast"))
    assert "At this rate the daily budget of $10.00 is reached on Nov 26 at 13:21 UTC" in \
        forecast.message
    assert t.evaluate(morning + 120) == []  # once per period
    t.observe(batch_of(t.index, [("acme", "summarize", "gpt-4o", "control")], np.array([0]),
                       created_at=np.array([morning + 180]), cost_pico=np.array([3 * 10**12]),
                       prompt_tokens=np.array([1]), completion_tokens=np.array([1])))
    second = t.evaluate(morning + 240)  # 90 %: the 80 % level fires and supersedes 50 %
    assert [(c.action, c.fingerprint, c.notify) for c in second] == [
        ("fire", "cost:*:day:2026-11-26:budget:80", "firing"),
        ("resolve", "cost:*:day:2026-11-26:budget:50", None)]  # closed without a message
    assert t.evaluate(morning + 300) == []
    nxt = t.evaluate(ts(2026, 11, 27, 0, 30))  # the 80 % warning and the forecast
    assert {c.action for c in nxt} == {"resolve"} and len(nxt) == 2


def test_a_jump_past_every_level_pages_once_also_after_a_restart() -> None:
    at = ts(2026, 11, 26, 8)
    t = tracker_with(12.0, at)  # 120 % of $10 in one go
    fired = t.evaluate(at + 60)
    assert [(c.fingerprint, c.severity) for c in fired] == [
        ("cost:*:day:2026-11-26:budget:100", "critical")]
    assert fired[0].title == "Daily budget 100% used (tenant acme)"
    again = tracker_with(12.0, at)  # a restart: the open episode comes back from the table
    again.restore_open([AlertKey("acme", "cost:*:day:2026-11-26:budget:100")], at + 90)
    assert again.evaluate(at + 120) == []


def test_per_function_budget_override() -> None:
    at = ts(2026, 11, 26, 20)
    t = tracker_with(3.0, at)
    t.set_overrides([ThresholdRow("acme", "summarize", "daily_budget_usd", 2.0)])
    fps = sorted(c.fingerprint for c in t.evaluate(at + 60))
    assert "cost:summarize:day:2026-11-26:budget:100" in fps  # $3 of its own $2
    assert "cost:*:day:2026-11-26:budget:50" not in fps  # 30 % of the tenant's $10


def test_an_unpriced_model_is_named_once_and_resolves_after_a_quiet_day() -> None:
    at = ts(2026, 11, 26, 9)
    t = CostTracker()
    for k in range(3):
        t.observe(batch_of(t.index, [("acme", "f", "my-finetune", "control")], np.array([0]),
                           created_at=np.array([at + k]), cost_pico=np.array([-1]),
                           prompt_tokens=np.array([5]), completion_tokens=np.array([1])))
    fired = t.evaluate(at + 10)
    assert [c.fingerprint for c in fired] == ["cost:unpriced:my-finetune"]
    assert fired[0].message.startswith("3 request(s) to my-finetune since Nov 26 09:00 UTC")
    assert t.evaluate(at + 3600) == []
    resolved = t.evaluate(at + 2 + 86400 + 1)
    assert [(c.action, c.fingerprint) for c in resolved] == [
        ("resolve", "cost:unpriced:my-finetune")]


def test_open_unpriced_alert_survives_a_restart() -> None:
    t = CostTracker()
    t.restore_open([AlertKey("acme", "cost:unpriced:x")], now=1000.0)
    assert t.evaluate(1060.0) == []  # still within its quiet day: neither re-fired nor closed


def test_day_lookups_are_per_distinct_hour_however_far_apart() -> None:
    # One tenant's row from 2000 in a batch of today's: the days are looked up for the
    # two hours there are, not for every hour in between (227,000 of them).
    w = RingSums(hours=8 * 24, days=35, tz=BERLIN)
    old, now = ts(2000, 1, 1, 3) // 3600, ts(2026, 12, 6, 12) // 3600
    hours = np.array([now, old, now, now], np.int64)
    day_of_hour.cache_clear()
    days = w.day_of(hours)
    assert day_of_hour.cache_info().misses == 2
    assert days.tolist() == [day_of_hour(int(h), BERLIN) for h in hours.tolist()]
