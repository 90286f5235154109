"""Drift detection: false alarms on stationary streams and delays after a change. JSON.

    .venv/bin/python benchmarks/drift.py [--quick]

Our detectors (``stream_mlops.stats.drift``, defaults) against river's ``ADWIN()``,
``KSWIN()`` and ``PageHinkley()`` at their defaults and a KS test of the reference against
the last 500 values every 500 events (alpha 0.05; a chi-square test for categories), all
on the same seeded streams, in the units the data come in (latency in ms, cost in dollars).

* False alarms per 10,000 events on long stationary streams of each family.
* Median delay after a change at a known point (``change_at`` = reference + 1,000 events):
  the index of the first detection at or after the change minus ``change_at``; a stream
  with none within the horizon counts as missed (as an infinite delay in the median).
  Detections before the change are counted as false alarms, not as delays.
* Scale invariance: identical detections with the data multiplied by 1,000 and 0.001.
* Cost per value of ``update_many`` (1,000-value batches) and of ``update``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift as river_drift
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from stream_mlops.stats.drift import Detector, Kind, make_detector

Array = npt.NDArray[Any]
I64 = npt.NDArray[np.int64]
Gen = Callable[[np.random.Generator, int], Array]
CATS = np.array(["ok", "timeout", "rate_limit", "filtered", "server_error"])
CAT_P = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
LAM = 20.0


@dataclass(frozen=True)
class Family:
    """A stream of one metric: its generator, kind, and the scale that changes use."""

    name: str
    kind: Kind
    gen: Gen
    sigma: float = 1.0     # standard deviation (IQR / 1.349 where the sd is infinite)
    median: float = 0.0
    note: str = ""


def _gamma_median() -> float:
    return float(stats.gamma.median(2.0, scale=0.002))


FAMILIES = [
    Family("normal", "numeric", lambda g, n: g.normal(0.0, 1.0, n), 1.0, 0.0, "N(0, 1)"),
    Family("lognormal_latency_ms", "numeric", lambda g, n: g.lognormal(6.5, 0.6, n),
           math.exp(6.5 + 0.18) * math.sqrt(math.expm1(0.36)), math.exp(6.5),
           "latency in ms, lognormal(6.5, 0.6): median 665 ms"),
    Family("pareto_a1.5", "numeric", lambda g, n: g.pareto(1.5, n) + 1.0,
           (4 ** (1 / 1.5) - (4 / 3) ** (1 / 1.5)) / 1.349, 2 ** (1 / 1.5),
           "Pareto alpha 1.5, x_m 1 (infinite variance: sigma is IQR / 1.349)"),
    Family("gamma_cost_usd", "numeric", lambda g, n: g.gamma(2.0, 0.002, n),
           math.sqrt(2) * 0.002, _gamma_median(), "cost in dollars, gamma(2, $0.002)"),
    Family("poisson_volume", "numeric", lambda g, n: g.poisson(LAM, n).astype(np.float64),
           math.sqrt(LAM), LAM, "requests per interval, Poisson(20): integer ties"),
    Family("bernoulli_errors_2pct", "binary", lambda g, n: g.random(n) < 0.02, note="2 %"),
    Family("categorical_5", "categorical", lambda g, n: CATS[g.choice(5, n, p=CAT_P)],
           note=f"{list(CATS)} with p = {CAT_P.tolist()}"),
]
BY_NAME = {f.name: f for f in FAMILIES}


# ------------------------------------------------------------------------- changes


def changed(fam: Family, change: str, g: np.random.Generator, n: int) -> Array:
    """``n`` values after a change (``t`` = 0..n-1 counts from the change)."""
    t = np.arange(n)
    ramp = np.minimum(1.0, t / 2000)
    if fam.name == "poisson_volume":
        # A volume changes as a count: a higher rate, or burstier (overdispersed) traffic.
        if change == "mean_+0.5sd":
            return g.poisson(LAM + 0.5 * fam.sigma, n).astype(np.float64)
        if change == "ramp_+0.5sd_2000":
            return g.poisson(LAM + 0.5 * fam.sigma * ramp).astype(np.float64)
        p = 1 / 2.25  # negative binomial with the same mean, variance x 2.25
        return g.negative_binomial(LAM * p / (1 - p), p, n).astype(np.float64)
    x = fam.gen(g, n)
    if change == "mean_+0.5sd":
        return x + 0.5 * fam.sigma
    if change == "ramp_+0.5sd_2000":
        return x + 0.5 * fam.sigma * ramp
    if change == "spread_x1.5":
        return fam.median + 1.5 * (x - fam.median)
    if change == "rate_2pct_to_6pct":
        return g.random(n) < 0.06
    if change == "mix_10pt":
        return CATS[g.choice(5, n, p=[0.4, 0.2, 0.15, 0.1, 0.15])]
    if change == "mix_5pt":
        return CATS[g.choice(5, n, p=[0.45, 0.2, 0.15, 0.1, 0.1])]
    raise ValueError(change)


CHANGES = {
    "mean_+0.5sd": "x + 0.5 sigma (Poisson: rate 20 -> 22.2)",
    "spread_x1.5": "median + 1.5 (x - median) (Poisson: negative binomial, variance x 2.25)",
    "ramp_+0.5sd_2000": "x + 0.5 sigma * min(1, t / 2000): delay counted from the ramp's start",
    "rate_2pct_to_6pct": "error rate 2 % -> 6 %",
    "mix_10pt": "ok 50 % -> 40 %, server_error 5 % -> 15 %",
    "mix_5pt": "ok 50 % -> 45 %, server_error 5 % -> 10 %",
}
HORIZON = {"ramp_+0.5sd_2000": 4000}
# Issue 19: thresholds now carry the reference's long-run variance (dependence) and the
# budget is shared with trend CUSUMs, for at most 20 % more delay than the 50 events of
# before on a 0.5 sd step; the ramp is judged against the oracle that knows its shape
# (median 579 in benchmarks/drift_dependence.py): at most 1.5 x, i.e. 868.
TARGETS = {"mean_+0.5sd": 60, "spread_x1.5": 100, "ramp_+0.5sd_2000": 868,
           "rate_2pct_to_6pct": 200, "mix_10pt": 500, "mix_5pt": 500}


def scenarios() -> list[tuple[Family, str]]:
    out = []
    for fam in FAMILIES:
        if fam.kind == "numeric":
            out += [(fam, c) for c in ("mean_+0.5sd", "spread_x1.5", "ramp_+0.5sd_2000")]
        elif fam.kind == "binary":
            out.append((fam, "rate_2pct_to_6pct"))
        else:
            out += [(fam, "mix_10pt"), (fam, "mix_5pt")]
    return out


# ------------------------------------------------------------------------- baselines


class Baseline:
    """A detector fed one value at a time (river's API), or the repeated KS test."""

    name = ""
    # Feed only this many values before the change (None: all); KSWIN only ever looks at
    # its last 100 values, and is slow.
    lead: int | None = None

    def __init__(self, kind: Kind, n_ref: int, seed: int) -> None:
        self.kind = kind

    def run(self, xs: Array, stop_after: int | None = None) -> list[int]:
        """Detection indices; stop at the first one at or after ``stop_after``."""
        raise NotImplementedError


def _as_floats(kind: Kind, xs: Array) -> list[float]:
    if kind == "categorical":
        code = {c: float(i) for i, c in enumerate(CATS)}
        return [code[c] for c in xs.tolist()]
    out: list[float] = np.asarray(xs, np.float64).tolist()
    return out


class River(Baseline):
    def __init__(self, kind: Kind, n_ref: int, seed: int, *, factory: Callable[[int], Any],
                 name: str, lead: int | None) -> None:
        super().__init__(kind, n_ref, seed)
        self.det = factory(seed)
        self.name = name
        self.lead = lead

    def run(self, xs: Array, stop_after: int | None = None) -> list[int]:
        det, found = self.det, []
        stop = math.inf if stop_after is None else stop_after
        for i, v in enumerate(_as_floats(self.kind, xs)):
            det.update(v)
            if det.drift_detected:
                found.append(i)
                if i >= stop:
                    break
        return found


RIVER: list[tuple[str, Callable[[int], Any], int | None]] = [
    ("river_ADWIN", lambda s: river_drift.ADWIN(), None),  # type: ignore[no-untyped-call, unused-ignore]
    ("river_KSWIN", lambda s: river_drift.KSWIN(seed=s), 1000),
    ("river_PageHinkley", lambda s: river_drift.PageHinkley(), None),
]


class RepeatedTest(Baseline):
    """The first ``n_ref`` values against the last 500, every 500 values, alpha 0.05."""

    name = "ks_every_500"
    every = 500

    def __init__(self, kind: Kind, n_ref: int, seed: int) -> None:
        super().__init__(kind, n_ref, seed)
        self.n_ref = n_ref

    def run(self, xs: Array, stop_after: int | None = None) -> list[int]:
        ref = xs[:self.n_ref]
        found = []
        for end in range(self.n_ref + self.every, len(xs) + 1, self.every):
            cur = xs[end - self.every:end]
            if self.kind == "categorical":
                table = np.array([[np.count_nonzero(s == c) for c in CATS] for s in (ref, cur)])
                p = stats.chi2_contingency(table[:, table.sum(axis=0) > 0]).pvalue
            else:
                p = stats.ks_2samp(np.asarray(ref, float), np.asarray(cur, float)).pvalue
            if p < 0.05:
                found.append(end - 1)
                if stop_after is not None and end - 1 >= stop_after:
                    break
        return found


def baselines(kind: Kind, n_ref: int, seed: int) -> list[Baseline]:
    out: list[Baseline] = [River(kind, n_ref, seed, factory=f, name=n, lead=lead)
                           for n, f, lead in RIVER]
    return [*out, RepeatedTest(kind, n_ref, seed)]


# ------------------------------------------------------------------------- measures


def ours(kind: Kind, seed: int) -> Detector:
    return make_detector(kind, seed=seed)


def false_alarms(fam: Family, n: int, seed: int) -> dict[str, Any]:
    g = np.random.default_rng(seed)
    det = ours(fam.kind, seed)
    alarms = 0
    t0 = time.perf_counter()
    for _ in range(n // 100_000):
        alarms += len(det.update_many(fam.gen(g, 100_000)))
    return {"events": n, "alarms": alarms, "per_10k": round(alarms / n * 1e4, 3),
            "seconds": round(time.perf_counter() - t0, 1)}


def baseline_false_alarms(fam: Family, n: int, seed: int, which: str) -> dict[str, Any]:
    det = next(b for b in baselines(fam.kind, 2000, seed) if b.name == which)
    x = fam.gen(np.random.default_rng(seed), n)
    alarms = len(det.run(x))
    return {"events": n, "alarms": alarms, "per_10k": round(alarms / n * 1e4, 3)}


def stream(fam: Family, change: str, rep: int, change_at: int, horizon: int) -> Array:
    g = np.random.default_rng([rep, zlib.crc32(change.encode()), zlib.crc32(fam.name.encode())])
    return np.concatenate([fam.gen(g, change_at), changed(fam, change, g, horizon)])


def _median(d: Array, horizon: int, q: float = 0.5) -> float | None:
    # A miss sorts after every delay; a quantile that lands on one is reported None.
    if len(d) == 0:
        return None
    v = float(np.quantile(np.where(np.isinf(d), horizon + 1.0, d), q))
    return None if v > horizon else v


def summarise(runs: list[tuple[float, int]], horizon: int) -> dict[str, Any]:
    """``runs``: (delay, alarms before the change) per replication."""
    d = np.array([r[0] for r in runs])
    clean = np.array([r[0] for r in runs if r[1] == 0])
    return {"replications": len(runs),
            "median_delay": _median(d, horizon),
            "p90_delay": _median(d, horizon, 0.9),
            "missed_within_horizon": int(np.isinf(d).sum()), "horizon": horizon,
            "false_alarms_before_change": sum(r[1] for r in runs),
            # The textbook conditional delay: only runs with no alarm before the change.
            "median_delay_no_prior_alarm": _median(clean, horizon),
            "replications_no_prior_alarm": len(clean)}


def _run(idx: I64, change_at: int) -> tuple[float, int]:
    post = idx[idx >= change_at]
    return (float(post[0] - change_at) if len(post) else math.inf,
            int((idx < change_at).sum()))


def delays(fam: Family, change: str, *, reps: int, base_reps: int, kswin_reps: int,
           change_at: int) -> dict[str, Any]:
    horizon = HORIZON.get(change, 3000 if fam.kind != "numeric" else 2000)
    out: dict[str, Any] = {}
    runs = [_run(ours(fam.kind, r).update_many(stream(fam, change, r, change_at, horizon)),
                 change_at) for r in range(reps)]
    out["ours"] = summarise(runs, horizon)
    for name in [n for n, _, _ in RIVER] + ["ks_every_500"]:
        n_reps = kswin_reps if name == "river_KSWIN" else base_reps
        runs = []
        for r in range(n_reps):
            x = stream(fam, change, r, change_at, horizon)
            det = next(b for b in baselines(fam.kind, 2000, r) if b.name == name)
            start = 0 if det.lead is None else change_at - det.lead
            idx = np.asarray(det.run(x[start:], change_at - start), np.int64) + start
            runs.append(_run(idx, change_at))
        out[name] = summarise(runs, horizon)
        lead = dict((n, lead) for n, _, lead in RIVER).get(name)
        if lead is not None:
            out[name]["fed_from"] = f"{lead} events before the change"
    return out


def scale_invariance(fam: Family, n: int) -> dict[str, Any]:
    g = np.random.default_rng(99)
    x = fam.gen(g, n)
    # Changes every n/6 events so that there is something to detect.
    k = n // 6
    x[k:2 * k] += 0.5 * fam.sigma
    x[3 * k:4 * k] = fam.median + 1.5 * (x[3 * k:4 * k] - fam.median)
    runs = [ours("numeric", 5).update_many(x * f).tolist() for f in (1.0, 1000.0, 0.001)]
    return {"events": n, "detections": len(runs[0]),
            "identical_x1000": runs[1] == runs[0], "identical_x0.001": runs[2] == runs[0]}


def cost(kind: Kind, gen: Gen, n: int) -> dict[str, float]:
    g = np.random.default_rng(3)
    det = ours(kind, 1)
    det.update_many(gen(g, 2000))  # past the warm-up
    batches = [gen(g, 1000) for _ in range(n // 1000)]
    t0 = time.perf_counter()
    for b in batches:
        det.update_many(b)
    batch_us = (time.perf_counter() - t0) / n * 1e6
    single = gen(g, n // 10).tolist()
    det = ours(kind, 1)
    det.update_many(gen(g, 2000))
    t0 = time.perf_counter()
    for v in single:
        det.update(v)
    scalar_us = (time.perf_counter() - t0) / len(single) * 1e6
    return {"update_many_1000_us_per_value": round(batch_us, 3),
            "update_us_per_value": round(scalar_us, 2)}


def ramp_bound(rate: float, at: int = 400) -> dict[str, float]:
    """The best power any test can have by event ``at`` of the ramp (Neyman-Pearson).

    Even knowing the ramp exactly, the log-likelihood ratio of the first ``at`` normal
    values is N(+-m, 2m) with m = sum(mu_t**2) / 2; a detector with ``rate`` false alarms
    per event alarms on a stationary stream within ``at`` events with probability about
    ``rate * at``, so its chance of detecting the ramp by then is at most the most powerful
    test's power at that level.
    """
    mu = 0.5 * np.arange(1, at + 1) / 2000
    m = float((mu**2).sum() / 2)
    alpha = rate * at
    power = float(stats.norm.sf(stats.norm.isf(alpha) - 2 * m / math.sqrt(2 * m)))
    return {"events": at, "shift_reached_sd": 0.5 * at / 2000, "oracle_llr_mean": round(m, 3),
            "false_alarm_probability": alpha, "max_detection_probability": round(power, 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller run (about a minute)")
    args = ap.parse_args()
    q = args.quick
    fa_events = 200_000 if q else 2_000_000
    base_fa_events = 100_000 if q else 1_000_000
    kswin_fa_events = 20_000 if q else 50_000
    reps, base_reps, kswin_reps = (40, 40, 10) if q else (300, 300, 40)
    change_at = 3000
    t_start = time.perf_counter()

    fa: dict[str, Any] = {}
    for k, fam in enumerate(FAMILIES):
        # A seed per family: with one seed, normal and lognormal = exp(normal) would have
        # the same ranks, hence the same detections.
        seed = 11 + k
        row = {"ours": false_alarms(fam, fa_events, seed)}
        for name, _, _ in RIVER:
            n = kswin_fa_events if name == "river_KSWIN" else base_fa_events
            row[name] = baseline_false_alarms(fam, n, seed, name)
        row["ks_every_500"] = baseline_false_alarms(fam, base_fa_events, seed, "ks_every_500")
        fa[fam.name] = row
        print(f"false alarms {fam.name}: {row['ours']['per_10k']}", file=sys.stderr)

    dl: dict[str, Any] = {}
    for fam, change in scenarios():
        res = delays(fam, change, reps=reps, base_reps=base_reps, kswin_reps=kswin_reps,
                     change_at=change_at)
        dl.setdefault(fam.name, {})[change] = res
        print(f"delay {fam.name} {change}: {res['ours']['median_delay']}", file=sys.stderr)

    scale = {f.name: scale_invariance(f, 60_000 if q else 600_000)
             for f in FAMILIES if f.kind == "numeric"}
    n_cost = 200_000 if q else 2_000_000
    costs = {"numeric": cost("numeric", BY_NAME["lognormal_latency_ms"].gen, n_cost),
             "binary": cost("binary", BY_NAME["bernoulli_errors_2pct"].gen, n_cost),
             "categorical": cost("categorical", BY_NAME["categorical_5"].gen, n_cost)}

    worst_fa = max(r["ours"]["per_10k"] for r in fa.values())
    met: dict[str, Any] = {"false_alarms_per_10k_max": worst_fa,
                           "false_alarms_target_met": worst_fa <= 1.0}
    for change, target in TARGETS.items():
        meds = [res[change]["ours"]["median_delay"] for res in dl.values() if change in res]
        worst = math.inf if any(m is None for m in meds) else max(meds)
        met[f"{change}_worst_median_delay"] = None if math.isinf(worst) else worst
        met[f"{change}_target"] = target
        met[f"{change}_target_met"] = worst <= target
    worst_us = max(c["update_many_1000_us_per_value"] for c in costs.values())
    met["update_many_us_per_value_max"] = worst_us
    met["cost_target_met"] = worst_us <= 5.0
    met["scale_invariant"] = all(s["identical_x1000"] and s["identical_x0.001"]
                                 for s in scale.values())

    result = {
        "quick": q,
        "detectors": {
            "ours": "stream_mlops.stats.drift.make_detector(kind) at its defaults "
                    "(reference 2,000 values, 1e-4 false alarms per event targeted)",
            "river_ADWIN": "river.drift.ADWIN()", "river_KSWIN": "river.drift.KSWIN(seed=r)",
            "river_PageHinkley": "river.drift.PageHinkley()",
            "ks_every_500": "first 2,000 values vs the last 500, every 500, alpha 0.05 "
                            "(ks_2samp; chi2_contingency for categories)",
            "river_inputs": "raw values; 0/1 for errors; category codes 0-4 for categories",
        },
        "river_version": __import__("river").__version__,
        "families": {f.name: f.note for f in FAMILIES},
        "changes": CHANGES,
        "change_at": change_at,
        "targets": {"false_alarms_per_10k": 1.0, **{f"median_delay_{k}": v
                                                     for k, v in TARGETS.items()},
                    "update_many_us_per_value": 5.0},
        "summary": met,
        "notes": {
            "delay": "first detection at or after the change minus change_at, over all "
                     "replications (a run whose detector was re-warming after an earlier "
                     "false alarm is included); median_delay_no_prior_alarm is the textbook "
                     "conditional delay. Targets are judged on median_delay.",
            "ramp": "no detector can find it by event 400 at this false-alarm rate: see "
                    "ramp_limit (by event 400 the shift is 0.1 sd and even the most "
                    "powerful test that knows the ramp detects it with probability below "
                    "0.5); the target is 1.5 x the oracle's median delay (579, "
                    "benchmarks/drift_dependence.py)",
            "poisson_mean": "a Poisson rate 20 -> 22.2 moves the normal scores by 0.49 sd, "
                            "not 0.5 (ties, and a variance that grows with the mean): a few "
                            "percent more delay than the Gaussian case",
            "baselines": "river detectors and the repeated KS test page far more often on "
                         "stationary data (false_alarms_per_10k), which also shortens their "
                         "apparent delays; KSWIN is fed from 1,000 events before the change "
                         "and has fewer replications (it costs ~200 us per value)",
            "cost": "measured on a 2-core machine shared with other work",
        },
        "false_alarms_per_10k": fa,
        "delays": dl,
        "ramp_limit": ramp_bound(1e-4),
        "scale_invariance": scale,
        "cost": costs,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    report("drift", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
