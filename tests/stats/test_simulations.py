"""Simulations with fixed seeds: false-positive rates, coverage, non-inferiority error and power.

Each rate is a helper returning the simulated value, so the numbers can be printed outside pytest;
tables are drawn all at once with numpy and only our scalar functions run in a loop.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from statsmodels.stats.proportion import proportions_ztest

from evalsuite.stats.decisions import non_inferiority
from evalsuite.stats.intervals import mean_interval, mean_stderr, wilson_interval
from evalsuite.stats.paired import (
    Discordance,
    bootstrap_interval_of_mean,
    mcnemar_exact,
    newcombe_interval,
    permutation_pvalue,
)
from evalsuite.stats.power import mcnemar_power

ALPHA = 0.05
Z95 = 1.959963984540054
Array = NDArray[np.float64]


def null_cells(p: float, rho: float) -> list[float]:
    """(both, baseline only, variant only, neither): both correct with probability p, correlation rho."""
    both = p * p + rho * p * (1 - p)
    return [both, p - both, p - both, 1 - 2 * p + both]


def simulated_tables(seed: int, simulations: int, n: int, cells: list[float]) -> list[Discordance]:
    counts = np.random.default_rng(seed).multinomial(n, cells, size=simulations)  # (simulations, 4)
    return [Discordance(*(int(v) for v in row)) for row in counts]


def mcnemar_rejection_rate(tables: list[Discordance]) -> float:
    pvalues: dict[tuple[int, int], float] = {}  # the p-value depends on (b, c) only; many tables repeat them
    rejected = 0
    for table in tables:
        key = (table.baseline_only, table.variant_only)
        if key not in pvalues:
            pvalues[key] = mcnemar_exact(table)
        rejected += pvalues[key] < ALPHA
    return rejected / len(tables)


def exchangeable_scores(rng: np.random.Generator, n: int, shift: float) -> tuple[Array, Array]:
    """Continuous per-sample scores of two models sharing each sample's difficulty; skewed noise."""
    difficulty = rng.normal(0.0, 1.0, size=n)
    baseline = difficulty + rng.gamma(2.0, 0.5, size=n)
    variant = difficulty + rng.gamma(2.0, 0.5, size=n) + shift
    return baseline, variant


def mcnemar_null_rate(rho: float) -> float:
    return mcnemar_rejection_rate(simulated_tables(10 + int(10 * rho), 10_000, 500, null_cells(0.7, rho)))


def permutation_null_rate(simulations: int = 2000) -> float:
    rng = np.random.default_rng(20)
    rejected = 0
    for _ in range(simulations):
        baseline, variant = exchangeable_scores(rng, 30, 0.0)
        rejected += permutation_pvalue(baseline, variant, rng, 999) <= ALPHA
    return rejected / simulations


def bootstrap_rate_excluding(shift: float, seed: int, simulations: int = 2000) -> float:
    """How often the paired bootstrap 95% interval of the mean difference excludes the true ``shift``.

    2,000 resamples: with 1,000 the noise in the 2.5% and 97.5% quantiles alone pushes the rate from 0.05
    towards 0.06 (the project's default is 10,000).
    """
    rng = np.random.default_rng(seed)
    missed = 0
    for _ in range(simulations):
        baseline, variant = exchangeable_scores(rng, 100, shift)
        low, high = bootstrap_interval_of_mean(variant - baseline, rng, 0.95, 2000)
        missed += not low <= shift <= high
    return missed / simulations


def wilson_coverage() -> float:
    n, p = 200, 0.3
    bounds = np.array([wilson_interval(k, n) for k in range(n + 1)])  # every possible count once
    successes = np.random.default_rng(30).binomial(n, p, size=10_000)
    return float(np.mean((bounds[successes, 0] <= p) & (p <= bounds[successes, 1])))


def newcombe_coverage() -> float:
    cells = [0.5, 0.08, 0.14, 0.28]  # true difference c - b = 0.06
    covered = 0
    tables = simulated_tables(31, 4000, 300, cells)
    for table in tables:
        low, high = newcombe_interval(table, 0.95)
        covered += low <= 0.06 <= high
    return covered / len(tables)


