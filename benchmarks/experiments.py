"""Always-valid A/B tests under continuous monitoring (issue: experiments). Prints JSON.

    .venv/bin/python benchmarks/experiments.py [--quick] [--sims 4000] [--seed 1]

Every simulated experiment is looked at after *every* event: the statistic of
``stream_mlops.stats.sequential`` is evaluated at each n from cumulative sums, vectorised
across experiments (the same functions the test object calls in ``update_many``).

1. A/A type-I error at 5,000 and 50,000 events (the 5,000 figure is the same runs cut
   short), traffic split 50/50 at random, for error rates of 1/3/5 % and lognormal
   latencies (CV 0.5 and 1.3), with a one-sided exact (Clopper-Pearson) 95 % upper bound,
   next to a Welch t-test at 5 % repeated after every event (same burn-in).
2. Stopping time against the fixed-horizon sample size for 80 % power, two-sided 5 %:
   ``N_fix = 2 (z_0.975 + z_0.8)² (var_C + var_T) / δ²`` events in total (per arm: half),
   with ``var = p(1-p)`` for rates. Runs that have not stopped by the cap (5 N_fix) count
   at the cap. Also with ``min_effect`` at half and twice the true effect, and next to
   the factory's defaults and a centred ``N(0, min_effect²)`` mixture (Johari et al.).
3. Sample-ratio mismatch: false alarms over 50,000 events at a true 50/50 split, and the
   time to flag a true 52/48 split.
4. Cost per update of the test objects.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from stream_mlops.stats.sequential import (
    Z_POWER,
    Kind,
    SRMTest,
    grid_centres,
    grid_log_evidence,
    log_evidence,
    make_test,
    mixture_scale,
    null_variance,
    srm_log_bayes_factor,
)

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
ALPHA = 0.05
MIN_SAMPLES = 100  # the factory's default burn-in, per arm
CHUNK_CELLS = 2_500_000  # experiments x events per vectorised block (~20 MB an array)


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    """One-sided exact upper bound for a binomial rate."""
    return 1.0 if k >= n else float(stats.beta.ppf(level, k + 1, n - k))


def lognormal(rng: np.random.Generator, shape: tuple[int, ...], mean: float,
              cv: float) -> F64:
    s2 = math.log1p(cv * cv)
    return rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2), shape)


Sampler = Callable[[np.random.Generator, B], F64]


def moments(x: F64, arm: B, shift: float) -> tuple[F64, ...]:
    """Per-arm count, mean and M2 after every event (arm True = treatment)."""
    out: list[F64] = []
    d = x - shift
    for mask in (~arm, arm):
        n = np.cumsum(mask, axis=1, dtype=np.float64)
        s1 = np.cumsum(np.where(mask, d, 0.0), axis=1)
        s2 = np.cumsum(np.where(mask, d * d, 0.0), axis=1)
        safe = np.maximum(n, 1.0)
        out += [n, shift + s1 / safe, np.maximum(s2 - s1 * s1 / safe, 0.0)]
    return tuple(out)


def first_true(hit: B) -> I64:
    """Index of the first True per row, or the row length when there is none."""
    first: I64 = np.where(hit.any(axis=1), hit.argmax(axis=1), hit.shape[1]).astype(np.int64)
    return first


class TTable:
    """Two-sided 5 % Student critical values indexed by floor(df) (conservative)."""

    def __init__(self, max_df: int) -> None:
        self.crit = stats.t.ppf(0.975, np.arange(1, max_df + 2))

    def __call__(self, df: F64) -> F64:
        i = np.clip(np.floor(np.nan_to_num(df, nan=1.0)).astype(np.int64), 1, len(self.crit))
        return np.asarray(self.crit[i - 1], np.float64)


def evidence(kind: Kind, m: tuple[F64, ...], min_effect: float | None,
             centred_tau: float | None = None) -> F64:
    nc, mc, qc, nt, mt, qt = m
    var, unit = null_variance(kind, n_c=nc, mean_c=mc, m2_c=qc, n_t=nt, mean_t=mt, m2_t=qt)
    if centred_tau is not None:  # Johari et al.'s N(0, τ²) mixture, for comparison
        return log_evidence(mt - mc, var, 0.0, centred_tau**2)
    if min_effect is None:  # the factory's default: the grid mixture
        return grid_log_evidence(mt - mc, var, unit, grid_centres(MIN_SAMPLES, 10_000))
    delta, tau2, wide2 = mixture_scale(unit, min_effect, 0.25, 10_000)
    return log_evidence(mt - mc, var, delta, tau2, wide2)


def welch_rejects(m: tuple[F64, ...], table: TTable) -> B:
    nc, mc, qc, nt, mt, qt = m
    with np.errstate(divide="ignore", invalid="ignore"):
        vc, vt = qc / (nc - 1) / nc, qt / (nt - 1) / nt
        v = vc + vt
        df = v * v / (vc * vc / (nc - 1) + vt * vt / (nt - 1))
        t = np.abs(mt - mc) / np.sqrt(v)
    return np.asarray((v > 0) & (t > table(df)), np.bool_)


def aa_type_one(name: str, *, kind: Kind, sampler: Sampler, shift: float, sims: int,
                horizons: list[int], min_effect: float, rng: np.random.Generator,
                table: TTable) -> dict[str, Any]:
    h_max = max(horizons)
    level = math.log(1 / ALPHA)
    firsts: dict[str, list[I64]] = {"default": [], "min_effect": [], "naive_t": []}
    block = max(1, CHUNK_CELLS // h_max)
    for lo in range(0, sims, block):
        size = min(block, sims - lo)
        arm = rng.random((size, h_max)) < 0.5
        x = sampler(rng, np.zeros((size, h_max), np.bool_))
        m = moments(x, arm, shift)
        burnt = (m[0] >= MIN_SAMPLES) & (m[3] >= MIN_SAMPLES)
        firsts["default"].append(first_true(burnt & (evidence(kind, m, None) >= level)))
        firsts["min_effect"].append(
            first_true(burnt & (evidence(kind, m, min_effect) >= level)))
        firsts["naive_t"].append(first_true(burnt & welch_rejects(m, table)))
    out: dict[str, Any] = {"scenario": name, "sims": sims,
                           "min_effect_config": min_effect}
    for key, parts in firsts.items():
        first = np.concatenate(parts)
        for h in horizons:
            k = int((first < h).sum())
            out[f"{key}_{h}"] = {"false_positives": k, "rate": round(k / sims, 4),
                                 "upper95": round(clopper_pearson_upper(k, sims), 4)}
    return out


def stopping(name: str, *, kind: Kind, control: Sampler, treatment: Sampler, shift: float,
             n_fix: int, min_effect: float, want: int, sims: int,
             rng: np.random.Generator) -> dict[str, Any]:
    """``want`` is the sign of treatment - control that the right decision reports."""
    cap = 5 * n_fix
    level = math.log(1 / ALPHA)
    configs: dict[str, tuple[float | None, float | None]] = {
        "min_effect": (min_effect, None),  # the factory with min_effect=δ (the design)
        "default": (None, None),  # the factory's defaults, no min_effect
        "johari_centred_tau_delta": (None, min_effect),  # N(0, δ²) mixture
    }
    res: dict[str, dict[str, list[I64]]] = {k: {"t": [], "sign": []} for k in configs}
    block = max(1, CHUNK_CELLS // cap)
    for lo in range(0, sims, block):
        size = min(block, sims - lo)
        arm = rng.random((size, cap)) < 0.5
        x = np.where(arm, treatment(rng, arm), control(rng, arm))
        m = moments(x, arm, shift)
        burnt = (m[0] >= MIN_SAMPLES) & (m[3] >= MIN_SAMPLES)
        diff = m[4] - m[1]
        for key, (me, centred) in configs.items():
            first = first_true(burnt & (evidence(kind, m, me, centred) >= level))
            stopped = first < cap
            sign = np.where(stopped, np.sign(diff[np.arange(size), np.minimum(first, cap - 1)]),
                            0).astype(np.int64)
            res[key]["t"].append(np.where(stopped, first + 1, cap))
            res[key]["sign"].append(sign)
    out: dict[str, Any] = {"scenario": name, "sims": sims, "n_fix_total": n_fix,
                           "cap_total": cap, "min_effect": min_effect}
    for key in configs:
        t = np.concatenate(res[key]["t"]).astype(np.float64)
        sign = np.concatenate(res[key]["sign"])
        right = sign == want
        out[key] = {
            "mean_over_n_fix": round(float(t.mean()) / n_fix, 3),
            "median_over_n_fix": round(float(np.median(t)) / n_fix, 3),
            "share_stopped_by_cap": round(float((sign != 0).mean()), 4),
            "power_by_cap": round(float(right.mean()), 4),
            "power_by_n_fix": round(float((right & (t <= n_fix)).mean()), 4),
            "wrong_direction": int((sign == -want).sum()),
        }
    return out


def srm(sims: int, horizon: int, rng: np.random.Generator) -> dict[str, Any]:
    default = SRMTest([1, 1])
    levels = sorted({default.alpha, 0.001, 0.01})
    out: dict[str, Any] = {"sims": sims, "horizon": horizon,
                           "concentration": default.concentration,
                           "default_alpha": default.alpha}
    block = max(1, CHUNK_CELLS // horizon)
    for share, label in ((0.5, "null_50_50"), (0.52, "true_52_48")):
        maxes: list[F64] = []
        firsts: dict[float, list[I64]] = {a: [] for a in levels}
        for lo in range(0, sims, block):
            size = min(block, sims - lo)
            n1 = np.cumsum(rng.random((size, horizon)) < share, axis=1)
            n = np.arange(1, horizon + 1)
            lbf = srm_log_bayes_factor(np.stack([n1, n - n1], axis=-1), default.shares,
                                       default.concentration)
            maxes.append(lbf.max(axis=1))
            for a in levels:
                firsts[a].append(first_true(lbf >= math.log(1 / a)))
        res: dict[str, Any] = {}
        for a in levels:
            first = np.concatenate(firsts[a])
            k = int((first < horizon).sum())
            entry: dict[str, Any] = {"flagged": k, "rate": round(k / sims, 4),
                                     "upper95": round(clopper_pearson_upper(k, sims), 4)}
            if share != 0.5:
                t = np.where(first < horizon, first + 1, horizon)
                entry["median_events_to_flag"] = float(np.median(t))
                entry["mean_events_to_flag_capped"] = round(float(t.mean()), 1)
            res[f"alpha_{a:g}"] = entry
        out[label] = res
    return out


def per_update_cost(rng: np.random.Generator, n: int) -> dict[str, float]:
    arms = np.where(rng.random(n) < 0.5, "treatment", "control").tolist()
    lat = lognormal(rng, (n,), 1.0, 0.5).tolist()
    err = (rng.random(n) < 0.03).tolist()
    out: dict[str, float] = {}
    for label, kind, xs in (("mean", "mean", lat), ("proportion", "proportion", err)):
        t = make_test(kind)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        for a, x in zip(arms, xs, strict=True):
            t.update(a, x)
        out[f"update_{label}_us"] = round((time.perf_counter() - t0) / n * 1e6, 3)
        t = make_test(kind)  # type: ignore[arg-type]
        arr = np.asarray(xs, np.float64)
        half = n // 2
        t0 = time.perf_counter()
        for lo in range(0, half, 1000):  # batches of 1,000 per arm, as the processor sends
            t.update_many("control", arr[lo:lo + 1000])
            t.update_many("treatment", arr[half + lo:half + lo + 1000])
        out[f"update_many_{label}_us_per_event_batch_1000"] = round(
            (time.perf_counter() - t0) / (2 * half) * 1e6, 3)
        t0 = time.perf_counter()
        reps = 200
        for _ in range(reps):
            t.summary().to_dict()
        out[f"summary_{label}_us"] = round((time.perf_counter() - t0) / reps * 1e6, 1)
    s = SRMTest([1, 1])
    idx = (rng.random(n) < 0.5).astype(np.int64).tolist()
    t0 = time.perf_counter()
    for i in idx:
        s.update(i)
    out["srm_update_us"] = round((time.perf_counter() - t0) / n * 1e6, 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer runs, shorter horizon")
    ap.add_argument("--sims", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sims = 400 if args.quick else args.sims
    horizons = [5_000, 10_000] if args.quick else [5_000, 50_000]
    srm_sims = 400 if args.quick else 1_000
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    table = TTable(max(horizons))

    def rate(p: float) -> Sampler:
        return lambda g, a: (g.random(a.shape) < p).astype(np.float64)

    def lat(mean: float, cv: float) -> Sampler:
        return lambda g, a: lognormal(g, a.shape, mean, cv)

    aa: list[dict[str, Any]] = []
    for p in (0.01, 0.03, 0.05):
        aa.append(aa_type_one(f"error_rate_{p:g}", kind="proportion", sampler=rate(p),
                              shift=0.0, sims=sims, horizons=horizons, min_effect=0.2 * p,
                              rng=rng, table=table))
        print(f"A/A error rate {p:g}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for cv in (0.5, 1.3):
        aa.append(aa_type_one(f"latency_lognormal_cv_{cv:g}", kind="mean",
                              sampler=lat(1.0, cv), shift=1.0, sims=sims, horizons=horizons,
                              min_effect=0.05, rng=rng, table=table))
        print(f"A/A latency cv {cv:g}: {time.perf_counter() - started:.0f} s", file=sys.stderr)

    def n_fix(var_c: float, var_t: float, delta: float) -> int:
        return 2 * math.ceil(Z_POWER**2 * (var_c + var_t) / delta**2)

    st = [
        stopping("error_rate_5pct_vs_3pct_treatment_better", kind="proportion",
                 control=rate(0.05), treatment=rate(0.03), shift=0.0,
                 n_fix=n_fix(0.05 * 0.95, 0.03 * 0.97, 0.02), min_effect=0.02, want=-1,
                 sims=sims, rng=rng),
        stopping("latency_plus_10pct_lognormal_cv_0.5_treatment_worse", kind="mean",
                 control=lat(1.0, 0.5), treatment=lat(1.1, 0.5), shift=1.0,
                 n_fix=n_fix(0.5**2, 0.55**2, 0.1), min_effect=0.1, want=+1, sims=sims, rng=rng),
        stopping("latency_plus_10pct_lognormal_cv_1.3_treatment_worse", kind="mean",
                 control=lat(1.0, 1.3), treatment=lat(1.1, 1.3), shift=1.0,
                 n_fix=n_fix(1.3**2, 1.43**2, 0.1), min_effect=0.1, want=+1, sims=sims, rng=rng),
    ]
    # min_effect set wrong: the same 5 % vs 3 % runs with min_effect at half and at twice
    # the true 2 points (N_fix stays the one of the true effect).
    misspecified = [
        stopping(f"error_rate_5pct_vs_3pct_min_effect_{me:g}", kind="proportion",
                 control=rate(0.05), treatment=rate(0.03), shift=0.0,
                 n_fix=n_fix(0.05 * 0.95, 0.03 * 0.97, 0.02), min_effect=me, want=-1,
                 sims=sims // 2, rng=rng)
        for me in (0.01, 0.04)
    ]
    print(f"stopping times: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    srm_res = srm(srm_sims, 50_000, rng)
    print(f"SRM: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    cost = per_update_cost(rng, 20_000 if args.quick else 200_000)

    worst_aa = max(max(r[f"default_{h}"]["rate"], r[f"min_effect_{h}"]["rate"])
                   for r in aa for h in horizons)
    worst_upper = max(max(r[f"default_{h}"]["upper95"], r[f"min_effect_{h}"]["upper95"])
                      for r in aa for h in horizons)
    design = [r["min_effect"] for r in st[:2]]
    srm_default = f"alpha_{SRMTest([1, 1]).alpha:g}"
    targets = {
        "aa_type_one_max": worst_aa, "aa_type_one_le_0.05": worst_aa <= 0.05,
        "aa_upper95_max": worst_upper, "aa_upper95_le_0.06": worst_upper <= 0.06,
        "stopping_mean_over_n_fix": [d["mean_over_n_fix"] for d in design],
        "stopping_mean_le_1.1": all(d["mean_over_n_fix"] <= 1.1 for d in design),
        "stopping_median_over_n_fix": [d["median_over_n_fix"] for d in design],
        "stopping_median_le_0.95": all(d["median_over_n_fix"] <= 0.95 for d in design),
        "srm_false_alarm_rate": srm_res["null_50_50"][srm_default]["rate"],
        "srm_false_alarms_le_1pct": srm_res["null_50_50"][srm_default]["rate"] <= 0.01,
        "srm_median_detection_52_48": srm_res["true_52_48"][srm_default][
            "median_events_to_flag"],
        "srm_median_detection_le_10000": srm_res["true_52_48"][srm_default][
            "median_events_to_flag"] <= 10_000,
    }
    result = {
        "quick": args.quick, "seed": args.seed, "alpha": ALPHA,
        "burn_in_per_arm": MIN_SAMPLES, "allocation": "random 50/50 per event",
        "looks": "after every event",
        "n_fix_formula": "N_fix = 2 * (z_0.975 + z_0.8)^2 * (var_C + var_T) / delta^2 events "
                         "in total (two-sided alpha 0.05, power 0.8; var = p(1-p) for rates)",
        "aa_min_effect_config": "min_effect = 20 % of the rate for error rates, 5 % of the "
                                "mean for latency; 'default' = no min_effect",
        "aa_type_one": aa, "stopping_time": st, "stopping_time_misspecified": misspecified,
        "srm": srm_res, "cost": cost,
        "targets": targets, "seconds": round(time.perf_counter() - started, 1),
    }
    report("experiments", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
