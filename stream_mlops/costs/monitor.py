"""Costs per (tenant, function, model): hourly roll-ups, windows, budgets and their alerts.

Pure like the rest of the processor: the consumer writes the hourly roll-ups in its
per-batch statement and the alert changes through the alert store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from stream_mlops.alerts.performance import AlertChange
from stream_mlops.costs.pricing import PriceBook
from stream_mlops.costs.windows import (
    PERIODS,
    BudgetReading,
    CostWindows,
    SpendLevels,
    SpikeRule,
    live_sum,
    read_budget,
    spend_levels,
)
from stream_mlops.pipeline.totals import F64, I64, exact_grouped_sum

BUDGET_METRICS = {"daily_budget_usd": "day", "weekly_budget_usd": "week",
                  "monthly_budget_usd": "month"}
PERIOD_WORD = {"day": "daily", "week": "weekly", "month": "monthly"}


@dataclass
class CostTracker:
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

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.timezone)
        self.windows = CostWindows()
        # The same per (tenant, function), for spikes and cost per request.
        self.fn_cost = CostWindows()
        self.fn_requests = CostWindows()
        self.functions: dict[tuple[str, str], int] = {}
        self.function_keys: list[tuple[str, str]] = []
        self._group_fn = np.zeros(0, np.int64)
        # (tenant, model) -> [mismatched, checked, caller pico, table pico, first, last]
        self.mismatch: dict[tuple[str, str], list[float]] = {}
        self.levels: SpendLevels | None = None
        self.groups: dict[tuple[str, str, str], int] = {}
        self.group_keys: list[tuple[str, str, str]] = []
        self.overrides: dict[tuple[str, str | None], dict[str, float]] = {}
        self.open: set[str] = set()  # "tenant\x1ffingerprint" of open cost alerts
        self._series_group = np.zeros(0, np.int64)
        # (tenant, model) -> [requests without a price, first and last seen]
        self.unpriced: dict[tuple[str, str], list[float]] = {}

    UNPRICED_QUIET_SECONDS = 86400.0  # an unpriced-model alert resolves after a quiet day

    def restore_open(self, keys: Iterable[str], now: float) -> None:
        """Open cost alerts from mlops.alerts; unpriced-model and price-mismatch ones count
        as seen now."""
        self.open = set(keys)
        for key in self.open:
            tenant, fingerprint = key.split("\x1f", 1)
            if fingerprint.startswith("cost:unpriced:"):
                self.unpriced.setdefault((tenant, fingerprint[len("cost:unpriced:"):]),
                                         [0, now, now])
            elif fingerprint.startswith("cost:mismatch:"):
                # Counts restart from zero, but the episode stays open for a quiet day,
                # as it would have without the restart.
                n = self.MISMATCH_MIN_REQUESTS
                self.mismatch.setdefault((tenant, fingerprint[len("cost:mismatch:"):]),
                                         [n, n, 0.0, 0.0, now, now])

    def set_overrides(self, rows: Iterable[tuple[str, str | None, str, float]]) -> None:
        """Rows of mlops.thresholds (tenant, function or None, metric, value)."""
        self.overrides = {}
        for tenant, function, metric, value in rows:
            if metric in BUDGET_METRICS:
                self.overrides.setdefault((tenant, function), {})[
                    BUDGET_METRICS[metric]] = value

    def group_of(self, tenant: str, function: str, model: str) -> int:
        return self._group((tenant, function, model))

    def _group(self, key: tuple[str, str, str]) -> int:
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = len(self.group_keys)
            self.group_keys.append(key)
            fkey = (key[0], key[1])
            f = self.functions.get(fkey)
            if f is None:
                f = self.functions[fkey] = len(self.function_keys)
                self.function_keys.append(fkey)
            self._group_fn = np.append(self._group_fn, np.int64(f))
        return g

    def load(self, group: I64, unit: I64, pico: I64, requests: I64, *, minutes: bool) -> None:
        """Restore sums and request counts (of one minute or one hour each)."""
        fn = self._group_fn[group]
        for windows, g, values in ((self.windows, group, pico), (self.fn_cost, fn, pico),
                                   (self.fn_requests, fn, requests)):
            windows.load(g, unit, values, minutes=minutes)

    def observe_keys(self, series_keys: Sequence[tuple[str, str, str, str]]) -> None:
        """Learn the (tenant, function, model) group of series added since last time."""
        if len(self._series_group) < len(series_keys):
            extra = [self._group((k[0], k[1], k[2]))
                     for k in series_keys[len(self._series_group):]]
            self._series_group = np.append(self._series_group, np.array(extra, np.int64))

    def function_of(self, series: I64) -> I64:
        """The (tenant, function) index of each row's series."""
        out: I64 = self._group_fn[self._series_group[series]]
        return out

    def series_group(self, series: I64) -> I64:
        out: I64 = self._series_group[series]
        return out

    def observe(self, series_keys: Sequence[tuple[str, str, str, str]], series: I64, *,
                created_at: F64, cost_pico: I64, prompt: I64, completion: I64,
                cached: I64, cache_write: I64 | None = None,
                caller_cost: npt.NDArray[np.bool_] | None = None) -> dict[str, Any]:
        """Add a batch; returns its hourly roll-up as the columns of add_hourly_costs."""
        self.observe_keys(series_keys)
        group = self.series_group(series)
        priced = cost_pico >= 0
        fn = self._group_fn[group]
        ones = np.ones(len(group), np.int64)
        self.windows.add(group[priced], created_at[priced], cost_pico[priced])
        self.fn_cost.add(fn[priced], created_at[priced], cost_pico[priced])
        self.fn_requests.add(fn, created_at, ones)
        if caller_cost is not None and caller_cost.any() and len(self.prices):
            self._check_caller_costs(
                group, created_at, cost_pico, prompt=prompt, completion=completion,
                cached=cached, written=(cache_write if cache_write is not None
                                        else np.zeros(len(group), np.int64)),
                check=caller_cost & priced)
        if not priced.all():
            for g, t in zip(group[~priced].tolist(), created_at[~priced].tolist(), strict=True):
                tenant, _, model = self.group_keys[g]
                seen = self.unpriced.setdefault((tenant, model), [0, t, t])
                seen[0] += 1
                seen[2] = max(seen[2], t)
        hour = (created_at // 3600).astype(np.int64)
        first = int(hour.min()) if len(hour) else 0
        # One integer per (group, hour): a 1-D unique is far cheaper than unique rows.
        combined, slot = np.unique(group * (1 << 20) + (hour - first), return_inverse=True)
        slot = slot.reshape(-1).astype(np.int64)
        n = len(combined)

        def total(values: I64) -> list[int]:
            out = np.zeros(n, np.int64)
            np.add.at(out, slot, values)
            return [int(v) for v in out]

        cost = exact_grouped_sum(slot[priced], cost_pico[priced], n)
        keys = [self.group_keys[g] for g in (combined >> 20).tolist()]
        return {
            "c_tenant": [k[0] for k in keys], "c_function": [k[1] for k in keys],
            "c_model": [k[2] for k in keys],
            "c_hour": ((combined & ((1 << 20) - 1)) + first).tolist(),
            "c_requests": total(np.ones(len(group), np.int64)), "c_prompt": total(prompt),
            "c_completion": total(completion), "c_cached": total(cached), "c_cost": cost,
        }

    def _check_caller_costs(self, group: I64, t: F64, cost: I64, *, prompt: I64,
                            completion: I64, cached: I64, written: I64,
                            check: npt.NDArray[np.bool_]) -> None:
        """Count caller-sent costs that differ from what the price table says."""
        idx = np.flatnonzero(check)
        keys = [self.group_keys[g] for g in group[idx].tolist()]
        expected = self.prices.cost_pico(
            [k[2] for k in keys], [k[0] for k in keys], t[idx], prompt=prompt[idx],
            completion=completion[idx], cached=cached[idx], cache_write=written[idx])
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
            tenant, _, model = self.group_keys[u]
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

    def readings(self, now: float) -> list[tuple[str, str | None, BudgetReading]]:
        """Every tenant against its budgets, and functions that have budgets of their own."""
        sums = self.windows.window_sums(now, self.tz)
        spent: dict[tuple[str, str | None, str], int] = {}
        for g, (tenant, function, _model) in enumerate(self.group_keys):
            for period in PERIODS:
                pico = int(sums[period][g]) if g < len(sums[period]) else 0
                for scope in ((tenant, None, period), (tenant, function, period)):
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
        wanted: set[str] = set()
        superseded: set[str] = set()
        for tenant, function, r in self.readings(now):
            scope = f"{tenant}\x1fcost:{function or '*'}:{r.period}:" \
                    f"{datetime.fromtimestamp(r.period_start, self.tz):%Y-%m-%d}"
            crossed = sorted(level for level in self.warn_levels if r.utilization >= level)
            if crossed:
                # One episode per budget and period, at the highest level crossed: spend
                # that jumps past several levels pages once, and a higher level closes
                # the lower one's episode without a message.
                key = f"{scope}:budget:{round(crossed[-1] * 100)}"
                wanted.add(key)
                superseded |= {f"{scope}:budget:{round(level * 100)}" for level in crossed[:-1]}
                if key not in self.open:
                    changes.append(self._budget_alert(key, tenant, function, r, crossed[-1]))
            fkey = f"{scope}:forecast"
            elapsed = (now - r.period_start) / (r.period_end - r.period_start)
            over = r.forecast_usd >= r.budget_usd and r.utilization < 1.0
            if elapsed >= self.min_elapsed_fraction and (
                    over or (fkey in self.open and r.forecast_usd >= 0.9 * r.budget_usd)):
                wanted.add(fkey)
                if fkey not in self.open:
                    changes.append(self._forecast_alert(fkey, tenant, function, r))
        for (tenant, model), (count, first, last) in self.unpriced.items():
            if now - last < self.UNPRICED_QUIET_SECONDS:
                key = f"{tenant}\x1fcost:unpriced:{model}"
                wanted.add(key)
                if key not in self.open:
                    changes.append(_change(
                        key, "fire", "firing", severity="warning",
                        title=f"Model {model} has no price (tenant {tenant})",
                        message=f"{int(count)} request(s) to {model} since {self._when(first)} "
                        "have no price, so their cost is unknown (recorded as such, not as "
                        "$0). Add the model to mlops.model_prices to price new requests.",
                        value=float(count), threshold=0.0, function=None))
        changes += self._spikes(now, wanted)
        changes += self._mismatches(now, wanted)
        for key in sorted(self.open - wanted):
            changes.append(_change(key, "resolve", None, severity="info", title="",
                                   message="Superseded by a higher budget warning.",
                                   value=0.0, threshold=0.0, function=None)
                           if key in superseded else self._resolved(key, now))
        self.open = (self.open & wanted) | {c_key(c) for c in changes if c.action == "fire"}
        return changes

    def _spikes(self, now: float, wanted: set[str]) -> list[AlertChange]:
        """Hourly spend spikes and cost-per-request jumps per (tenant, function)."""
        if not self.function_keys:
            return []
        self.levels = lv = spend_levels(self.fn_cost, self.fn_requests, now, self.spike)
        rule, out = self.spike, []
        for f, (tenant, function) in enumerate(self.function_keys[: len(lv.rate_usd_per_hour)]):
            rate, base = float(lv.rate_usd_per_hour[f]), float(lv.baseline_usd_per_hour[f])
            if rate < rule.min_usd_per_hour or not np.isfinite(base):
                continue  # below the spend gate (or no history): never a page
            key = f"{tenant}\x1fcost:spike:{function}"
            floor = rule.min_usd_per_hour / rule.factor
            ratio = rate / max(base, floor)
            # Fires at `factor`, resolves under half of it: no flapping at the edge.
            if ratio >= rule.factor or (key in self.open and ratio >= rule.factor / 2):
                wanted.add(key)
                if key not in self.open:
                    span = int(lv.baseline_days[f])
                    usual = (f"at this hour of the week (median of the last {span // 7} weeks)"
                             if span >= 14 else
                             f"at this time of day (median of the last {span} days)" if span
                             else "(its busiest hour of the last day)")
                    out.append(_change(
                        key, "fire", "firing", severity="critical", rule="cost_spike",
                        title=f"Cost spike in {function}: {ratio:.1f}x usual (tenant {tenant})",
                        message=f"{function} is spending ${rate:,.2f}/hour over the last "
                        f"{rule.recent_minutes} minutes, {ratio:.1f}x its usual "
                        f"${base:,.2f}/hour {usual}; the rule is {rule.factor:g}x and at "
                        f"least ${rule.min_usd_per_hour:,.2f}/hour.",
                        value=ratio, threshold=rule.factor, function=function))
            now_cpr, base_cpr = float(lv.recent_cpr_usd[f]), float(lv.baseline_cpr_usd[f])
            ckey = f"{tenant}\x1fcost:per_request:{function}"
            if np.isfinite(now_cpr) and np.isfinite(base_cpr) and base_cpr > 0:
                jump = now_cpr / base_cpr
                if jump >= rule.cpr_factor or (ckey in self.open and jump >= rule.cpr_factor / 2
                                               and jump > 1.25):
                    wanted.add(ckey)
                    if ckey not in self.open:
                        out.append(_change(
                            ckey, "fire", "firing", severity="warning", rule="cost_per_request",
                            title=f"Cost per request of {function} up {jump:.1f}x "
                            f"(tenant {tenant})",
                            message=f"{function} costs ${now_cpr:.6f} per request over its "
                            f"last {int(lv.recent_requests[f])} requests against a 7-day "
                            f"median of ${base_cpr:.6f} ({jump:.1f}x; rule "
                            f"{rule.cpr_factor:g}x). {self._mix_shift(tenant, function, now)}",
                            value=jump, threshold=rule.cpr_factor, function=function))
        return out

    def spend_gauges(self) -> list[tuple[str, str, float, float, float, float]]:
        """Per (tenant, function) at the last evaluation: spend rate, its baseline, cost per
        request and its baseline (NaN where unknown)."""
        lv = self.levels
        if lv is None:
            return []
        return [(t, f, float(lv.rate_usd_per_hour[i]), float(lv.baseline_usd_per_hour[i]),
                 float(lv.recent_cpr_usd[i]), float(lv.baseline_cpr_usd[i]))
                for i, (t, f) in enumerate(self.function_keys[: len(lv.rate_usd_per_hour)])]

    def _mix_shift(self, tenant: str, function: str, now: float) -> str:
        """Which model's share of the function's spend grew most: a switch to a pricier
        model reads differently from longer prompts on the same one."""
        minute, hour = int(now // 60), int(now // 3600)
        groups = [g for g, k in enumerate(self.group_keys) if k[0] == tenant and k[1] == function
                  and g < self.windows.groups]
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
        model = self.group_keys[groups[top]][2]
        if share_now[top] - share_week[top] >= 0.2:
            return (f"{model} now makes {share_now[top]:.0%} of its spend "
                    f"(was {share_week[top]:.0%}): a switch to a pricier model?")
        return "The model mix is unchanged: longer prompts or outputs?"

    def _mismatches(self, now: float, wanted: set[str]) -> list[AlertChange]:
        out = []
        for (tenant, model), (n_off, checked, sent, table, first, last) in self.mismatch.items():
            if n_off < self.MISMATCH_MIN_REQUESTS or now - last >= self.UNPRICED_QUIET_SECONDS:
                continue
            key = f"{tenant}\x1fcost:mismatch:{model}"
            wanted.add(key)
            if key not in self.open:
                out.append(_change(
                    key, "fire", "firing", severity="warning", rule="cost_mismatch",
                    title=f"Caller-sent costs for {model} disagree with the price table "
                    f"(tenant {tenant})",
                    message=f"{int(n_off)} of {int(checked)} requests to {model} since "
                    f"{self._when(first)} were sent with a cost more than "
                    f"{self.mismatch_tolerance:.0%} off the price table: "
                    f"${sent / n_off / 1e12:.6f} per request sent against "
                    f"${table / n_off / 1e12:.6f} from mlops.model_prices. A hard-coded price "
                    "in the caller is stale, or the table is: fix the one that is wrong "
                    "(`stream-mlops prices import`).",
                    value=float(n_off), threshold=float(self.MISMATCH_MIN_REQUESTS),
                    function=None))
        return out

    def _when(self, t: float) -> str:
        return f"{datetime.fromtimestamp(t, self.tz):%b %d %H:%M %Z}"

    def _budget_alert(self, key: str, tenant: str, function: str | None, r: BudgetReading,
                      level: float) -> AlertChange:
        who = f" of {function}" if function else ""
        title = f"{PERIOD_WORD[r.period].capitalize()} budget{who} {level:.0%} used " \
                f"(tenant {tenant})"
        message = (f"${r.spent_usd:,.2f} of the ${r.budget_usd:,.2f} {PERIOD_WORD[r.period]} "
                   f"budget{who} is spent ({r.utilization:.0%}); at this rate the "
                   f"{r.period} ends at ${r.forecast_usd:,.2f}.")
        return _change(key, "fire", "firing", severity="critical" if level >= 1 else "warning",
                       title=title, message=message, value=r.utilization, threshold=level,
                       function=function)

    def _forecast_alert(self, key: str, tenant: str, function: str | None,
                        r: BudgetReading) -> AlertChange:
        who = f" of {function}" if function else ""
        when = datetime.fromtimestamp(r.reached_at or r.period_end, self.tz)
        title = f"{PERIOD_WORD[r.period].capitalize()} budget{who} will be exceeded " \
                f"(tenant {tenant})"
        message = (f"At this rate the {PERIOD_WORD[r.period]} budget{who} of "
                   f"${r.budget_usd:,.2f} is reached on {when:%b %d} at {when:%H:%M %Z} "
                   f"(${r.spent_usd:,.2f} spent so far; ${r.forecast_usd:,.2f} forecast "
                   f"for the {r.period}).")
        return _change(key, "fire", "firing", severity="warning", title=title,
                       message=message, value=r.forecast_usd, threshold=r.budget_usd,
                       function=function)

    def _resolved(self, key: str, now: float) -> AlertChange:
        why = ("No request without a price for a day" if ":unpriced:" in key else
               "No caller-sent cost off the price table for a day" if ":mismatch:" in key else
               "Spend is back near its usual level" if ":spike:" in key else
               "Cost per request is back near its usual level" if ":per_request:" in key else
               "The period is over or the forecast is back under budget")
        return _change(key, "resolve", "resolved", severity="info", title="",
                       message=f"{why} ({self._when(now)}).", value=0.0, threshold=0.0,
                       function=None)

    def window_usd(self, now: float) -> tuple[list[tuple[str, str, str]], dict[str, F64]]:
        sums = self.windows.window_sums(now, self.tz)
        n = len(self.group_keys)  # groups that never had a priced row have no sums yet
        return list(self.group_keys), {
            w: np.pad(s, (0, n - len(s))) / 1e12 for w, s in sums.items()}


def c_key(c: AlertChange) -> str:
    return f"{c.tenant_id}\x1f{c.fingerprint}"


def _change(key: str, action: str, notify: str | None, *, severity: str, title: str, message: str,
            value: float, threshold: float, function: str | None,
            rule: str = "budget") -> AlertChange:
    tenant, fingerprint = key.split("\x1f", 1)
    return AlertChange(action, notify, tenant, function or "", fingerprint, rule,
                       severity, title, message, value, threshold,
                       details="{}", alert_type="cost")
