"""Performance alert rules over sliding windows, and the alert lifecycle (pure: no I/O).

Each rule asks whether a function is out of bounds over the last ``window_seconds``:

* error rate above ``error_rate`` (default 5 %),
* p95 latency above ``latency_p95_seconds`` (default 5 s) — equivalently, *more than 5 %
  of requests slower than the threshold*, so it is the same binomial question and needs
  no quantile sketch,
* mean confidence below ``confidence_mean`` (default 0.70).

The rules are evaluated after every batch, i.e. the same hypothesis is looked at over and
over. A point estimate crossing the threshold would page on noise (an error rate that is
truly 4 % exceeds 5 % in a 100-request window about one time in four), so a rule fires
only when a one-sided confidence bound (Wilson for proportions, normal for the mean, at
``z`` = 3.09, i.e. 0.1 %) is beyond the threshold and at least ``min_requests`` are in
the window. It resolves when the point estimate is back on the good side: the gap between
the two is the hysteresis that keeps a metric hovering at the threshold from flapping.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from stream_mlops.core.alerts import SEVERITY_RANK, Action, AlertKey, Notice, Severity

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Rule = Literal["error_rate", "latency_p95", "confidence_mean"]
RULES: tuple[Rule, ...] = ("error_rate", "latency_p95", "confidence_mean")
# Up to this many groups, evaluate() reads every one: sorting out the breached and open
# ones costs more than it saves when a few groups are all breached.
FEW_GROUPS = 64


@dataclass(frozen=True)
class AlertThresholds:
    error_rate: float = 0.05
    latency_p95_seconds: float = 5.0
    confidence_mean: float = 0.70
    min_requests: int = 50


def wilson_bounds(k: F64 | I64, n: F64 | I64, z: float) -> tuple[F64, F64]:
    """Wilson score interval for a binomial proportion, elementwise.

    Parameters
    ----------
    k, n : array_like
        Successes and trials (``n`` may be 0: the interval is then [0, 1]).
    z : float
        Normal quantile; 3.09 makes each side a 0.1 % bound.

    Returns
    -------
    lower, upper : ndarray

    Examples
    --------
    >>> lo, hi = wilson_bounds(np.array([5, 200]), np.array([100, 1000]), 1.96)
    >>> np.round(lo, 4).tolist(), np.round(hi, 4).tolist()
    ([0.0215, 0.1764], [0.1118, 0.2259])
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 1.0)
    p = k / safe
    denom = 1 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / denom
    lower = np.where(n > 0, np.clip(centre - half, 0, 1), 0.0)
    upper = np.where(n > 0, np.clip(centre + half, 0, 1), 1.0)
    return lower, upper


