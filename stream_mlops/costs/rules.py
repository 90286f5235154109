"""Cost windows, budgets and spend spikes (pure: values and a clock in, numbers and
decisions out).

Costs are integers of pico-dollars in :class:`~stream_mlops.stats.rings.RingSums` (per
group, a ring of minute sums for the last hour, hour sums for the last 8 days and local
day sums for the last 35, built from the same rows and hours as ``mlops.cost_tracking``),
so every window equals ``SUM(cost_usd)`` over the same range exactly.

Windows: ``1h`` is rolling by minutes (from the start of the minute 59 minutes before the
current one), ``24h`` and ``7d`` rolling by hours (from the start of the hour 23, resp.
167, hours before the current one); ``day``, ``week`` (ISO, from Monday) and ``month`` are
calendar periods in a time zone, so they are right across DST changes and month ends. They
are summed by UTC hours: in the few zones whose offset is not a whole hour, a period
starts at the UTC hour that contains local midnight.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from stream_mlops.stats.rings import RingSums, day_of_hour, float32_digits, live_sum

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
PERIODS = ("day", "week", "month")
WINDOWS = ("1h", "24h", "7d", *PERIODS)


@lru_cache(maxsize=64)  # every tenant's budget reads the same bounds at the same time
def period_bounds(period: str, now: float, tz: ZoneInfo) -> tuple[float, float]:
    """Start and end (unix seconds) of the calendar ``period`` containing ``now`` in ``tz``.

    Examples
    --------
    >>> tz = ZoneInfo("Europe/Berlin")
    >>> start, end = period_bounds("day", datetime(2026, 3, 29, 12, tzinfo=tz).timestamp(), tz)
    >>> (end - start) / 3600  # the spring-forward day has 23 hours
    23.0
    >>> start, end = period_bounds("month", datetime(2026, 2, 28, 23, tzinfo=tz).timestamp(), tz)
    >>> datetime.fromtimestamp(end, tz).isoformat()
    '2026-03-01T00:00:00+01:00'
    """
    local = datetime.fromtimestamp(now, tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, nxt = day, (day + timedelta(days=1))
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        nxt = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        nxt = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {period!r}")
    # Re-localise: adding days across a DST change keeps the old offset otherwise.
    start = start.replace(tzinfo=None).replace(tzinfo=tz)
    nxt = nxt.replace(tzinfo=None).replace(tzinfo=tz)
    return start.timestamp(), nxt.timestamp()


def window_sums(rings: RingSums, now: float) -> dict[str, I64]:
    """Pico-dollars per group for every window in :data:`WINDOWS`; the calendar periods
    are in the time zone of the rings' days.

    Examples
    --------
    >>> w = RingSums(hours=8 * 24, days=35)
    >>> w.add(np.array([0, 0, 1]), np.array([3600.0 * 100, 3600.0 * 100 + 61, 3600.0 * 90]),
    ...       np.array([5, 7, 11]))
    >>> sums = window_sums(w, 3600.0 * 100 + 120)
    >>> sums["1h"].tolist(), sums["day"].tolist(), sums["month"].tolist()  # Jan 5, 1970
    ([12, 0], [12, 0], [12, 11])
    """
    if not rings.DAYS:
        raise ValueError("calendar windows need a ring of day sums (RingSums(days=35))")
    minute, hour = math.floor(now / 60), math.floor(now / 3600)
    out = {
        "1h": rings.minutes(minute - 59, minute),
        "24h": rings.hours(hour - 23, hour),
        "7d": rings.hours(hour - 167, hour),
    }
    today = day_of_hour(hour, rings.tz)
    for period in PERIODS:
        start, _ = period_bounds(period, now, rings.tz)
        out[period] = rings.days(day_of_hour(math.floor(start / 3600), rings.tz), today)
    return out


@dataclass(frozen=True)
class BudgetReading:
    """Where one tenant stands against one period's budget."""

    period: str
    period_start: float
    period_end: float
    budget_usd: float
    spent_usd: float
    forecast_usd: float
    reached_at: float | None  # when the budget is reached at the current burn rate

    @property
    def utilization(self) -> float:
        return self.spent_usd / self.budget_usd if self.budget_usd > 0 else 0.0


