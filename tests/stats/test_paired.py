"""Paired comparisons: McNemar, Newcombe's interval, paired bootstrap and permutation, against references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from evalsuite.stats import paired
from evalsuite.stats.paired import (
    Discordance,
    bootstrap_interval_of_mean,
    bootstrap_mean_differences,
    discordance,
    mcnemar_exact,
    newcombe_interval,
    permutation_pvalue,
)

Array = NDArray[np.float64]


def statsmodels_mcnemar(table: Discordance) -> float:
    matrix = [[table.both, table.baseline_only], [table.variant_only, table.neither]]
    return float(mcnemar(matrix, exact=True).pvalue)


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval written out (Newcombe 1998, method 3)."""
    p = x / n
    centre = 2 * n * p + z**2
    spread = z * math.sqrt(z**2 + 4 * n * p * (1 - p))
    return (centre - spread) / (2 * (n + z**2)), (centre + spread) / (2 * (n + z**2))


def newcombe_by_hand(a: int, b: int, c: int, d: int, confidence: float) -> tuple[float, float]:
    """Method 10 of Newcombe (1998, Stat Med 17:2635), for p2 - p1 = (a + c)/n - (a + b)/n.

    phi is the correlation of the two margins with a*d - b*c shrunk towards 0 by n/2 when positive.
    """
    n = a + b + c + d
    z = stats.norm.ppf(0.5 + confidence / 2)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    product = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if product == 0:
        phi = 0.0
    elif cross > n / 2:
        phi = (cross - n / 2) / math.sqrt(product)
    elif cross >= 0:
        phi = 0.0
    else:
        phi = cross / math.sqrt(product)
    delta = p2 - p1
    low = delta - math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    high = delta + math.sqrt((u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2)
    return low, high


def exact_sign_flip_pvalue(differences: Array) -> float:
    """Two-sided p-value of the mean difference over all 2^n sign flips (scipy's convention for ties)."""
    n = differences.size
    signs = 1 - 2 * np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.float64)  # (2^n, n)
    null = signs @ differences / n
    observed = differences.mean()
    slack = 1e-14 * max(1.0, abs(observed))
    greater = np.mean(null >= observed - slack)
    less = np.mean(null <= observed + slack)
    return float(min(1.0, 2 * min(greater, less)))


def test_discordance_counts_the_four_cells() -> None:
    table = discordance([1, 1, 0, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0, 0])
    assert table == Discordance(both=2, baseline_only=2, variant_only=1, neither=2)
    assert (table.n, table.flips) == (7, 3)
    assert table.difference == pytest.approx(-1 / 7)
    assert table.flip_rate == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="differ in length"):
        discordance([1, 0], [1, 0, 1])


def test_mcnemar_exact_matches_statsmodels() -> None:
    rng = np.random.default_rng(0)
    for n, flip in [(30, 0.2), (200, 0.1), (1000, 0.3), (5000, 0.02)]:
        x = rng.random(n) < 0.6
        y = np.where(rng.random(n) < flip, ~x, x)
        table = discordance(x, y)
        assert mcnemar_exact(table) == pytest.approx(statsmodels_mcnemar(table), abs=1e-9)


@pytest.mark.parametrize(
    "table",
    [
        Discordance(40, 0, 0, 10),  # no discordant pairs: p == 1, no exception
        Discordance(40, 0, 6, 10),  # b = 0, c > 0
        Discordance(40, 9, 0, 10),
        Discordance(3, 1, 1, 0),
        Discordance(0, 7, 19, 0),
    ],
)
def test_mcnemar_exact_edge_cases_match_statsmodels(table: Discordance) -> None:
    p = mcnemar_exact(table)
    assert p == pytest.approx(statsmodels_mcnemar(table), abs=1e-9)
    if table.flips == 0:
        assert p == 1.0
    if table.baseline_only == 0 and table.variant_only > 0:
        assert p == pytest.approx(2 * 0.5**table.variant_only)


def test_newcombe_reproduces_the_published_example() -> None:
    # Cavo et al. (2012) in Fagerland, Lydersen & Laake (2014, ch. 8; R package contingencytables):
    # rows = before, columns = after, [[59, 6], [16, 80]]; Newcombe square-and-add for p(before) - p(after):
    # estimate -0.0621, 95% CI -0.1186 to -0.0046. Here baseline = before, variant = after, so negated.
    table = Discordance(both=59, baseline_only=6, variant_only=16, neither=80)
    low, high = newcombe_interval(table, 0.95)
    assert table.difference == pytest.approx(0.0621, abs=5e-5)
    assert low == pytest.approx(0.0046, abs=5e-5)
    assert high == pytest.approx(0.1186, abs=5e-5)


@pytest.mark.parametrize(
    ("a", "b", "c", "d"),
    [(59, 6, 16, 80), (1, 1, 7, 12), (14, 5, 0, 22), (500, 40, 55, 405), (3, 20, 2, 4), (0, 5, 9, 0)],
)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_newcombe_matches_the_formula_written_by_hand(
    a: int, b: int, c: int, d: int, confidence: float
) -> None:
    expected = newcombe_by_hand(a, b, c, d, confidence)
    assert newcombe_interval(Discordance(a, b, c, d), confidence) == pytest.approx(expected, abs=1e-9)


def test_newcombe_interval_properties() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b, c, d = (int(v) for v in rng.multinomial(int(rng.integers(5, 400)), rng.dirichlet(np.ones(4))))
        table = Discordance(a, b, c, d)
        low, high = newcombe_interval(table)
        assert -1.0 <= low <= table.difference <= high <= 1.0
        swapped = newcombe_interval(Discordance(a, c, b, d))
        assert swapped == pytest.approx((-high, -low), abs=1e-12)
        narrower = newcombe_interval(table, 0.8)
        assert low <= narrower[0] <= narrower[1] <= high


