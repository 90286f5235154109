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

from stream_mlops.perf_alerts import AlertChange
from stream_mlops.stats.costs import PERIODS, BudgetReading, CostWindows, read_budget
from stream_mlops.stats.totals import F64, I64, exact_grouped_sum

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

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.timezone)
        self.windows = CostWindows()
        self.groups: dict[tuple[str, str, str], int] = {}
        self.group_keys: list[tuple[str, str, str]] = []
        self.overrides: dict[tuple[str, str | None], dict[str, float]] = {}
        self.open: set[str] = set()  # "tenant\x1ffingerprint" of open cost alerts
        self._series_group = np.zeros(0, np.int64)
        # (tenant, model) -> [requests without a price, first and last seen]
        self.unpriced: dict[tuple[str, str], list[float]] = {}

    UNPRICED_QUIET_SECONDS = 86400.0  # an unpriced-model alert resolves after a quiet day

    def restore_open(self, keys: Iterable[str], now: float) -> None:
        """Open cost alerts from mlops.alerts; unpriced-model ones count as seen now."""
        self.open = set(keys)
        for key in self.open:
            tenant, fingerprint = key.split("\x1f", 1)
            if fingerprint.startswith("cost:unpriced:"):
                self.unpriced.setdefault((tenant, fingerprint[len("cost:unpriced:"):]),
                                         [0, now, now])

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
        return g

    def observe_keys(self, series_keys: Sequence[tuple[str, str, str, str]]) -> None:
        """Learn the (tenant, function, model) group of series added since last time."""
        if len(self._series_group) < len(series_keys):
            extra = [self._group((k[0], k[1], k[2]))
                     for k in series_keys[len(self._series_group):]]
            self._series_group = np.append(self._series_group, np.array(extra, np.int64))

    def series_group(self, series: I64) -> I64:
        out: I64 = self._series_group[series]
        return out

    def observe(self, series_keys: Sequence[tuple[str, str, str, str]], series: I64, *,
                created_at: F64, cost_pico: I64, prompt: I64, completion: I64,
                cached: I64) -> dict[str, Any]:
        """Add a batch; returns its hourly roll-up as the columns of add_hourly_costs."""
        self.observe_keys(series_keys)
        group = self.series_group(series)
        priced = cost_pico >= 0
        self.windows.add(group[priced], created_at[priced], cost_pico[priced])
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
        """Early warnings (each level once per period), forecasts, and resolution of
        alerts whose period is over."""
        changes: list[AlertChange] = []
        wanted: set[str] = set()
        for tenant, function, r in self.readings(now):
            scope = f"{tenant}\x1fcost:{function or '*'}:{r.period}:" \
                    f"{datetime.fromtimestamp(r.period_start, self.tz):%Y-%m-%d}"
            for level in self.warn_levels:
                if r.utilization >= level:
                    key = f"{scope}:budget:{round(level * 100)}"
                    wanted.add(key)
                    if key not in self.open:
                        changes.append(self._budget_alert(key, tenant, function, r, level))
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
        for key in sorted(self.open - wanted):
            changes.append(self._resolved(key, now))
        self.open = (self.open & wanted) | {c_key(c) for c in changes if c.action == "fire"}
        return changes

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


def _change(key: str, action: str, notify: str, *, severity: str, title: str, message: str,
            value: float, threshold: float, function: str | None) -> AlertChange:
    tenant, fingerprint = key.split("\x1f", 1)
    return AlertChange(action, notify, tenant, function or "", fingerprint, "budget",
                       severity, title, message, value, threshold,
                       details="{}", alert_type="cost")