class Windows:
    """Per-group sliding-window sums in a ring of ``slot_seconds`` time slots.

    Memory is ``groups x slots``; a slot is reused when its time comes round again.

    Examples
    --------
    >>> w = Windows(window_seconds=10, slot_seconds=5)
    >>> w.add(np.array([0, 0, 1]), np.array([100.0, 101.0, 107.0]),
    ...       errors=np.array([1, 0, 0]), slow=np.array([0, 0, 1]),
    ...       confidence=np.array([0.5, -1.0, 0.9]))
    >>> w.totals(now=108.0)["n"].tolist(), w.totals(now=112.0)["n"].tolist()
    ([2.0, 1.0], [0.0, 1.0])
    """

    FIELDS = ("n", "errors", "slow", "conf_n", "conf_sum", "conf_sq")

    def __init__(self, window_seconds: float = 60.0, slot_seconds: float = 5.0) -> None:
        if window_seconds <= 0 or slot_seconds <= 0 or slot_seconds > window_seconds:
            raise ValueError("need 0 < slot_seconds <= window_seconds")
        self.slot_seconds = slot_seconds
        self.slots = math.ceil(window_seconds / slot_seconds)
        self.slot_id = np.full((0, self.slots), -1, np.int64)
        self.sums = {f: np.zeros((0, self.slots)) for f in self.FIELDS}

    def grow(self, groups: int) -> None:
        """Room for ``groups`` groups (a group without rows yet reads as empty)."""
        extra = groups - self.slot_id.shape[0]
        if extra > 0:
            self.slot_id = np.vstack([self.slot_id, np.full((extra, self.slots), -1, np.int64)])
            for f in self.FIELDS:
                self.sums[f] = np.vstack([self.sums[f], np.zeros((extra, self.slots))])

    def add(self, group: I64, t: F64, *, errors: I64, slow: I64, confidence: F64) -> None:
        """Add rows (``confidence`` < 0 means none) at event times ``t`` (unix seconds)."""
        if not len(group):
            return
        self.grow(int(group.max()) + 1)
        sid = np.floor(t / self.slot_seconds).astype(np.int64)
        col = sid % self.slots
        # A slot that still holds an older time is emptied before reuse; rows older than
        # what a slot holds now are too old for any window and are skipped.
        current = self.slot_id[group, col]
        newer = sid > current
        if newer.any():
            g, c = group[newer], col[newer]
            for f in self.FIELDS:
                self.sums[f][g, c] = 0.0
            np.maximum.at(self.slot_id, (g, c), sid[newer])
        keep = sid == self.slot_id[group, col]
        g, c = group[keep], col[keep]
        has_conf = confidence[keep] >= 0
        conf = np.where(has_conf, confidence[keep], 0.0)
        for f, values in (("n", np.ones(len(g))), ("errors", errors[keep]),
                          ("slow", slow[keep]), ("conf_n", has_conf), ("conf_sum", conf),
                          ("conf_sq", conf * conf)):
            np.add.at(self.sums[f], (g, c), values)

    def totals(self, now: float) -> dict[str, F64]:
        """Sums over the slots inside the window ending at ``now``, per group."""
        newest = math.floor(now / self.slot_seconds)
        live = (self.slot_id > newest - self.slots) & (self.slot_id <= newest)
        return {f: np.where(live, s, 0.0).sum(axis=1) for f, s in self.sums.items()}


@dataclass(frozen=True)
class Verdict:
    """One rule's reading for one group: ``breach`` True (fire), False (clear) or None
    (not enough evidence either way: keep the current state)."""

    group: int
    rule: Rule
    breach: bool | None
    severity: Severity
    value: float
    bound: float
    threshold: float
    n: int

    def message(self, window_seconds: float, latency_seconds: float) -> str:
        """What the verdict says, for its alert. Written only for the alerts that change:
        a batch reads every function it touched, thousands of them while catching up."""
        span = f"the last {window_seconds:g} s"
        if self.rule == "error_rate":
            return (f"Error rate {self.value:.1%} over {span} ({round(self.value * self.n)} "
                    f"of {self.n} requests; lower bound {self.bound:.1%}) is above "
                    f"{self.threshold:.1%}.")
        if self.rule == "latency_p95":
            return (f"p95 latency is above {latency_seconds:g} s over {span}: "
                    f"{self.value:.1%} of {self.n} requests were slower (lower bound "
                    f"{self.bound:.1%}; at most 5 % may be).")
        return (f"Mean confidence {self.value:.3f} over {span} ({self.n} scored requests; "
                f"upper bound {self.bound:.3f}) is below {self.threshold:.2f}.")