def read_budget(period: str, spent_usd: float, budget_usd: float, now: float,
                tz: ZoneInfo) -> BudgetReading:
    """Spend so far and a linear burn-rate forecast of the period's end.

    Examples
    --------
    >>> tz = ZoneInfo("UTC")
    >>> now = datetime(2026, 11, 8, tzinfo=tz).timestamp()  # 7 of 30 days gone
    >>> r = read_budget("month", 7.0, 20.0, now, tz)
    >>> round(r.forecast_usd, 2), datetime.fromtimestamp(r.reached_at, tz).day
    (30.0, 21)
    """
    start, end = period_bounds(period, now, tz)
    elapsed = max(now - start, 60.0)  # no forecast from the first seconds of a period
    rate = spent_usd / elapsed
    forecast = spent_usd + rate * max(end - now, 0.0)
    reached = None
    if rate > 0:
        reached = start + budget_usd / rate if spent_usd < budget_usd else now
    return BudgetReading(period, start, end, budget_usd, spent_usd, forecast, reached)


@dataclass(frozen=True)
class SpikeRule:
    """When recent spend (or cost per request) is far above its usual level.

    ``factor`` applies to the spend rate of the last ``recent_minutes`` against the
    seasonal baseline; ``min_usd_per_hour`` gates both rules, so $0.001 -> $0.01 never
    pages; ``cpr_factor`` applies to the cost per request against its 7-day median.
    """

    factor: float = 5.0
    min_usd_per_hour: float = 0.25
    recent_minutes: int = 15
    cpr_factor: float = 2.0
    cpr_min_requests: int = 30
    min_history_days: int = 3


@dataclass(frozen=True)
class SpendLevels:
    """Per row (a function): recent spend rate, its baseline, and cost per request."""

    rate_usd_per_hour: F64
    baseline_usd_per_hour: F64  # NaN: not enough history to judge
    # Days the baseline looks back: 7 x weeks for the weekly one, days for the daily one,
    # 0 for the busiest-hour fallback.
    baseline_days: I64
    recent_requests: I64
    recent_cpr_usd: F64  # NaN when too few recent requests
    baseline_cpr_usd: F64  # NaN without enough history


