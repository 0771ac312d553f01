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
    McNemarTest,
    bootstrap_interval_of_mean,
    clustered_binary,
    discordance,
    mcnemar,
    mcnemar_midp,
    permutation_pvalue,
    score_interval,
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


def mcnemar_rejection_rate(tables: list[Discordance], test: McNemarTest = "mid-p") -> float:
    pvalues: dict[tuple[int, int], float] = {}  # the p-value depends on (b, c) only; many tables repeat them
    rejected = 0
    for table in tables:
        key = (table.baseline_only, table.variant_only)
        if key not in pvalues:
            pvalues[key] = mcnemar(table, test)
        rejected += pvalues[key] < ALPHA
    return rejected / len(tables)


def agreement_cells(accuracy: float, agreement: float, difference: float = 0.0) -> list[float]:
    """(both, baseline only, variant only, neither) for a baseline of ``accuracy``, a share ``agreement``
    of samples answered alike, and ``difference`` = p(variant) - p(baseline)."""
    flips = 1 - agreement
    baseline_only, variant_only = (flips - difference) / 2, (flips + difference) / 2
    both = accuracy - baseline_only
    return [both, baseline_only, variant_only, 1 - both - baseline_only - variant_only]


def midp_and_exact_rates(n: int, agreement: float, difference: float, seed: int) -> tuple[float, float]:
    """(mid-p, exact) rejection rates over 3,000 simulated comparisons, base accuracy 0.6."""
    tables = simulated_tables(seed, 3000, n, agreement_cells(0.6, agreement, difference))
    return mcnemar_rejection_rate(tables, "mid-p"), mcnemar_rejection_rate(tables, "exact")


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


def score_coverage(cells: list[float], n: int, seed: int) -> float:
    """How often the score interval agreeing with the mid-p test covers the true difference c - b."""
    truth = cells[2] - cells[1]
    covered = 0
    tables = simulated_tables(seed, 4000, n, cells)
    for table in tables:
        low, high = score_interval(table, 0.95, mcnemar_midp(table))
        covered += low <= truth <= high
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
        low, _ = score_interval(table, 1 - 2 * ALPHA, mcnemar_midp(table))
        declared += non_inferiority(low, margin, ALPHA).non_inferior
    return declared / len(tables)


def paired_and_unpaired_power() -> tuple[float, float]:
    """(mid-p McNemar, unpaired two-proportion z-test) power: 5 points at n = 1000, 70% agreement."""
    tables = simulated_tables(50, 2000, 1000, [0.55, 0.125, 0.175, 0.15])
    unpaired = 0
    for table in tables:
        correct = [table.both + table.variant_only, table.both + table.baseline_only]
        unpaired += proportions_ztest(correct, [table.n, table.n])[1] < ALPHA
    return mcnemar_rejection_rate(tables), unpaired / len(tables)


def clustered_null_rates(simulations: int = 2000) -> tuple[float, float]:
    """(cluster-robust paired t never bolder than McNemar, mid-p McNemar alone) false-positive rates
    when the variant's effect varies by cluster and averages zero: 30 clusters of 20 samples, base
    accuracy 0.6, each cluster's effect drawn from N(0, 0.1^2) (clipped to +-0.3), applied by turning
    wrong answers right (or right ones wrong)."""
    rng = np.random.default_rng(60)
    clusters, size = 30, 20
    labels = np.repeat(np.arange(clusters), size)
    robust = plain = 0
    for _ in range(simulations):
        baseline = rng.random(clusters * size) < 0.6
        effect = np.clip(rng.normal(0.0, 0.1, clusters), -0.3, 0.3)[labels]
        chance = rng.random(clusters * size)
        gained = ~baseline & (effect > 0) & (chance < effect / 0.4)
        lost = baseline & (effect < 0) & (chance < -effect / 0.6)
        variant = (baseline | gained) & ~lost
        table = discordance(baseline, variant)
        result = clustered_binary(table, variant.astype(float) - baseline, labels.tolist(), 0.95, ALPHA)
        assert result is not None
        robust += result.p_value < ALPHA
        plain += mcnemar(table) < ALPHA
    return robust / simulations, plain / simulations


