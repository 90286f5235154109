"""What else the default A/B mixture could be, on the same simulated experiments (issue 19).

    .venv/bin/python benchmarks/experiments_grid.py [--budget 1e7] [--seed 2]

The default test (no ``min_effect``) mixes the likelihood ratio over a grid of effects:
``GRID_SIZE`` = 10 per sign, log-spaced between the effects a fixed-horizon test detects
at 100 and at 30,000 per arm, each a normal of sd ``GRID_SPREAD`` = 0.3 x its centre, with
nothing tested before 100 per arm. On three of the nine effects of
``benchmarks/experiments_defaults.py`` it stops later than 1.2 x the fixed-horizon sample
size. This runs the variants one would try on the same streams (every variant reads the
same simulated experiments; means of the stopping time over N_fix, runs capped at
4 N_fix): a wider grid with more points, fewer points with wider components, and a burn-in
of 50 per arm, then the A/A false-positive rate of each (400 runs to 2,500 events). JSON.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from benchmarks.experiments import ALPHA, F64, Sampler, first_true, lognormal, moments
from benchmarks.experiments_defaults import n_fix
from stream_mlops.stats.sequential import GRID_SIZE, GRID_SPREAD, Z_POWER, Kind, null_variance

CELLS = 2_000_000
# name -> (grid from n per arm, to n per arm, points per sign, spread, burn-in per arm)
VARIANTS: dict[str, Variant] = {
    "default": (100, 30_000, GRID_SIZE, GRID_SPREAD, 100),
    "burn-in 50": (100, 30_000, GRID_SIZE, GRID_SPREAD, 50),
    "wider grid, 14 points (25 to 100,000 per arm)": (25, 100_000, 14, GRID_SPREAD, 100),
    "wider grid, 14 points, burn-in 50": (25, 100_000, 14, GRID_SPREAD, 50),
    "8 points, spread 0.35, burn-in 50": (100, 30_000, 8, 0.35, 50),
    "6 points, spread 0.45, burn-in 50": (100, 30_000, 6, 0.45, 50),
}


Variant = tuple[int, int, int, float, int]


def grid_evidence(d: F64, v: F64, u: F64, variant: Variant) -> F64:
    """``stream_mlops.stats.sequential.grid_log_evidence`` with the grid as parameters."""
    lo, hi, k, spread, _ = variant
    ok = np.isfinite(v) & (v > 0) & np.isfinite(u) & (u > 0)
    v = np.where(ok, v, 1.0)
    scale = np.sqrt(np.where(ok, u, 1.0))
    base = d * d / (2 * v)
    out: F64 | None = None
    for c in Z_POWER / np.sqrt(np.geomspace(lo, hi, k)):
        m = c * scale
        t2 = (spread * m) ** 2
        s = v + t2
        common = -math.log(2 * k) + base - 0.5 * np.log1p(t2 / v)
        for term in (common - (d - m) ** 2 / (2 * s), common - (d + m) ** 2 / (2 * s)):
            out = term if out is None else np.logaddexp(out, term)
    assert out is not None
    result: F64 = np.where(ok, out, 0.0)
    return result


def run(kind: Kind, streams: tuple[Sampler, Sampler, float], *, horizon: int, sims: int,
        rng: np.random.Generator) -> dict[str, F64]:
    """First crossing (event count; ``horizon`` if none) per variant and experiment."""
    control, treatment, shift = streams
    level = math.log(1 / ALPHA)
    out: dict[str, list[F64]] = {k: [] for k in VARIANTS}
    block = max(1, CELLS // horizon)
    for lo in range(0, sims, block):
        size = min(block, sims - lo)
        arm = rng.random((size, horizon)) < 0.5
        m = moments(np.where(arm, treatment(rng, arm), control(rng, arm)), arm, shift)
        nc, mc, qc, nt, mt, qt = m
        var, unit = null_variance(kind, n_c=nc, mean_c=mc, m2_c=qc, n_t=nt, mean_t=mt,
                                  m2_t=qt)
        for name, variant in VARIANTS.items():
            ev = grid_evidence(mt - mc, var, unit, variant)
            burn = variant[4]
            first = first_true((nc >= burn) & (nt >= burn) & (ev >= level))
            out[name].append(np.where(first < horizon, first + 1, horizon).astype(np.float64))
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=1e7, help="simulated events per effect")
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    def rate(p: float) -> Sampler:
        return lambda g, a: (g.random(a.shape) < p).astype(np.float64)

    def lat(mean: float) -> Sampler:
        return lambda g, a: lognormal(g, a.shape, mean, 1.3)

    cells: list[tuple[str, Kind, Sampler, Sampler, float, int]] = []
    for lift in (0.05, 0.2, 0.5):
        cells.append((f"latency +{lift:.0%}", "mean", lat(1.0), lat(1.0 + lift), 1.0,
                      n_fix(1.3**2, (1.3 * (1 + lift)) ** 2, lift)))
    for p1 in (0.035, 0.04, 0.07, 0.10):
        cells.append((f"error rate 3% -> {p1:.1%}", "proportion", rate(0.03), rate(p1), 0.0,
                      n_fix(0.03 * 0.97, p1 * (1 - p1), p1 - 0.03)))
    sweep: list[dict[str, Any]] = []
    for name, kind, control, treatment, shift, nf in cells:
        sims = int(min(2000, args.budget // (4 * nf)))
        t = run(kind, (control, treatment, shift), horizon=4 * nf, sims=sims, rng=rng)
        sweep.append({"effect": name, "n_fix": nf, "sims": sims,
                      "mean_over_n_fix": {k: round(float(v.mean()) / nf, 3)
                                          for k, v in t.items()}})
        print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    aa = {}
    aa_cells: list[tuple[str, Kind, Sampler, float]] = [
        ("error rate 3%", "proportion", rate(0.03), 0.0), ("latency CV 1.3", "mean", lat(1.0), 1.0)]
    for name, kind, sampler, shift in aa_cells:
        t = run(kind, (sampler, sampler, shift), horizon=2500, sims=400, rng=rng)
        aa[name] = {k: round(float((v < 2500).mean()), 4) for k, v in t.items()}
    worst = {k: max(float(c["mean_over_n_fix"][k]) for c in sweep) for k in VARIANTS}
    report("experiments_grid", {
        "seed": args.seed, "budget": args.budget, "variants": {
            k: dict(zip(("grid_from_per_arm", "grid_to_per_arm", "points_per_sign", "spread",
                         "burn_in_per_arm"), v, strict=True)) for k, v in VARIANTS.items()},
        "sweep": sweep, "worst_mean_over_n_fix": worst, "aa_false_positive_rate_2500": aa,
        "seconds": round(time.perf_counter() - started, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
