"""The two-sample tests written on scipy.special give scipy.stats' statistics and
p-values, and the processor no longer imports scipy.stats or scipy.optimize."""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats

from stream_mlops.stats.twosample import (
    anderson_darling,
    chi_square,
    ks_two_sample,
    mann_whitney,
    wasserstein,
)

SIZES = [(1, 1), (2, 3), (5, 5), (7, 20), (8, 9), (9, 9), (30, 30), (100, 37), (1000, 500),
         (999, 500), (1000, 1000), (2000, 700)]


def samples() -> list[tuple[np.ndarray, np.ndarray]]:
    """Equal and unequal sizes, from 1 to 2,000 values; continuous, tied (rounded to
    halves) and shifted by 0.3 sd."""
    rng = np.random.default_rng(0)
    out = []
    for n1, n2 in SIZES:
        for kind in ("continuous", "ties", "shift"):
            a = rng.normal(size=n1)
            b = rng.normal(0.3 if kind == "shift" else 0.0, 1.0, size=n2)
            if kind == "ties":
                a, b = np.round(a * 2), np.round(b * 2)
            out.append((a, b))
    return out


CASES = samples()


def close(mine: tuple[float, float], theirs: tuple[float, float]) -> bool:
    return all(abs(m - t) <= 1e-12 or abs(m - t) <= 1e-9 * abs(t)
               for m, t in zip(mine, theirs, strict=True))


@pytest.mark.parametrize(("x", "y"), CASES)
def test_kolmogorov_smirnov_is_scipys(x: np.ndarray, y: np.ndarray) -> None:
    ref = stats.ks_2samp(x, y)
    assert close(ks_two_sample(x, y), (ref.statistic, ref.pvalue))


@pytest.mark.parametrize(("x", "y"), [c for c in CASES if np.unique(np.concatenate(c)).size > 1])
def test_mann_whitney_is_scipys(x: np.ndarray, y: np.ndarray) -> None:
    ref = stats.mannwhitneyu(x, y, alternative="two-sided")
    assert close(mann_whitney(x, y), (ref.statistic, ref.pvalue))


@pytest.mark.parametrize(("x", "y"), [c for c in CASES if c[0].size + c[1].size >= 4
                                      and np.unique(np.concatenate(c)).size > 1])
def test_anderson_darling_is_scipys(x: np.ndarray, y: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy warns when it clips the p
        ref = stats.anderson_ksamp([x, y], variant="midrank")
    assert close(anderson_darling([x, y]), (ref.statistic, ref.pvalue))


def test_anderson_darling_of_three_samples_is_scipys() -> None:
    rng = np.random.default_rng(4)
    groups = [rng.normal(0, 1, 50), rng.normal(0.2, 1, 60), np.round(rng.normal(0, 1, 40))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = stats.anderson_ksamp(groups, variant="midrank")
    assert close(anderson_darling(groups), (ref.statistic, ref.pvalue))


@pytest.mark.parametrize(("x", "y"), CASES)
def test_wasserstein_is_scipys(x: np.ndarray, y: np.ndarray) -> None:
    assert wasserstein(x, y) == pytest.approx(stats.wasserstein_distance(x, y), rel=1e-12,
                                              abs=1e-15)


@pytest.mark.parametrize("table", [[[95, 5], [80, 20]], [[10, 0, 3], [2, 5, 7]], [[3, 4]],
                                   [[1, 2], [3, 4]], [[50, 1], [49, 2]],
                                   [[20, 30, 50, 1], [25, 25, 45, 3]]])
def test_chi_square_is_scipys(table: list[list[int]]) -> None:
    ref = stats.chi2_contingency(np.array(table, float))
    assert close(chi_square(table), (ref.statistic, ref.pvalue))


def test_exact_kolmogorov_smirnov_counts_every_interleaving() -> None:
    # Independent of scipy: with 4 and 6 distinct values, each of the C(10, 4) = 210
    # interleavings is equally likely; the p-value is the share whose distance is at
    # least the observed one.
    x, y = np.array([0.5, 2.5, 3.5, 9.5]), np.array([1.0, 2.0, 4.0, 5.0, 6.0, 7.0])
    observed = ks_two_sample(x, y)

    def distance(xs: tuple[int, ...]) -> float:
        i = j = 0
        worst = 0.0
        for pos in range(10):
            if pos in xs:
                i += 1
            else:
                j += 1
            worst = max(worst, abs(i / 4 - j / 6))
        return worst

    ds = [distance(c) for c in itertools.combinations(range(10), 4)]
    assert observed.pvalue == pytest.approx(
        sum(d >= observed.statistic - 1e-12 for d in ds) / len(ds), rel=1e-12)


def test_exact_mann_whitney_counts_every_interleaving() -> None:
    x, y = np.array([3.0, 8.0, 9.0]), np.array([1.0, 2.0, 4.0, 5.0, 6.0, 7.0])
    out = mann_whitney(x, y)
    assert out.statistic == 2 + 6 + 6  # pairs where the x value is larger
    u = [sum(v > w for v in c for w in set(range(9)) - set(c))
         for c in itertools.combinations(range(9), 3)]
    tail = max(out.statistic, 18 - out.statistic)
    assert out.pvalue == pytest.approx(
        min(1.0, 2 * sum(v >= tail for v in u) / len(u)), rel=1e-12)


def test_mann_whitney_past_20000_pairs_is_the_normal_approximation() -> None:
    # 5 x 5,000 values without ties: scipy computes the exact law, which the recursion
    # here would take seconds for; the approximation is within a few percent of it.
    rng = np.random.default_rng(6)
    x, y = rng.normal(0.5, 1.0, 5), rng.normal(size=5000)
    out, exact = mann_whitney(x, y), stats.mannwhitneyu(x, y)
    approx = stats.mannwhitneyu(x, y, method="asymptotic")
    assert out.statistic == exact.statistic
    assert out.pvalue == pytest.approx(approx.pvalue, rel=1e-12)
    assert out.pvalue == pytest.approx(exact.pvalue, rel=0.05)


def test_large_samples_use_kolmogorovs_limit_close_to_scipys_exact() -> None:
    rng = np.random.default_rng(5)
    for shift in (0.0, 0.02, 0.04):
        x, y = rng.normal(size=20_000), rng.normal(shift, 1.0, size=15_000)
        mine, ref = ks_two_sample(x, y), stats.ks_2samp(x, y)
        assert mine.statistic == pytest.approx(ref.statistic, rel=1e-12)
        assert mine.pvalue == pytest.approx(ref.pvalue, rel=0.05)


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        ks_two_sample([], [1.0])
    for test in (ks_two_sample, mann_whitney, wasserstein):
        with pytest.raises(ValueError, match="NaN"):
            test([1.0, float("nan")], [2.0])
    with pytest.raises(ValueError, match="NaN"):
        anderson_darling([[1.0, 2.0], [3.0, float("nan")]])
    with pytest.raises(ValueError, match="all values are equal"):
        anderson_darling([[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="positive total"):
        chi_square([[0, 0], [1, 2]])


def test_the_processor_imports_neither_scipy_stats_nor_optimize() -> None:
    # ~46 MB of the empty process's ~130 MB: the reason this module exists.
    code = ("import sys, stream_mlops.cli.main, stream_mlops.pipeline.service; "
            "print(sorted(m for m in ('scipy.stats', 'scipy.optimize') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