def test_mcnemar_false_positive_rate_at_high_discordance() -> None:
    # n = 500, p = 0.7: about 105 (rho 0.5) or 210 (rho 0) pairs are discordant; mid-p's exact size there
    # is 0.048 / 0.049. 10,000 simulated comparisons (sd of the rate 0.002).
    for rho in (0.0, 0.5):
        assert 0.03 <= mcnemar_null_rate(rho) <= 0.06


# The exact size of each test, summed over every table (b + c ~ Binomial(n, 1 - agreement), b | b + c ~
# Binomial(b + c, 1/2)), for reference (alpha 0.05):
#
#   n     agreement  mid-p   exact        n     agreement  mid-p   exact
#   100   0.70       0.0450  0.0307       300   0.97       0.0397  0.0203
#   100   0.90       0.0412  0.0220       1000  0.70       0.0498  0.0437
#   100   0.97       0.0088  0.0020       1000  0.90       0.0490  0.0395
#   300   0.70       0.0489  0.0389       1000  0.97       0.0452  0.0309
#   300   0.90       0.0452  0.0308
#
# At n = 100 and 97% agreement three pairs are discordant on average. A test that conditions on the
# discordant pairs cannot reject with four or fewer (the smallest mid-p p-value with four is 0.0625),
# and more than four occur in 18% of comparisons: no such test can reach a size of 0.03 there.
@pytest.mark.parametrize("n", [100, 300, 1000])
@pytest.mark.parametrize("agreement", [0.7, 0.9, 0.97])
def test_midp_false_positive_rate(n: int, agreement: float) -> None:
    midp, exact = midp_and_exact_rates(n, agreement, 0.0, seed=n + int(agreement * 100))
    assert midp <= 0.06  # 3,000 comparisons: sd of the rate about 0.004
    assert midp >= exact
    if (n, agreement) != (100, 0.97):
        assert midp >= 0.03
    else:
        assert midp >= 0.004  # exact size 0.0088; the exact test's 0.0020


@pytest.mark.parametrize(
    ("n", "agreement", "difference"), [(100, 0.9, 0.06), (300, 0.97, 0.02), (1000, 0.9, 0.02)]
)
def test_midp_is_at_least_as_powerful_as_the_exact_test(n: int, agreement: float, difference: float) -> None:
    midp, exact = midp_and_exact_rates(n, agreement, difference, seed=70 + n)
    assert midp >= exact + 0.03  # a real gain where the variant differs, not a tie


def test_permutation_false_positive_rate() -> None:
    # 999 random sign flips: p-values on a grid of 1/1000, so P(p <= 0.05) is 0.05 exactly under the null
    assert 0.03 <= permutation_null_rate() <= 0.07


def test_paired_bootstrap_false_positive_rate() -> None:
    assert 0.03 <= bootstrap_rate_excluding(0.0, seed=21) <= 0.07


def test_wilson_coverage() -> None:
    assert 0.93 <= wilson_coverage() <= 0.97  # exact coverage at n = 200, p = 0.3: 0.9466


@pytest.mark.parametrize(
    ("cells", "n", "seed"),
    [
        ([0.5, 0.08, 0.14, 0.28], 300, 31),  # difference +0.06, 22% discordant
        (agreement_cells(0.6, 0.97, -0.02), 300, 34),  # high agreement, variant 2 points worse
        (agreement_cells(0.6, 0.9, 0.05), 100, 35),
        (agreement_cells(0.6, 0.7, 0.0), 1000, 36),
    ],
)
def test_score_interval_coverage(cells: list[float], n: int, seed: int) -> None:
    assert 0.93 <= score_coverage(cells, n, seed) <= 0.97


def test_clustered_paired_false_positive_rate() -> None:
    robust, plain = clustered_null_rates()
    assert 0.03 <= robust <= 0.07
    assert plain > 0.15  # McNemar counts 600 samples as independent and finds differences that are not there


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
