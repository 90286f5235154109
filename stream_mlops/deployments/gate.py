"""The rollback gate of a deployment (pure): the new slot against the live one, over the
requests of the same period, with always-valid tests, read as often as one likes.

Per deployment, one :class:`~stream_mlops.stats.sequential.SequentialTest` per metric
(error rate, log latency, confidence), new version as the treatment and the live version as
the control, each at ``alpha / 3`` (Bonferroni over the metrics). They are fed with every
request of the deployment's period and evaluated after every request, and only harm counts
(``treatment_worse``): a better version never rolls back. Because the tests are
anytime-valid, looking after every batch does not inflate the chance of a false rollback
beyond ``alpha`` over the whole deployment (``benchmarks/deployments.py`` measures it
against a fixed-sample test read at every step).

Latency is compared on its logarithm: AI latencies are heavy-tailed, and a regression is
relative (+30 % under any ceiling); the difference of log means is a ratio of geometric
means.

Decisions (:meth:`Gate.decide`), in order:

1. failed health checks (``HEALTH_FAILURES`` in a row) or the new version's error rate above
   the ceiling over at least ``min_samples`` of its requests: **fail**;
2. harm established on any metric: **rollback**, with the numbers;
3. fewer than ``min_samples`` requests of the new version in this step: **hold** ("waiting
   for samples: 40 of 200") -- never a promotion, never a rollback on no evidence;
4. the step younger than ``step_seconds``: **hold**;
5. otherwise the next **step**, after the last one **promote**, and after one more period
   with the new version at 100 % **retire** the old slot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stream_mlops.stats.sequential import Arm, SequentialTest, make_test

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

Outcome = Literal["hold", "step", "promote", "rollback", "fail", "retire"]
METRICS = ("error_rate", "latency", "confidence")
KIND: dict[str, Literal["mean", "proportion"]] = {
    "error_rate": "proportion", "latency": "mean", "confidence": "mean"}
HIGHER_IS_BETTER = {"error_rate": False, "latency": False, "confidence": True}
HEALTH_FAILURES = 3  # failed health checks in a row that fail a deployment
# Burn-in of the tests: the normal approximation is poor on fewer requests per slot.
BURN_IN = 100
# Per-slot sample size the tests' default effect of interest is set for: a deployment
# is judged on hundreds to a few thousand requests of its new version.
EXPECTED_N = 2000


@dataclass(frozen=True)
class Plan:
    """How a deployment shifts: percent steps, and what each step needs before the next."""

    steps: tuple[float, ...] = (10.0, 25.0, 50.0, 100.0)
    min_samples: int = 200
    step_seconds: float = 300.0
    alpha: float = 0.05
    max_error_rate: float = 0.5

    @property
    def metric_alpha(self) -> float:
        return self.alpha / len(METRICS)


@dataclass(frozen=True)
class Decision:
    """What the gate decides at a look: the deployment's next status, step and share."""

    outcome: Outcome
    status: str
    step_index: int
    traffic_percent: float
    message: str

    @property
    def transition(self) -> bool:
        return self.outcome != "hold"


