"""The deployment gate against a Flagger-style static gate and a fixed-sample test read at
every look (issue 13). Prints JSON (benchmarks/results/deployments.json).

    python benchmarks/deployments.py [--quick] [--aa 500] [--bad 200] [--seed 1]

Each simulated deployment serves one function at ``RATE`` requests/s with the simulator's
distributions (lognormal latency, median 700 ms, log-sd 0.5; confidence Beta(8, 2); 3 %
errors), split by the current share (units are hashed uniformly, so a request is on the
new version with probability = share). Time advances in 1-second batches, and after each
batch every gate looks, as the processor's ``deployments`` job does. The default schedule:
steps 10/25/50/100 %, 200 requests of the new version and 60 s per step, then 60 s of
validation.

Gates compared on the same streams:

* ``always_valid``: :class:`stream_mlops.deployments.gate.Gate`, the class the processor
  runs (one-sided always-valid tests, alpha 0.05 over three metrics), driven by the same
  decide() loop;
* ``always_valid_alpha_0.01``: the same with alpha 0.01;
* ``fixed_sample``: the same three comparisons with a one-sided fixed-sample test (z test of
  two proportions, Welch t on log latency and on confidence, alpha 0.05/3 each, the same
  100-per-slot burn-in), read after every batch: what a canary analysis that compares
  with the baseline but is not built for repeated looks does;
* ``static``: Flagger-style: every 60 s the last minute of the new version's requests is
  checked against fixed thresholds (error rate > 5 % or p99 latency > 3000 ms; no
  requests in the window fails the check, as Flagger's "no values found"); a passing
  check advances one step, a failing one keeps it; 5 failed checks roll back.

Reported per gate: false rollbacks over the A/A deployments (with the exact one-sided 95 %
upper bound), and for each regression (errors 3 % -> 5 %, 3 % -> 10 %, latency +25 %,
+100 %) the share rolled back, the new version's requests served before the rollback
("bad requests": requests served by the regressed version; for error regressions also the
errors it served) and the time to roll back. No-traffic behaviour: a deployment that
receives nothing for a day holds and never promotes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from stream_mlops.deployments.gate import BURN_IN, Gate, Plan

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

RATE = 20.0  # requests per second of the function
BASE_ERROR = 0.03
MEDIAN_MS, LOG_SD = 700.0, 0.5
STATIC_ERROR, STATIC_P99_MS, STATIC_FAILED_CHECKS, STATIC_WINDOW = 0.05, 3000.0, 5, 60
PLAN = Plan(steps=(10.0, 25.0, 50.0, 100.0), min_samples=200, step_seconds=60.0,
            alpha=0.05)
MAX_SECONDS = 3600
SCENARIOS: dict[str, dict[str, float]] = {
    "aa": {}, "error_3_to_5": {"error": 0.05}, "error_3_to_10": {"error": 0.10},
    "latency_plus_25": {"latency": 1.25}, "latency_plus_100": {"latency": 2.0}}


@dataclass
class Batch:
    new: B
    latency: F64
    error: B
    confidence: F64


def batch(rng: np.random.Generator, share: float, bad: dict[str, float]) -> Batch:
    n = rng.poisson(RATE)
    new = rng.random(n) < share
    error = rng.random(n) < np.where(new, bad.get("error", BASE_ERROR), BASE_ERROR)
    latency = MEDIAN_MS * rng.lognormal(0, LOG_SD, n) * np.where(new, bad.get("latency", 1.0),
                                                                 1.0)
    confidence = np.where(error, -1.0, rng.beta(8, 2, n))
    return Batch(new, latency, error, confidence)


@dataclass
class Outcome:
    rolled_back: bool = False
    promoted: bool = False
    seconds: float = 0.0
    new_served: int = 0
    new_errors: int = 0


@dataclass
class FixedSample:
    """One-sided fixed-sample tests of harm, read at every look (the reference)."""

    alpha: float
    sums: dict[str, list[list[float]]] = field(default_factory=lambda: {
        m: [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]] for m in ("error_rate", "latency",
                                                         "confidence")})

    def observe(self, b: Batch) -> None:
        values = {"error_rate": b.error.astype(np.float64), "latency": np.log1p(b.latency),
                  "confidence": b.confidence}
        for m, x in values.items():
            for i, sel in enumerate((~b.new, b.new)):
                xs = x[sel]
                if m == "confidence":
                    xs = xs[xs >= 0]
                s = self.sums[m][i]
                s[0] += len(xs)
                s[1] += float(xs.sum())
                s[2] += float((xs * xs).sum())

    def harmed(self) -> bool:
        z_crit = stats.norm.isf(self.alpha)
        for m, ((n0, s0, q0), (n1, s1, q1)) in self.sums.items():
            if min(n0, n1) < BURN_IN:
                continue
            m0, m1 = s0 / n0, s1 / n1
            if m == "error_rate":
                p = (s0 + s1) / (n0 + n1)
                var = p * (1 - p) * (1 / n0 + 1 / n1)
            else:
                var = (q0 / n0 - m0 * m0) / n0 + (q1 / n1 - m1 * m1) / n1
            if var <= 0:
                continue
            z = (m1 - m0) / math.sqrt(var)
            harm = -z if m == "confidence" else z
            if harm > z_crit:
                return True
        return False


def run_sequential(rng: np.random.Generator, bad: dict[str, float], *, fixed: bool,
                   plan: Plan = PLAN) -> Outcome:
    """Our gate's decide() loop (as the processor's job runs it), with the always-valid
    tests or, for ``fixed``, the fixed-sample tests deciding harm."""
    g = Gate(plan)
    ref = FixedSample(plan.metric_alpha) if fixed else None
    d = g.decide("pending", -1, None, 0.0)
    status, step, since, out = d.status, d.step_index, 0.0, Outcome()
    for t in range(1, MAX_SECONDS + 1):
        share = 1.0 if status == "promoted" else plan.steps[step] / 100
        b = batch(rng, share, bad)
        g.enter(f"{status}:{step}")
        g.observe(b.new, b.latency, b.error, b.confidence)
        out.new_served += int(b.new.sum())
        out.new_errors += int((b.new & b.error).sum())
        if ref is not None:
            ref.observe(b)
            if ref.harmed():
                out.rolled_back, out.seconds = True, float(t)
                return out
            for test in g.tests.values():  # only the fixed-sample tests decide harm here
                test._decision = "continue"
        d = g.decide(status, step, since, float(t))
        if d.outcome != "hold":
            status, step, since = d.status, d.step_index, float(t)
        if status in {"rolled_back", "failed"}:
            out.rolled_back, out.seconds = True, float(t)
            return out
        if status == "retired":
            out.promoted, out.seconds = True, float(t)
            return out
    out.seconds = float(MAX_SECONDS)
    return out


def run_static(rng: np.random.Generator, bad: dict[str, float]) -> Outcome:
    """Flagger-style: every minute the new version's last minute against fixed thresholds;
    a passing check advances one step (after the last, one more minute at 100 % and the
    promotion), a failing one keeps the step and counts; 5 failed checks roll back."""
    out, failed, phase = Outcome(), 0, 0
    window_lat: list[F64] = []
    window_err = [0, 0]
    phases = len(PLAN.steps) + 1  # the steps, then validation at 100 %
    for t in range(1, MAX_SECONDS + 1):
        share = 1.0 if phase >= len(PLAN.steps) else PLAN.steps[phase] / 100
        b = batch(rng, share, bad)
        out.new_served += int(b.new.sum())
        out.new_errors += int((b.new & b.error).sum())
        window_lat.append(b.latency[b.new])
        window_err[0] += int(b.new.sum())
        window_err[1] += int((b.new & b.error).sum())
        if t % STATIC_WINDOW:
            continue
        lat = np.concatenate(window_lat)
        no_data = window_err[0] == 0
        too_many = not no_data and window_err[1] / window_err[0] > STATIC_ERROR
        too_slow = not no_data and float(np.percentile(lat, 99)) > STATIC_P99_MS
        window_lat, window_err = [], [0, 0]
        if no_data or too_many or too_slow:
            failed += 1
            if failed >= STATIC_FAILED_CHECKS:
                out.rolled_back, out.seconds = True, float(t)
                return out
            continue
        phase += 1
        if phase >= phases:
            out.promoted, out.seconds = True, float(t)
            return out
    out.seconds = float(MAX_SECONDS)
    return out


def upper_bound(k: int, n: int) -> float:
    return 1.0 if k == n else float(stats.beta.ppf(0.95, k + 1, n - k))


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    n = len(outcomes)
    rolled = [o for o in outcomes if o.rolled_back]
    k = len(rolled)
    out: dict[str, Any] = {"deployments": n, "rolled_back": k, "rate": k / n,
                           "rate_upper_95": upper_bound(k, n),
                           "promoted": sum(o.promoted for o in outcomes)}
    if rolled:
        out |= {"median_new_requests_before_rollback":
                float(np.median([o.new_served for o in rolled])),
                "median_new_errors_before_rollback":
                float(np.median([o.new_errors for o in rolled])),
                "median_seconds_to_rollback": float(np.median([o.seconds for o in rolled]))}
    # Every deployment, rolled back or not: what the regressed version served in all.
    out["mean_new_requests_served"] = float(np.mean([o.new_served for o in outcomes]))
    out["mean_new_errors_served"] = float(np.mean([o.new_errors for o in outcomes]))
    return out


def no_traffic() -> dict[str, Any]:
    """A day without a request: the gate holds at its first step and says why."""
    g = Gate(PLAN)
    d = g.decide("pending", -1, None, 0.0)
    g.enter(f"{d.status}:{d.step_index}")
    outcomes = set()
    for t in range(0, 86_400, 60):
        outcomes.add(g.decide(d.status, d.step_index, 0.0, float(t)).outcome)
    last = g.decide(d.status, d.step_index, 0.0, 86_400.0)
    return {"outcomes_seen": sorted(outcomes), "message": last.message,
            "promoted": "promote" in outcomes, "rolled_back": "rollback" in outcomes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 A/A and 40 per regression")
    ap.add_argument("--aa", type=int, default=500)
    ap.add_argument("--bad", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    n_aa, n_bad = (100, 40) if args.quick else (args.aa, args.bad)
    started = time.perf_counter()
    gates: dict[str, Callable[[np.random.Generator, dict[str, float]], Outcome]] = {
        "always_valid": lambda r, b: run_sequential(r, b, fixed=False),
        # The same gate at alpha 0.01: the price of fewer false rollbacks.
        "always_valid_alpha_0.01": lambda r, b: run_sequential(
            r, b, fixed=False, plan=replace(PLAN, alpha=0.01)),
        "fixed_sample": lambda r, b: run_sequential(r, b, fixed=True),
        "static": run_static,
    }
    results: dict[str, dict[str, Any]] = {}
    for name, bad in SCENARIOS.items():
        n = n_aa if name == "aa" else n_bad
        results[name] = {}
        for gate, run in gates.items():
            # The same streams for every gate: seeds by deployment, not by gate.
            outs = [run(np.random.default_rng([args.seed, i, list(SCENARIOS).index(name)]), bad)
                    for i in range(n)]
            results[name][gate] = summarize(outs)
    ours, static = results["aa"]["always_valid"], results["aa"]["static"]
    fewer = {name: results[name]["always_valid"]["mean_new_requests_served"]
             < results[name]["static"]["mean_new_requests_served"]
             for name in SCENARIOS if name != "aa"}
    targets = {
        "false_rollbacks_at_most_5_percent": ours["rate"] <= 0.05,
        "false_rollbacks_not_above_static": ours["rate"] <= static["rate"],
        "fewer_bad_requests_than_static_on_every_regression": all(fewer.values()),
        "no_traffic_never_promotes": not no_traffic()["promoted"],
    }
    report("deployments", {
        "quick": args.quick, "seed": args.seed, "rate_per_second": RATE,
        "plan": {"steps": PLAN.steps, "min_samples": PLAN.min_samples,
                 "step_seconds": PLAN.step_seconds, "alpha": PLAN.alpha,
                 "validation_seconds": PLAN.step_seconds},
        "static_gate": {"error_rate_above": STATIC_ERROR, "p99_ms_above": STATIC_P99_MS,
                        "window_seconds": STATIC_WINDOW,
                        "failed_checks_to_roll_back": STATIC_FAILED_CHECKS,
                        "no_data_is_a_failed_check": True},
        "results": results, "fewer_bad_requests_than_static": fewer,
        "no_traffic": no_traffic(), "targets": targets,
        "seconds": round(time.perf_counter() - started, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
