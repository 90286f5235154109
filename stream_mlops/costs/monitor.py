"""Costs per (tenant, function, model): hourly roll-ups, windows, budgets and their alerts.

A monitor (see :mod:`stream_mlops.core.monitor`): every batch adds to the cost rings and
returns its hourly roll-up, which the pipeline writes with the cursor
(``mlops.cost_tracking``); once a second the budgets, forecasts, spend spikes, unpriced
models and caller-cost mismatches are read and alert on their own lifecycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stream_mlops.core.alerts import AlertChange, AlertKey, Episodes, Severity, alert_change
from stream_mlops.core.batch import Batch
from stream_mlops.core.families import SeriesFamily, cached_texts
from stream_mlops.core.monitor import Job, MetricsBuilder, Monitor, Observed, Store, Write
from stream_mlops.core.rows import OpenAlertRow, ThresholdRow
from stream_mlops.core.series import GroupKey, SeriesIndex
from stream_mlops.costs.pricing import PriceBook, price_book
from stream_mlops.costs.rules import (
    PERIODS,
    BudgetReading,
    SpendLevels,
    SpikeRule,
    read_budget,
    spend_levels,
    window_sums,
)
from stream_mlops.stats.rings import (
    REQUESTS_PER_FUNCTION,
    RequestCounts,
    RingSums,
    exact_grouped_sum,
    live_sum,
)

WINDOW_LABELS = ("tenant", "function", "model")

if TYPE_CHECKING:
    from stream_mlops.settings import Settings

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
BUDGET_METRICS = {"daily_budget_usd": "day", "weekly_budget_usd": "week",
                  "monthly_budget_usd": "month"}
PERIOD_WORD = {"day": "daily", "week": "weekly", "month": "monthly"}
FN_HOURS = 4 * 7 * 24 + 24


def spend_ring() -> RingSums:
    """Spend (pico-dollars) per function, for spikes and cost per request: hourly over
    the four weeks of the weekly seasonal baseline and the hour before them. Closed
    hours are float32 (their baselines need no more than seven digits; int64 was 3 kB of
    each function's state). The requests per function are the series index's
    (:class:`~stream_mlops.stats.rings.RequestCounts`, a week: the cost per request's
    baseline), shared with the drift monitor."""
    return RingSums(hours=FN_HOURS, hour_dtype=np.float32)


@dataclass(frozen=True)
class HourlyCostRow:
    """An hour of mlops.cost_tracking (``recent_hourly_costs``)."""

    tenant_id: str
    function_name: str
    model: str
    hour: int  # unix hours
    cost_pico: int
    requests: int


@dataclass(frozen=True)
class MinuteCostRow:
    """A minute of one series' consumed rows (``recent_minute_costs``)."""

    key: str  # tenant, function, model and variant joined by KEY_SEPARATOR
    minute: int  # unix minutes
    cost_pico: int
    requests: int


@dataclass
class CostTracker(Monitor):
    name = "costs"
    budgets: dict[str, float] = field(
        default_factory=lambda: {"day": 1.0, "week": 5.0, "month": 20.0})
    timezone: str = "UTC"
    warn_levels: tuple[float, ...] = (0.5, 0.8, 1.0)
    min_elapsed_fraction: float = 0.1  # no forecast from the first tenth of a period
    spike: SpikeRule = field(default_factory=SpikeRule)
    # Relative difference between a caller's cost and the price table's that is reported.
    mismatch_tolerance: float = 0.01
    prices: PriceBook = field(default_factory=PriceBook)

    MISMATCH_MIN_REQUESTS = 5  # a stale price shows on every request; one odd row is noise
    MISMATCH_FLOOR_PICO = 10**6  # differences below a micro-dollar are rounding
    UNPRICED_QUIET_SECONDS = 86400.0  # an unpriced-model alert resolves after a quiet day

    @classmethod
    def from_settings(cls, s: Settings) -> CostTracker:
        return cls(budgets={"day": s.daily_cost_threshold, "week": s.weekly_cost_threshold,
                            "month": s.monthly_cost_threshold},
                   timezone=s.cost_timezone,
                   spike=SpikeRule(factor=s.cost_spike_factor,
                                   min_usd_per_hour=s.cost_spike_min_usd_per_hour,
                                   cpr_factor=s.cost_per_request_factor),
                   mismatch_tolerance=s.cost_mismatch_tolerance)

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.timezone)
        self.index = SeriesIndex()
        # Pico-dollars per model group: hours for the rolling windows (7 days) and the
        # model mix, days for the calendar periods (a month).
        self.windows = RingSums(hours=8 * 24, days=35, tz=self.tz)
        self.fn_cost = spend_ring()
        # (tenant, model) -> [mismatched, checked, caller pico, table pico, first, last]
        self.mismatch: dict[tuple[str, str], list[float]] = {}
        self._texts: dict[tuple[str, ...], str] = {}  # group -> its label text on /metrics
        self.levels: SpendLevels | None = None
        self.overrides: dict[tuple[str, str | None], dict[str, float]] = {}
        self.episodes = Episodes()
        # (tenant, model) -> [requests without a price, first and last seen]
        self.unpriced: dict[tuple[str, str], list[float]] = {}

    # -- state ------------------------------------------------------------------------
    def restore(self, store: Store) -> None:
        """Windows from the hourly roll-ups (written with the cursor, so exactly what was
        consumed) and the last hour's consumed rows; open alerts from mlops.alerts."""
        index = self.index
        self.configure(store)
        hours = store.rows("recent_hourly_costs", HourlyCostRow)
        if hours:
            self.load(np.array([index.group_id(r.tenant_id, r.function_name, r.model)
                                for r in hours], np.int64),
                      np.array([r.hour for r in hours], np.int64),
                      np.array([r.cost_pico for r in hours], np.int64),
                      np.array([r.requests for r in hours], np.int64), minutes=False)
        minutes = store.rows("recent_minute_costs", MinuteCostRow)
        if minutes:
            series = index.series_of([r.key for r in minutes])
            self.load(index.group[series], np.array([r.minute for r in minutes], np.int64),
                      np.array([r.cost_pico for r in minutes], np.int64),
                      np.array([r.requests for r in minutes], np.int64), minutes=True)
        self.restore_open([AlertKey(r.tenant_id, r.fingerprint) for r in store.rows(
            "open_alerts", OpenAlertRow, type="cost")], store.now)

    @property
    def fn_requests(self) -> RequestCounts:
        """Requests per function (shared with the other monitors of the index)."""
        return self.index.shared(REQUESTS_PER_FUNCTION, RequestCounts)

    def restore_open(self, keys: Iterable[AlertKey], now: float) -> None:
        """Open cost alerts; unpriced-model and price-mismatch ones count as seen now."""
        self.episodes.open = set(keys)
        for key in self.episodes.open:
            fingerprint = key.fingerprint
            if fingerprint.startswith("cost:unpriced:"):
                self.unpriced.setdefault(
                    (key.tenant_id, fingerprint[len("cost:unpriced:"):]), [0, now, now])
            elif fingerprint.startswith("cost:mismatch:"):
                # Counts restart from zero, but the episode stays open for a quiet day,
                # as it would have without the restart.
                n = self.MISMATCH_MIN_REQUESTS
                self.mismatch.setdefault((key.tenant_id, fingerprint[len("cost:mismatch:"):]),
                                         [n, n, 0.0, 0.0, now, now])

    def configure(self, store: Store) -> None:
        """Budgets of mlops.thresholds, and the price table (to check caller-sent costs)."""
        self.set_overrides(store.rows("alert_thresholds", ThresholdRow))
        self.prices = price_book(store)

    def set_overrides(self, rows: Iterable[ThresholdRow]) -> None:
        self.overrides = {}
        for r in rows:
            if r.metric in BUDGET_METRICS:
                self.overrides.setdefault((r.tenant_id, r.function_name), {})[
                    BUDGET_METRICS[r.metric]] = r.value

    def load(self, group: I64, unit: I64, pico: I64, requests: I64, *, minutes: bool) -> None:
        """Restore sums and request counts (of one minute or one hour each)."""
        fn = self.index.group_function[group]
        for windows, g, values in ((self.windows, group, pico), (self.fn_cost, fn, pico)):
            windows.load(g, unit, values, minutes=minutes)
        self.fn_requests.restore(fn, unit, requests, minutes=minutes)

    # -- data -------------------------------------------------------------------------
    def observe(self, batch: Batch) -> Observed:
        """Add a batch; its hourly roll-up is written with the cursor."""
        rows, group = batch.rows, batch.group
        created_at, cost_pico = rows.created_at, rows.cost_pico
        priced = cost_pico >= 0
        fn = self.index.group_function[group]
        self.windows.add(group[priced], created_at[priced], cost_pico[priced])
        self.fn_cost.add(fn[priced], created_at[priced], cost_pico[priced])
        self.fn_requests.count_once(batch.serial, fn, created_at)
        check = rows.caller_cost & priced
        if check.any() and len(self.prices):
            self._check_caller_costs(group, batch, check)
        if not priced.all():
            for g, t in zip(group[~priced].tolist(), created_at[~priced].tolist(), strict=True):
                tenant, _, model = self.index.group_keys[g]
                seen = self.unpriced.setdefault((tenant, model), [0, t, t])
                seen[0] += 1
                seen[2] = max(seen[2], t)
        return Observed(writes=[Write("add_hourly_costs", self._hourly(batch, priced))])

    def _hourly(self, batch: Batch, priced: npt.NDArray[np.bool_]) -> dict[str, Any]:
        """The batch's roll-up per (model group, hour): the arrays of add_hourly_costs."""
        rows, group = batch.rows, batch.group
        hour = (rows.created_at // 3600).astype(np.int64)
        first = int(hour.min()) if len(hour) else 0
        # One integer per (group, hour): a 1-D unique is far cheaper than unique rows.
        combined, slot = np.unique(group * (1 << 20) + (hour - first), return_inverse=True)
        slot = slot.reshape(-1).astype(np.int64)
        n = len(combined)

        def total(values: I64) -> list[int]:
            out = np.zeros(n, np.int64)
            np.add.at(out, slot, values)
            return [int(v) for v in out]

        cost = exact_grouped_sum(slot[priced], rows.cost_pico[priced], n)
        keys = [self.index.group_keys[g] for g in (combined >> 20).tolist()]
        return {
            "tenant": [k[0] for k in keys], "function": [k[1] for k in keys],
            "model": [k[2] for k in keys],
            "hour": ((combined & ((1 << 20) - 1)) + first).tolist(),
            "requests": total(np.ones(len(group), np.int64)),
            "prompt": total(rows.prompt_tokens), "completion": total(rows.completion_tokens),
            "cached": total(rows.cached_tokens), "cost": cost,
            "latency": np.bincount(slot, weights=rows.latency_ms, minlength=n).tolist(),
        }

    def _check_caller_costs(self, group: I64, batch: Batch,
                            check: npt.NDArray[np.bool_]) -> None:
        """Count caller-sent costs that differ from what the price table says."""
        rows, t, cost = batch.rows, batch.rows.created_at, batch.rows.cost_pico
        idx = np.flatnonzero(check)
        keys = [self.index.group_keys[g] for g in group[idx].tolist()]
        expected = self.prices.cost_pico(
            [k[2] for k in keys], [k[0] for k in keys], t[idx],
            prompt=rows.prompt_tokens[idx], completion=rows.completion_tokens[idx],
            cached=rows.cached_tokens[idx], cache_write=rows.cache_write_tokens[idx],
            cache_write_1h=rows.cache_write_1h_tokens[idx])
        known = expected >= 0
        gap = np.abs(cost[idx] - expected)
        off = known & (gap > np.maximum(self.mismatch_tolerance * expected,
                                        self.MISMATCH_FLOOR_PICO))
        # Per group, vectorised (a batch has few groups and many rows).
        g = group[idx][known]
        uniq, inv = np.unique(g, return_inverse=True)
        off_k, t_k = off[known], t[idx][known]
        checked = np.bincount(inv, minlength=len(uniq))
        n_off = np.bincount(inv, weights=off_k, minlength=len(uniq))
        sent = np.bincount(inv, weights=np.where(off_k, cost[idx][known], 0), minlength=len(uniq))
        table = np.bincount(inv, weights=np.where(off_k, expected[known], 0),
                            minlength=len(uniq))
        last = np.full(len(uniq), -np.inf)
        np.maximum.at(last, inv, np.where(off_k, t_k, -np.inf))
        for u, c, o, sc, tc, lt in zip(uniq.tolist(), checked.tolist(), n_off.tolist(),
                                       sent.tolist(), table.tolist(), last.tolist(),
                                       strict=True):
            tenant, _, model = self.index.group_keys[u]
            m = self.mismatch.setdefault((tenant, model), [0, 0, 0.0, 0.0, 0.0, 0.0])
            m[1] += c
            if o:
                m[0] += o
                m[2] += sc
                m[3] += tc
                m[4] = m[4] or lt
                m[5] = max(m[5], lt)

    # -- budgets ----------------------------------------------------------------------
    def _budget(self, tenant: str, function: str | None, period: str) -> float | None:
        own = self.overrides.get((tenant, function), {}).get(period)
        if function is not None:
            return own
        return own if own is not None else self.budgets.get(period)

    def readings(self, now: float, sums: dict[str, I64] | None = None
                 ) -> list[tuple[str, str | None, BudgetReading]]:
        """Every tenant against its budgets, and functions that have budgets of their own
        (``sums``: :func:`window_sums` at ``now``, when the caller has them)."""
        sums = window_sums(self.windows, now) if sums is None else sums
        keys = self.index.group_keys
        tenants, tenant_of = self.index.tenant_names, self.index.group_tenant
        spent: dict[tuple[str, str | None, str], int] = {}
        for period in PERIODS:
            per_tenant = exact_grouped_sum(tenant_of[:len(sums[period])], sums[period],
                                           len(tenants))
            spent.update(((t, None, period), v)
                         for t, v in zip(tenants, per_tenant, strict=True))
        # A function is summed only when it has a budget of its own: at thousands of
        # functions few do, and both the rules and every scrape read this.
        own = {k for k in self.overrides if k[1] is not None}
        for g, (tenant, function, _model) in enumerate(keys if own else ()):
            if (tenant, function) in own:
                for period in PERIODS:
                    pico = int(sums[period][g]) if g < len(sums[period]) else 0
                    scope = (tenant, function, period)
                    spent[scope] = spent.get(scope, 0) + pico
        out: list[tuple[str, str | None, BudgetReading]] = []
        for (who, scope_fn, period), pico in sorted(spent.items(), key=str):
            budget = self._budget(who, scope_fn, period)
            if budget is not None and budget > 0:
                out.append((who, scope_fn, read_budget(period, pico / 1e12, budget, now,
                                                          self.tz)))
        return out

    def evaluate(self, now: float) -> list[AlertChange]:
        """Early warnings (each level at most once per period), forecasts, and resolution
        of alerts whose period is over."""
        changes: list[AlertChange] = []
        wanted: set[AlertKey] = set()
        superseded: set[AlertKey] = set()
        is_open = self.episodes.open.__contains__
        for tenant, function, r in self.readings(now):
            scope = f"cost:{function or '*'}:{r.period}:" \
                    f"{datetime.fromtimestamp(r.period_start, self.tz):%Y-%m-%d}"
            crossed = sorted(level for level in self.warn_levels if r.utilization >= level)
            if crossed:
                # One episode per budget and period, at the highest level crossed: spend
                # that jumps past several levels pages once, and a higher level closes
                # the lower one's episode without a message.
                key = AlertKey(tenant, f"{scope}:budget:{round(crossed[-1] * 100)}")
                wanted.add(key)
                superseded |= {AlertKey(tenant, f"{scope}:budget:{round(level * 100)}")
                               for level in crossed[:-1]}
                if not is_open(key):
                    changes.append(self._budget_alert(key, tenant, function, r, crossed[-1]))
            fkey = AlertKey(tenant, f"{scope}:forecast")
            elapsed = (now - r.period_start) / (r.period_end - r.period_start)
            over = r.forecast_usd >= r.budget_usd and r.utilization < 1.0
            if elapsed >= self.min_elapsed_fraction and (
                    over or (is_open(fkey) and r.forecast_usd >= 0.9 * r.budget_usd)):
                wanted.add(fkey)
                if not is_open(fkey):
                    changes.append(self._forecast_alert(fkey, tenant, function, r))
        for (tenant, model), (count, first, last) in self.unpriced.items():
            if now - last < self.UNPRICED_QUIET_SECONDS:
                key = AlertKey(tenant, f"cost:unpriced:{model}")
                wanted.add(key)
                if not is_open(key):
                    changes.append(_fire(
                        key, "budget", severity="warning",
                        title=f"Model {model} has no price (tenant {tenant})",
                        message=f"{int(count)} request(s) to {model} since {self._when(first)} "
                        "have no price, so their cost is unknown (recorded as such, not as "
                        "$0). Add the model to mlops.model_prices to price new requests.",
                        value=float(count), threshold=0.0))
        changes += self._spikes(now, wanted)
        changes += self._mismatches(now, wanted)
        return self.episodes.settle(wanted, changes, lambda key: alert_change(
            "resolve", key, "cost", rule="budget", notify=None,
            message="Superseded by a higher budget warning.") if key in superseded
            else self._resolved(key, now))

    def _spikes(self, now: float, wanted: set[AlertKey]) -> list[AlertChange]:
        """Hourly spend spikes and cost-per-request jumps per (tenant, function)."""
        if not self.index.function_keys:
            return []
        self.fn_cost.grow(len(self.index.function_keys))
        self.fn_requests.grow(len(self.index.function_keys))
        self.levels = lv = spend_levels(self.fn_cost, self.fn_requests, now, self.spike)
        rule, out, is_open = self.spike, [], self.episodes.open.__contains__
        keys = self.index.function_keys
        # Below the spend gate (or without history) a function is never paged for either
        # rule: only those above it are read one at a time.
        gate = ~(lv.rate_usd_per_hour < rule.min_usd_per_hour) & np.isfinite(
            lv.baseline_usd_per_hour)
        for f in np.flatnonzero(gate[:len(keys)]).tolist():
            tenant, function = keys[f]
            rate, base = float(lv.rate_usd_per_hour[f]), float(lv.baseline_usd_per_hour[f])
            key = AlertKey(tenant, f"cost:spike:{function}")
            floor = rule.min_usd_per_hour / rule.factor
            ratio = rate / max(base, floor)
            # Fires at `factor`, resolves under half of it: no flapping at the edge.
            if ratio >= rule.factor or (is_open(key) and ratio >= rule.factor / 2):
                wanted.add(key)
                if not is_open(key):
                    span = int(lv.baseline_days[f])
                    usual = (f"at this hour of the week (median of the last {span // 7} weeks)"
                             if span >= 14 else
                             f"at this time of day (median of the last {span} days)" if span
                             else "(its busiest hour of the last day)")
                    out.append(_fire(
                        key, "cost_spike", severity="critical",
                        title=f"Cost spike in {function}: {ratio:.1f}x usual (tenant {tenant})",
                        message=f"{function} is spending ${rate:,.2f}/hour over the last "
                        f"{rule.recent_minutes} minutes, {ratio:.1f}x its usual "
                        f"${base:,.2f}/hour {usual}; the rule is {rule.factor:g}x and at "
                        f"least ${rule.min_usd_per_hour:,.2f}/hour.",
                        value=ratio, threshold=rule.factor, function=function))
            now_cpr, base_cpr = float(lv.recent_cpr_usd[f]), float(lv.baseline_cpr_usd[f])
            ckey = AlertKey(tenant, f"cost:per_request:{function}")
            if np.isfinite(now_cpr) and np.isfinite(base_cpr) and base_cpr > 0:
                jump = now_cpr / base_cpr
                if jump >= rule.cpr_factor or (is_open(ckey) and jump >= rule.cpr_factor / 2
                                               and jump > 1.25):
                    wanted.add(ckey)
                    if not is_open(ckey):
                        out.append(_fire(
                            ckey, "cost_per_request", severity="warning",
                            title=f"Cost per request of {function} up {jump:.1f}x "
                            f"(tenant {tenant})",
                            message=f"{function} costs ${now_cpr:.6f} per request over its "
                            f"last {int(lv.recent_requests[f])} requests against a 7-day "
                            f"median of ${base_cpr:.6f} ({jump:.1f}x; rule "
                            f"{rule.cpr_factor:g}x). {self._mix_shift(tenant, function, now)}",
                            value=jump, threshold=rule.cpr_factor, function=function))
        return out

    def _mix_shift(self, tenant: str, function: str, now: float) -> str:
        """Which model's share of the function's spend grew most: a switch to a pricier
        model reads differently from longer prompts on the same one."""
        minute, hour = int(now // 60), int(now // 3600)
        groups = [g for g, k in enumerate(self.index.group_keys)
                  if k[0] == tenant and k[1] == function and g < self.windows.groups]
        if not groups:
            return ""
        w = self.windows
        rows = np.array(groups)
        recent = live_sum(w.minute_id, w.minute_sums[rows],
                          minute - self.spike.recent_minutes + 1, minute).astype(np.float64)
        week = live_sum(w.hour_id, w.hour_sums[rows], hour - 168, hour - 1).astype(np.float64)
        if recent.sum() <= 0 or week.sum() <= 0:
            return ""
        share_now, share_week = recent / recent.sum(), week / week.sum()
        top = int(np.argmax(share_now - share_week))
        model = self.index.group_keys[groups[top]][2]
        if share_now[top] - share_week[top] >= 0.2:
            return (f"{model} now makes {share_now[top]:.0%} of its spend "
                    f"(was {share_week[top]:.0%}): a switch to a pricier model?")
        return "The model mix is unchanged: longer prompts or outputs?"

    def _mismatches(self, now: float, wanted: set[AlertKey]) -> list[AlertChange]:
        out = []
        for (tenant, model), (n_off, checked, sent, table, first, last) in self.mismatch.items():
            if n_off < self.MISMATCH_MIN_REQUESTS or now - last >= self.UNPRICED_QUIET_SECONDS:
                continue
            key = AlertKey(tenant, f"cost:mismatch:{model}")
            wanted.add(key)
            if key not in self.episodes.open:
                out.append(_fire(
                    key, "cost_mismatch", severity="warning",
                    title=f"Caller-sent costs for {model} disagree with the price table "
                    f"(tenant {tenant})",
                    message=f"{int(n_off)} of {int(checked)} requests to {model} since "
                    f"{self._when(first)} were sent with a cost more than "
                    f"{self.mismatch_tolerance:.0%} off the price table: "
                    f"${sent / n_off / 1e12:.6f} per request sent against "
                    f"${table / n_off / 1e12:.6f} from mlops.model_prices. A hard-coded price "
                    "in the caller is stale, or the table is: fix the one that is wrong "
                    "(`stream-mlops prices import`).",
                    value=float(n_off), threshold=float(self.MISMATCH_MIN_REQUESTS)))
        return out

    def _when(self, t: float) -> str:
        return f"{datetime.fromtimestamp(t, self.tz):%b %d %H:%M %Z}"

    def _budget_alert(self, key: AlertKey, tenant: str, function: str | None, r: BudgetReading,
                      level: float) -> AlertChange:
        who = f" of {function}" if function else ""
        title = f"{PERIOD_WORD[r.period].capitalize()} budget{who} {level:.0%} used " \
                f"(tenant {tenant})"
        message = (f"${r.spent_usd:,.2f} of the ${r.budget_usd:,.2f} {PERIOD_WORD[r.period]} "
                   f"budget{who} is spent ({r.utilization:.0%}); at this rate the "
                   f"{r.period} ends at ${r.forecast_usd:,.2f}.")
        return _fire(key, "budget", severity="critical" if level >= 1 else "warning",
                     title=title, message=message, value=r.utilization, threshold=level,
                     function=function)

    def _forecast_alert(self, key: AlertKey, tenant: str, function: str | None,
                        r: BudgetReading) -> AlertChange:
        who = f" of {function}" if function else ""
        when = datetime.fromtimestamp(r.reached_at or r.period_end, self.tz)
        title = f"{PERIOD_WORD[r.period].capitalize()} budget{who} will be exceeded " \
                f"(tenant {tenant})"
        message = (f"At this rate the {PERIOD_WORD[r.period]} budget{who} of "
                   f"${r.budget_usd:,.2f} is reached on {when:%b %d} at {when:%H:%M %Z} "
                   f"(${r.spent_usd:,.2f} spent so far; ${r.forecast_usd:,.2f} forecast "
                   f"for the {r.period}).")
        return _fire(key, "budget", severity="warning", title=title, message=message,
                     value=r.forecast_usd, threshold=r.budget_usd, function=function)

    def _resolved(self, key: AlertKey, now: float) -> AlertChange:
        fp = key.fingerprint
        why = ("No request without a price for a day" if ":unpriced:" in fp else
               "No caller-sent cost off the price table for a day" if ":mismatch:" in fp else
               "Spend is back near its usual level" if ":spike:" in fp else
               "Cost per request is back near its usual level" if ":per_request:" in fp else
               "The period is over or the forecast is back under budget")
        return alert_change("resolve", key, "cost", rule="budget",
                            message=f"{why} ({self._when(now)}).")

    # -- budgets before the call ------------------------------------------------------
    BUDGET_STATUS_EVERY_SECONDS = 5.0

    def jobs(self) -> Sequence[Job]:
        return (Job("budgets", self.BUDGET_STATUS_EVERY_SECONDS, self.write_budget_status),)

    def budget_rows(self, now: float) -> list[dict[str, Any]]:
        """Every budget and its spend, as mlops.budget_status holds them."""
        return [{"tenant_id": tenant, "function_name": function or "", "period": r.period,
                 "period_start": r.period_start, "period_end": r.period_end,
                 "budget_usd": r.budget_usd, "spent_usd": r.spent_usd}
                for tenant, function, r in self.readings(now)]

    def write_budget_status(self, store: Store) -> list[AlertChange]:
        """Where every budget stands, for ``mlops.budget_remaining`` (callers' checks)."""
        store.execute("write_budget_status", status={"rows": self.budget_rows(store.now)})
        return []

    # -- metrics ----------------------------------------------------------------------
    def window_usd(self, now: float, sums: dict[str, I64] | None = None
                   ) -> tuple[list[GroupKey], dict[str, F64]]:
        """Every model group and its spend (USD) per window of :data:`WINDOWS`."""
        keys = list(self.index.group_keys)
        sums = window_sums(self.windows, now) if sums is None else sums
        # Groups that never had a priced row have no sums yet.
        return keys, {w: np.pad(s, (0, len(keys) - len(s))) / 1e12 for w, s in sums.items()}

    def metrics(self, now: float) -> MetricsBuilder:
        # Under the state lock (a scrape): the windows are summed once for both.
        sums = window_sums(self.windows, now)
        keys, windows = self.window_usd(now, sums)
        budgets = self.readings(now, sums)
        # Each reading replaces the levels whole, so a reference is a snapshot, written
        # after the lock.
        levels = self.levels
        functions = self.index.function_keys[:0 if levels is None
                                             else len(levels.rate_usd_per_hour)]
        mismatch = [(k, v[0], v[1]) for k, v in self.mismatch.items()]
        return lambda: (*_window_families(keys, cached_texts(self._texts, WINDOW_LABELS, keys),
                                          windows, budgets),
                        *_spend_families(levels, functions,
                                         self.index.function_texts(functions), mismatch))


SPEND_FAMILIES = (
    ("mlops_cost_rate_usd_per_hour", "Spend rate over the last 15 minutes."),
    ("mlops_cost_baseline_usd_per_hour",
     "Seasonal baseline of the spike rule (absent without history)."),
    ("mlops_cost_per_request_usd", "Recent cost per request (absent with too few requests)."),
    ("mlops_cost_per_request_baseline_usd", "7-day median of the hourly cost per request."),
)


def _fire(key: AlertKey, rule: str, *, severity: Severity, title: str, message: str,
          value: float, threshold: float, function: str | None = None) -> AlertChange:
    return alert_change("fire", key, "cost", rule=rule, severity=severity, title=title,
                        message=message, value=value, threshold=threshold, function=function)


def _window_families(keys: Sequence[GroupKey], texts: Sequence[str], windows: dict[str, F64],
                     budgets: Sequence[tuple[str, str | None, BudgetReading]],
                     ) -> Iterator[Metric]:
    name = "mlops_cost_window_usd"
    win = SeriesFamily(
        name, "Cost in US dollars over rolling (1h, 24h, 7d) and calendar (day, week, "
        "month; COST_TIMEZONE) windows.", "gauge", label_names=WINDOW_LABELS, keys=keys,
        texts=texts, columns=[(name, (("window", w),)) for w in windows],
        values=list(windows.values()))
    labels = ["tenant", "function", "period"]
    budget = GaugeMetricFamily("mlops_budget_usd", "Budget of the period.", labels=labels)
    used = GaugeMetricFamily("mlops_budget_utilization_ratio",
                             "Share of the period's budget spent.", labels=labels)
    forecast = GaugeMetricFamily("mlops_cost_forecast_usd",
                                 "End-of-period spend at the current burn rate.",
                                 labels=labels)
    for who, scope_fn, r in budgets:
        lv = [who, scope_fn or "", r.period]
        budget.add_metric(lv, r.budget_usd)
        used.add_metric(lv, r.utilization)
        forecast.add_metric(lv, r.forecast_usd)
    yield from (win, budget, used, forecast)


def _spend_families(lv: SpendLevels | None, keys: Sequence[tuple[str, str]],
                    texts: Sequence[str],
                    mismatch: Sequence[tuple[tuple[str, str], float, float]],
                    ) -> Iterator[Metric]:
    values = ((lv.rate_usd_per_hour, lv.baseline_usd_per_hour, lv.recent_cpr_usd,
               lv.baseline_cpr_usd) if lv is not None else (np.zeros(0),) * 4)
    for (name, doc), v in zip(SPEND_FAMILIES, values, strict=True):
        # The rate is always there (NaN written as such); the others are absent at NaN.
        yield SeriesFamily(name, doc, "gauge", label_names=("tenant", "function"), keys=keys,
                           texts=texts, columns=[(name, ())], values=[v],
                           nan_is_absent=name != "mlops_cost_rate_usd_per_hour")
    off = CounterMetricFamily(
        "mlops_cost_mismatch_requests",
        "Caller-sent costs further than COST_MISMATCH_TOLERANCE from the price table.",
        labels=["tenant", "model"])
    checked = CounterMetricFamily(
        "mlops_cost_checked_requests",
        "Caller-sent costs checked against the price table.", labels=["tenant", "model"])
    for (tenant, model), n_off, n in mismatch:
        off.add_metric([tenant, model], n_off)
        checked.add_metric([tenant, model], n)
    yield from (off, checked)