def clustered_coverage() -> tuple[float, float]:
    """(cluster-robust, plain) coverage of the mean: 50 clusters of 10 with intra-cluster correlation 0.3."""
    rng = np.random.default_rng(32)
    clusters, size, icc, simulations = 50, 10, 0.3, 2000
    labels = np.repeat(np.arange(clusters), size).tolist()
    robust = plain = 0
    for _ in range(simulations):
        effects = np.repeat(rng.normal(0.0, np.sqrt(icc), clusters), size)
        x = 0.5 + effects + rng.normal(0.0, np.sqrt(1 - icc), clusters * size)
        interval = mean_interval(x, 0.95, labels)
        assert interval.method == "cluster-robust t"
        assert interval.low is not None and interval.high is not None
        robust += interval.low <= 0.5 <= interval.high
        stderr = mean_stderr(x)
        assert stderr is not None
        plain += abs(x.mean() - 0.5) <= Z95 * stderr
    return robust / simulations, plain / simulations


def non_inferiority_error(margin: float = 0.05) -> float:
    """How often a variant exactly ``margin`` worse is declared non-inferior, as compare.py decides it."""
    cells = [0.6, 0.05 + margin, 0.05, 0.35 - margin]  # variant - baseline = c - b = -margin
    tables = simulated_tables(40, 4000, 1000, cells)
    declared = 0
    for table in tables:
        low, _ = newcombe_interval(table, 1 - 2 * ALPHA)
        declared += non_inferiority(low, margin, ALPHA).non_inferior
    return declared / len(tables)


def paired_and_unpaired_power() -> tuple[float, float]:
    """(exact McNemar, unpaired two-proportion z-test) power: 5 points at n = 1000, 70% agreement."""
    tables = simulated_tables(50, 2000, 1000, [0.55, 0.125, 0.175, 0.15])
    unpaired = 0
    for table in tables:
        correct = [table.both + table.variant_only, table.both + table.baseline_only]
        unpaired += proportions_ztest(correct, [table.n, table.n])[1] < ALPHA
    return mcnemar_rejection_rate(tables), unpaired / len(tables)


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_mcnemar_false_positive_rate(rho: float) -> None:
    # The exact (conditional) test is conservative when few pairs are discordant. At n = 500 and p = 0.7,
    # about 105 (rho 0.5) or 210 (rho 0) pairs are discordant and its exact size is 0.040 or 0.043:
    # inside [0.03, 0.07]. 10,000 simulated comparisons (sd of the rate 0.002).
    assert 0.03 <= mcnemar_null_rate(rho) <= 0.07


def test_permutation_false_positive_rate() -> None:
    # 999 random sign flips: p-values on a grid of 1/1000, so P(p <= 0.05) is 0.05 exactly under the null
    assert 0.03 <= permutation_null_rate() <= 0.07


def test_paired_bootstrap_false_positive_rate() -> None:
    assert 0.03 <= bootstrap_rate_excluding(0.0, seed=21) <= 0.07


def test_wilson_coverage() -> None:
    assert 0.93 <= wilson_coverage() <= 0.97  # exact coverage at n = 200, p = 0.3: 0.9466


def test_newcombe_coverage() -> None:
    assert 0.93 <= newcombe_coverage() <= 0.97


def test_paired_bootstrap_coverage() -> None:
    assert 0.93 <= 1 - bootstrap_rate_excluding(0.1, seed=33) <= 0.97


def test_cluster_robust_coverage() -> None:
    robust, plain = clustered_coverage()
    assert 0.93 <= robust <= 0.97
    assert plain < 0.85  # design effect 1 + 9 * 0.3 = 3.7: the plain error is half what it should be


def test_non_inferiority_type_one_error_at_the_margin() -> None:
    assert non_inferiority_error(0.05) <= ALPHA + 0.01


def test_paired_test_is_more_powerful_than_the_unpaired_one() -> None:
    paired, unpaired = paired_and_unpaired_power()
    assert paired > unpaired
    assert paired == pytest.approx(mcnemar_power(0.05, 1000, 0.3, ALPHA), abs=0.04)