def _masked_median(values: F64, ok: npt.NDArray[np.bool_]) -> F64:
    """Median of each column over the rows where ``ok`` (NaN for an empty column).

    Examples
    --------
    >>> v = np.array([[1.0, 5.0, 7.0], [3.0, 6.0, 8.0], [9.0, 0.0, 9.0]])
    >>> _masked_median(v, np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], bool)).tolist()
    [2.0, 5.0, nan]
    """
    out: F64 = np.full(values.shape[1], np.nan)
    # Only columns with a value: numpy warns once per empty column, thousands a tick.
    cols = ok.any(axis=0)
    if cols.any():
        masked = np.where(ok[:, cols], values[:, cols], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN values among them
            out[cols] = np.nanmedian(masked, axis=0)
    return out


def _first_hour(ring: RingSums, active: npt.NDArray[np.bool_]) -> I64:
    """Per group, the first unix hour in the ring where ``active`` (int64 max: none).

    Examples
    --------
    >>> r = RingSums(hours=4)
    >>> r.add(np.array([0, 1]), np.array([3600.0 * 9, 3600.0 * 10]), np.array([1, 1]))
    >>> r.add(np.array([0]), np.array([3600.0 * 11]), np.array([1]))
    >>> _first_hour(r, r.hour_sums[:2] > 0).tolist(), int(_first_hour(r, r.hour_sums[:2] < 0)[0])
    ([9, 10], 9223372036854775807)
    """
    # The minimum over a small-integer rank of each column's hour (unused columns rank
    # past the last), not over an int64 copy of the ring: 5 -> 3.5 ms a call at 5,000
    # functions, twice a tick.
    width = len(ring.hour_id)
    kind = np.uint16 if width < np.iinfo(np.uint16).max else np.uint32
    order = np.argsort(ring.hour_id, kind="stable")
    rank = np.empty(width, kind)
    rank[order] = np.arange(width, dtype=kind)
    rank[ring.hour_id < 0] = width
    first = np.where(active, rank[None, :], kind(width)).min(axis=1, initial=width)
    out: I64 = np.append(ring.hour_id[order], np.iinfo(np.int64).max)[first]
    return out


def spend_levels(cost: RingSums, requests: RingSums, now: float,
                 rule: SpikeRule = SpikeRule()) -> SpendLevels:
    """Spend rate of the last ``rule.recent_minutes`` per group, against a seasonal,
    robust baseline: the median of the hourly spend at the same hour of the week over the
    last 4 weeks (with at least 2 weeks of history), else at the same hour of the day over
    the last 7 days (with at least ``min_history_days``), else the busiest hour of the last
    day (NaN with less than a day: no spike is judged without history). Cost per
    request compares the recent window (the last hour when the short one has too few
    requests) with the median of the hourly costs per request of the last 7 days.

    Examples
    --------
    >>> c, n = RingSums(), RingSums()
    >>> hours = np.arange(24 * 8, dtype=np.float64) * 3600  # 8 days at $1 per hour
    >>> c.add(np.zeros(len(hours), np.int64), hours, np.full(len(hours), 10**12))
    >>> n.add(np.zeros(len(hours), np.int64), hours, np.full(len(hours), 100))
    >>> now = hours[-1] + 3599.0
    >>> c.add(np.array([0]), np.array([now]), np.array([9 * 10**12]))  # $9 just now
    >>> lv = spend_levels(c, n, now)
    >>> lv.rate_usd_per_hour.tolist(), lv.baseline_usd_per_hour.tolist(), int(lv.baseline_days[0])
    ([36.0], [1.0], 7)
    """
    g = cost.groups
    minute, hour = math.floor(now / 60), math.floor(now / 3600)
    m = rule.recent_minutes
    recent_cost = live_sum(cost.minute_id, cost.minute_sums[:g], minute - m + 1, minute)
    recent_n = live_sum(requests.minute_id, requests.minute_sums[:g], minute - m + 1, minute)
    hour_n = live_sum(requests.minute_id, requests.minute_sums[:g], minute - 59, minute)
    hour_cost = live_sum(cost.minute_id, cost.minute_sums[:g], minute - 59, minute)
    rate = recent_cost / 1e12 * (60 / m)

    # Hour-ring views aligned by absolute hour: column of hour u is u % HOURS. The
    # request ring may be the shorter (a week of costs per request): before it, an hour
    # with spend is an hour with requests.
    width = cost.HOURS
    req_hours = requests.hour_sums[:g] if requests.groups >= g else np.zeros(
        (g, requests.HOURS), np.int64)
    first_hour = np.minimum(_first_hour(requests, req_hours > 0),
                            _first_hour(cost, cost.hour_sums[:g] > 0))

    def hour_values(u: int) -> F64:
        col = u % width
        if cost.hour_id[col] != u:
            return np.zeros(g)
        out: F64 = cost.hour_sums[:g, col].astype(np.float64) / 1e12
        return out

    def same_time(period: int, count: int) -> tuple[F64, I64]:
        """Median over the last ``count`` periods of the spend at this time then (the
        busier of the hour containing it and the hour before, as the window can straddle
        them), over the periods after the group's first request."""
        samples, usable = [], []
        for d in range(1, count + 1):
            h = math.floor((now - d * period) / 3600)
            samples.append(np.maximum(hour_values(h), hour_values(h - 1)))
            usable.append(first_hour <= h - 1)
        s, ok = np.array(samples).reshape(count, g), np.array(usable).reshape(count, g)
        return _masked_median(s, ok), ok.sum(axis=0).astype(np.int64)

    weekly, weeks = same_time(7 * 86400, 4)
    daily, days = same_time(86400, 7)
    # Without enough history for either: the busiest hour of the last day, so a diurnal
    # peak never looks like a spike of the trough before it.
    prev = np.array([hour_values(hour - k) for k in range(1, 25)]).reshape(24, g)
    fallback = np.where(first_hour <= hour - 24, prev.max(axis=0, initial=0.0), np.nan)
    use_week = weeks >= 2
    use_day = ~use_week & (days >= rule.min_history_days)
    baseline = np.where(use_week, weekly, np.where(use_day, daily, fallback))
    days = np.where(use_week, 7 * weeks, np.where(use_day, days, 0))

    use_hour = recent_n < rule.cpr_min_requests
    n_now = np.where(use_hour, hour_n, recent_n)
    c_now = np.where(use_hour, hour_cost, recent_cost)
    recent_cpr = np.where(n_now >= rule.cpr_min_requests, c_now / np.maximum(n_now, 1) / 1e12,
                          np.nan)
    base_cpr = np.full(g, np.nan)
    week = np.arange(hour - 168, hour)
    cost_col, req_col = week % width, week % requests.HOURS
    held = (cost.hour_id[cost_col] == week) & (requests.hour_id[req_col] == week)
    if g and held.any():
        hc = cost.hour_sums[:g][:, cost_col[held]].astype(np.float64) / 1e12
        hn = req_hours[:, req_col[held]]
        busy = hn >= 10  # hours with enough requests for a meaningful average
        per_request = hc / np.maximum(hn, 1)
        base_cpr = np.where(busy.sum(axis=1) >= 12, _masked_median(per_request.T, busy.T),
                            np.nan)
    # Hour sums may be float32 (seven significant digits): so are the baselines.
    return SpendLevels(rate, float32_digits(baseline), days, n_now.astype(np.int64),
                       recent_cpr.astype(np.float64), float32_digits(base_cpr))