def evaluate(tot: dict[str, F64], groups: Iterable[int], thresholds: list[AlertThresholds],
             z: float = 3.09, *, open_groups: Collection[int] | None = None
             ) -> list[Verdict]:
    """Read every rule for ``groups`` from window totals (see the module docstring).

    ``open_groups``: past :data:`FEW_GROUPS` groups, only those where a rule is breached or
    that are in it get verdicts. The others' could change no alert (a :class:`Lifecycle`
    steps nothing on a verdict that neither breaches nor resolves an open alert), and
    reading thousands of quiet functions a verdict at a time took tens of ms a second
    with the state locked.
    """
    n = tot["n"]
    err_lo, _ = wilson_bounds(tot["errors"], n, z)
    slow_lo, _ = wilson_bounds(tot["slow"], n, z)
    cn = np.maximum(tot["conf_n"], 1.0)
    mean = tot["conf_sum"] / cn
    sd = np.sqrt(np.maximum(tot["conf_sq"] / cn - mean * mean, 0.0))
    mean_hi = mean + z * np.maximum(sd, 1e-9) / np.sqrt(cn)
    groups = list(groups)
    if open_groups is not None and len(groups) > FEW_GROUPS:
        at = np.asarray(groups, np.int64)
        least = np.array([thresholds[g].min_requests for g in groups], np.float64)
        err_th = np.array([thresholds[g].error_rate for g in groups])
        conf_th = np.array([thresholds[g].confidence_mean for g in groups])
        # The breaches of _verdict, all groups at once (n > 0 follows from min_requests
        # >= 1, but is kept as _verdict has it).
        enough = (n[at] > 0) & (n[at] >= least)
        conf_n = tot["conf_n"][at]
        breach = (enough & ((err_lo[at] > err_th) | (slow_lo[at] > 0.05))) | (
            (conf_n > 0) & (conf_n >= least) & (mean_hi[at] < conf_th))
        keep = breach | np.isin(at, np.fromiter(open_groups, np.int64, len(open_groups)))
        groups = at[keep].tolist()
    out = []
    for g in groups:
        th, count = thresholds[g], int(n[g])
        enough_g = count >= th.min_requests
        out.append(_verdict(g, "error_rate", count, enough_g,
                            value=float(tot["errors"][g] / max(count, 1)),
                            bound=float(err_lo[g]), threshold=th.error_rate, above=True))
        out.append(_verdict(g, "latency_p95", count, enough_g,
                            value=float(tot["slow"][g] / max(count, 1)),
                            bound=float(slow_lo[g]), threshold=0.05, above=True))
        conf_count = int(tot["conf_n"][g])
        out.append(_verdict(g, "confidence_mean", conf_count,
                            conf_count >= th.min_requests, value=float(mean[g]),
                            bound=float(mean_hi[g]), threshold=th.confidence_mean,
                            above=False))
    return out


def _verdict(g: int, rule: Rule, n: int, enough: bool, *, value: float, bound: float,
             threshold: float, above: bool) -> Verdict:
    if n == 0:
        breach: bool | None = False  # no traffic in the window: nothing is wrong now
    elif not enough:
        breach = None
    elif above:
        breach = True if bound > threshold else (False if value <= threshold else None)
    else:
        breach = True if bound < threshold else (False if value >= threshold else None)
    far = value >= 2 * threshold if above else value <= threshold - 0.2
    return Verdict(g, rule, breach, "critical" if breach and far else "warning", value,
                   bound, threshold, n)


@dataclass
class OpenAlert:
    key: AlertKey
    severity: Severity
    notified_at: float | None
    updated_at: float


@dataclass(frozen=True)
class Transition:
    """What to do about one alert: ``fire`` (new episode), ``update`` (still firing; new
    numbers), ``resolve``; ``notify`` says whether it warrants a message (new, escalated,
    reminder after the cool-down, resolved)."""

    action: Action
    key: AlertKey
    verdict: Verdict
    notify: Notice | None


@dataclass
class Lifecycle:
    """One firing episode per key; notifications without storms or silence."""

    cooldown_seconds: float = 3600.0
    update_every_seconds: float = 10.0  # fresh numbers on the open row, not every batch
    open: dict[AlertKey, OpenAlert] = field(default_factory=dict)

    def step(self, key: AlertKey, v: Verdict, now: float) -> Transition | None:
        alert = self.open.get(key)
        if v.breach is None:
            return None
        if v.breach and alert is None:
            self.open[key] = OpenAlert(key, v.severity, now, now)
            return Transition("fire", key, v, "firing")
        if v.breach and alert is not None:
            notify: Notice | None = None
            if SEVERITY_RANK[v.severity] > SEVERITY_RANK[alert.severity]:
                notify = "escalated"
            elif alert.notified_at is None or now - alert.notified_at >= self.cooldown_seconds:
                notify = "still firing"
            if notify is None and now - alert.updated_at < self.update_every_seconds:
                return None
            alert.severity = max(alert.severity, v.severity, key=SEVERITY_RANK.__getitem__)
            alert.updated_at = now
            if notify:
                alert.notified_at = now
            return Transition("update", key, v, notify)
        if not v.breach and alert is not None:
            del self.open[key]
            return Transition("resolve", key, v, "resolved")
        return None