@dataclass
class Gate:
    """One deployment's tests and counts (see the module docstring)."""

    plan: Plan
    tests: dict[str, SequentialTest] = field(default_factory=dict)
    n: list[int] = field(default_factory=lambda: [0, 0])  # requests (live, new), in all
    errors: list[int] = field(default_factory=lambda: [0, 0])
    step_n: list[int] = field(default_factory=lambda: [0, 0])  # since the phase began
    step_errors: list[int] = field(default_factory=lambda: [0, 0])
    latency_sum: list[float] = field(default_factory=lambda: [0.0, 0.0])  # of log(1 + ms)
    phase: str = ""  # "status:step_index" the step counts belong to

    def __post_init__(self) -> None:
        for m in METRICS:
            if m not in self.tests:
                self.tests[m] = make_test(
                    KIND[m], alpha=self.plan.metric_alpha,
                    higher_is_better=HIGHER_IS_BETTER[m],
                    min_samples=min(BURN_IN, self.plan.min_samples), expected_n=EXPECTED_N)

    # -- feeding -------------------------------------------------------------------------
    def observe(self, is_new: B, latency_ms: F64, is_error: B, confidence: F64) -> None:
        """Requests of the period in order; ``confidence`` < 0 where none was sent.

        Examples
        --------
        >>> g = Gate(Plan(min_samples=100))
        >>> rng = np.random.default_rng(7)
        >>> new = rng.random(4000) < 0.5
        >>> err = rng.random(4000) < np.where(new, 0.12, 0.03)
        >>> g.observe(new, rng.lognormal(6, 0.5, 4000), err, np.full(4000, -1.0))
        >>> g.harmed()
        ['error_rate']
        """
        for i, sel in enumerate((~is_new, is_new)):
            if not sel.any():
                continue
            arm: Arm = "treatment" if i else "control"
            errors = is_error[sel]
            log_latency = np.log1p(latency_ms[sel])
            conf = confidence[sel]
            self.tests["error_rate"].update_many(arm, errors.astype(np.float64))
            self.tests["latency"].update_many(arm, log_latency)
            self.tests["confidence"].update_many(arm, conf[conf >= 0])
            k, e = int(sel.sum()), int(errors.sum())
            self.n[i] += k
            self.errors[i] += e
            self.step_n[i] += k
            self.step_errors[i] += e
            self.latency_sum[i] += float(log_latency.sum())

    def enter(self, phase: str) -> None:
        """The deployment is in ``phase`` (status and step): a new one restarts the step
        counts (the tests go on over the whole deployment)."""
        if phase != self.phase:
            self.phase = phase
            self.step_n, self.step_errors = [0, 0], [0, 0]

    # -- reading -------------------------------------------------------------------------
    def harmed(self) -> list[str]:
        return [m for m in METRICS if self.tests[m].decision == "treatment_worse"]

    def p_values(self) -> dict[str, float]:
        return {m: self.tests[m].p_value for m in METRICS}

    def numbers(self) -> dict[str, dict[str, Any]]:
        """Per metric: each slot's value and count, the p-value and the call."""
        out = {}
        for m, t in self.tests.items():
            live, new = t.means
            if m == "latency":  # geometric means, in ms
                live, new = math.expm1(live), math.expm1(new)
            out[m] = {"live": _finite(live), "new": _finite(new), "n_live": t.n[0],
                      "n_new": t.n[1], "p_value": t.p_value, "alpha": t.alpha,
                      "decision": t.decision}
        return out

    def decide(self, status: str, step_index: int, since: float | None, now: float, *,
               health_failures: int = 0, health_error: str = "") -> Decision:
        """The next move of a deployment that is ``status`` at ``step_index``, in this phase
        since ``since`` (unix seconds), looked at at ``now``.

        Examples
        --------
        >>> g = Gate(Plan(steps=(50.0, 100.0), min_samples=100, step_seconds=60))
        >>> g.decide("pending", -1, None, 0).message
        'step 1 of 2: 50 % of units on the new version'
        >>> g.enter("shifting:0")
        >>> g.decide("shifting", 0, 0, 10).message
        'waiting for samples: 0 of 100 on the new version at 50 %'
        """
        p = self.plan
        steps = p.steps
        if status == "pending":
            if health_failures >= HEALTH_FAILURES:
                return self._fail(step_index, f"health check failed {health_failures} "
                                  f"times in a row before any traffic: {health_error}")
            return Decision("step", "shifting", 0, steps[0], _step_text(0, steps))
        share = 100.0 if status == "promoted" else steps[step_index]
        if health_failures >= HEALTH_FAILURES:
            return self._fail(step_index, f"health check failed {health_failures} times in a row: "
                              f"{health_error}")
        if self.n[1] >= p.min_samples and self.errors[1] > p.max_error_rate * self.n[1]:
            return self._fail(
                step_index, f"error rate of the new version {self.errors[1] / self.n[1]:.1%} over "
                f"{self.n[1]:,} requests, above the ceiling {p.max_error_rate:.0%}")
        harmed = self.harmed()
        if harmed:
            return Decision("rollback", "rolled_back", step_index, 0.0,
                            "harm established: " + "; ".join(
                                self._harm_text(m) for m in harmed))
        hold = Decision("hold", status, step_index, share, "")
        if self.step_n[1] < p.min_samples:
            return _with(hold, f"waiting for samples: {self.step_n[1]:,} of "
                         f"{p.min_samples:,} on the new version at {share:g} %")
        elapsed = now - (now if since is None else since)
        if elapsed < p.step_seconds:
            return _with(hold, f"waiting for time: {elapsed:,.0f} of {p.step_seconds:,.0f} s "
                         f"at {share:g} %")
        evidence = (f"no harm over {self.n[1]:,} requests of the new version and "
                    f"{self.n[0]:,} of the live one ({self._p_text()})")
        if status == "promoted":
            return Decision("retire", "retired", step_index, 100.0,
                            f"validated for one more period: {evidence}; old slot retired")
        if step_index + 1 < len(steps):
            return Decision("step", "shifting", step_index + 1, steps[step_index + 1],
                            f"{_step_text(step_index + 1, steps)}: {evidence}")
        return Decision("promote", "promoted", len(steps), 100.0,
                        f"promoted after the last step: {evidence}")

    def _fail(self, step_index: int, why: str) -> Decision:
        return Decision("fail", "failed", step_index, 0.0, why)

    def _harm_text(self, metric: str) -> str:
        t = self.tests[metric]
        live, new = t.means
        if metric == "error_rate":
            values = f"{new:.2%} vs {live:.2%}"
        elif metric == "latency":
            values = (f"{math.expm1(new):,.0f} ms vs {math.expm1(live):,.0f} ms "
                      f"(geometric means, {math.exp(new - live) - 1:+.0%})")
        else:
            values = f"{new:.3f} vs {live:.3f}"
        return (f"{metric} {values} (new vs live), always-valid p = {t.p_value:.2g} "
                f"<= {t.alpha:.3g} after {t.n[1]:,} + {t.n[0]:,} requests")

    def _p_text(self) -> str:
        return ", ".join(f"p {m} {p:.2g}" for m, p in self.p_values().items())

    # -- persistence ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"tests": {m: t.state() for m, t in self.tests.items()}, "n": self.n,
                "errors": self.errors, "step_n": self.step_n,
                "step_errors": self.step_errors, "latency_sum": self.latency_sum,
                "phase": self.phase}

    @classmethod
    def from_state(cls, plan: Plan, state: Mapping[str, Any]) -> Gate:
        """The gate :meth:`state` wrote; ValueError (or KeyError/TypeError) when it is not
        one (then the caller rebuilds it from the rows)."""
        tests = {m: SequentialTest.from_state(state["tests"][m]) for m in METRICS}
        pairs = {k: _pair(state[k], int) for k in ("n", "errors", "step_n", "step_errors")}
        return cls(plan, tests, pairs["n"], pairs["errors"], pairs["step_n"],
                   pairs["step_errors"], _pair(state["latency_sum"], float),
                   str(state["phase"]))


def _pair(value: Any, kind: type[int] | type[float]) -> Any:
    if not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"expected two numbers, got {value!r}")
    out = [kind(v) for v in value]
    if min(out) < 0:
        raise ValueError(f"negative count in {value!r}")
    return out


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _with(d: Decision, message: str) -> Decision:
    return Decision(d.outcome, d.status, d.step_index, d.traffic_percent, message)


def _step_text(i: int, steps: Sequence[float]) -> str:
    return f"step {i + 1} of {len(steps)}: {steps[i]:g} % of units on the new version"