@pytest.mark.parametrize(
    "table", [Discordance(30, 0, 0, 20), Discordance(50, 0, 0, 0), Discordance(0, 0, 0, 9)]
)
def test_newcombe_without_discordant_pairs_is_symmetric_about_zero(table: Discordance) -> None:
    low, high = newcombe_interval(table)
    assert low < 0.0 < high
    assert low == pytest.approx(-high, abs=1e-12)
    margin_low, margin_high = wilson(table.both, table.n, 1.959963984540054)
    p = table.both / table.n
    if table.both in (0, table.n):  # one margin's Wilson half-width on its open side, nothing more
        assert high == pytest.approx(max(p - margin_low, margin_high - p), abs=1e-9)
    else:  # strongly correlated margins: narrower than either Wilson interval
        assert high < min(p - margin_low, margin_high - p)


def test_bootstrap_paths_give_the_same_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    d = rng.choice([-1.0, 0.0, 1.0], p=[0.12, 0.7, 0.18], size=1000)
    multinomial = bootstrap_mean_differences(d, np.random.default_rng(3), 20_000)
    monkeypatch.setattr(paired, "FEW_DISTINCT", 0)  # force the index path on the same data
    indexed = bootstrap_mean_differences(d, np.random.default_rng(4), 20_000)
    sd = float(np.std(d, ddof=0) / math.sqrt(d.size))  # the bootstrap distribution's exact sd
    for replicates in (multinomial, indexed):
        assert replicates.shape == (20_000,)
        assert replicates.mean() == pytest.approx(d.mean(), abs=4 * sd / math.sqrt(20_000))
        assert replicates.std() == pytest.approx(sd, rel=0.03)
    assert np.quantile(multinomial, [0.025, 0.975]) == pytest.approx(
        np.quantile(indexed, [0.025, 0.975]), abs=0.003
    )


def test_bootstrap_interval_of_binary_differences_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    base = rng.random(1000) < 0.7
    variant = np.where(rng.random(1000) < 0.25, rng.random(1000) < 0.75, base)
    d = variant.astype(np.float64) - base
    assert np.unique(d).size <= paired.FEW_DISTINCT  # the multinomial path
    ours = bootstrap_interval_of_mean(d, np.random.default_rng(6), 0.95, 10_000)
    theirs = stats.bootstrap(
        (d,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(7)
    )
    assert ours == pytest.approx(tuple(theirs.confidence_interval), abs=0.003)


def test_bootstrap_interval_of_continuous_differences_matches_scipy() -> None:
    d = np.random.default_rng(8).normal(0.05, 0.4, size=500)
    assert np.unique(d).size > paired.FEW_DISTINCT  # the index path
    ours = bootstrap_interval_of_mean(d, np.random.default_rng(9), 0.9, 10_000)
    theirs = stats.bootstrap(
        (d,),
        np.mean,
        confidence_level=0.9,
        n_resamples=10_000,
        method="percentile",
        rng=np.random.default_rng(10),
    )
    assert ours == pytest.approx(tuple(theirs.confidence_interval), abs=0.003)


def test_permutation_pvalue_agrees_with_scipy_and_is_seeded() -> None:
    # Our sign flips draw a different random stream than scipy's, so agreement is within Monte Carlo error
    # (sd of a p near 0.05 with 99,999 resamples: about 0.0007); the exact case is tested below to 1e-9.
    rng = np.random.default_rng(11)
    x = rng.normal(size=40)
    y = x + rng.normal(0.1, 0.5, size=40)
    ours = permutation_pvalue(x, y, np.random.default_rng(12), 99_999)
    theirs = stats.permutation_test(
        (x, y),
        lambda a, b, axis: np.mean(b - a, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=99_999,
        rng=np.random.default_rng(12),
    )
    assert 0.005 < float(theirs.pvalue) < 0.5
    assert ours == pytest.approx(float(theirs.pvalue), abs=0.005)
    assert permutation_pvalue(x, y, np.random.default_rng(12), 99_999) == ours


def test_permutation_pvalue_equals_the_exact_enumeration_at_n_10() -> None:
    # 2^10 = 1024 sign flips is fewer than the resamples, so scipy enumerates them all: exact agreement
    rng = np.random.default_rng(13)
    x = rng.normal(size=10)
    y = x + rng.normal(0.4, 1.0, size=10)
    exact = exact_sign_flip_pvalue(y - x)
    assert 0.01 < exact < 0.9  # neither trivial end
    assert permutation_pvalue(x, y, np.random.default_rng(14), 99_999) == pytest.approx(exact, abs=1e-9)


def test_permutation_pvalue_is_near_the_exact_enumeration_at_n_17() -> None:
    # 2^17 = 131072 sign flips exceed 99999 resamples: a Monte Carlo p-value (sd < 0.0016)
    rng = np.random.default_rng(15)
    x = rng.normal(size=17)
    y = x + rng.normal(0.3, 1.0, size=17)
    exact = exact_sign_flip_pvalue(y - x)
    assert 0.01 < exact < 0.9
    assert permutation_pvalue(x, y, np.random.default_rng(16), 99_999) == pytest.approx(exact, abs=0.01)


def test_permutation_pvalue_of_identical_scores_is_one() -> None:
    x = np.random.default_rng(17).normal(size=30)
    assert permutation_pvalue(x, x.copy(), np.random.default_rng(0)) == 1.0
