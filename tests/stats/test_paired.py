"""Paired comparisons: McNemar (mid-p and exact), Tango's score interval, the cluster-robust paired test,
paired bootstrap and permutation, against references."""

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
    clustered_binary,
    clustered_paired,
    discordance,
    mcnemar_exact,
    mcnemar_midp,
    permutation_pvalue,
    score_interval,
    tango_statistic,
)

Array = NDArray[np.float64]


def statsmodels_mcnemar(table: Discordance) -> float:
    matrix = [[table.both, table.baseline_only], [table.variant_only, table.neither]]
    return float(mcnemar(matrix, exact=True).pvalue)


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


CAVO = Discordance(both=59, baseline_only=6, variant_only=16, neither=80)  # before = baseline
BENTUR = Discordance(both=1, baseline_only=1, variant_only=7, neither=12)


def test_midp_reproduces_the_published_examples() -> None:
    # Fagerland, Lydersen & Laake (2014, ch. 8; R package contingencytables, tests/testthat/test-ch8.R):
    # complete response before and after consolidation therapy (Cavo et al. 2012): mid-P = 0.034690.
    assert mcnemar_midp(CAVO) == pytest.approx(0.034690, abs=5e-7)
    # Airway hyper-responsiveness (Bentur et al. 2009), b = 1, c = 7: by hand over Binomial(8, 1/2),
    # exact 2 (1 + 8) / 256 and mid-p 2 (1 + 8 / 2) / 256.
    assert mcnemar_exact(BENTUR) == pytest.approx(18 / 256, abs=1e-12)
    assert mcnemar_midp(BENTUR) == pytest.approx(10 / 256, abs=1e-12)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (0, 5, 1 / 32),
        (5, 0, 1 / 32),
        (1, 5, 8 / 64),
        (2, 8, 67 / 1024),
        (4, 4, 1.0),
        (0, 0, 1.0),
        (0, 1, 0.5),
    ],
)
def test_midp_by_hand(b: int, c: int, expected: float) -> None:
    # 2 (P(X < m) + P(X = m) / 2) for m = min(b, c), X ~ Binomial(b + c, 1/2), capped at 1
    table = Discordance(10, b, c, 10)
    assert mcnemar_midp(table) == pytest.approx(expected, abs=1e-12)
    assert paired.mcnemar(table) == mcnemar_midp(table)
    assert paired.mcnemar(table, "exact") == mcnemar_exact(table)


def test_midp_is_never_above_the_exact_p() -> None:
    for b, c in itertools.product(range(25), repeat=2):
        table = Discordance(0, b, c, 0)
        assert mcnemar_midp(table) <= mcnemar_exact(table) + 1e-12


def test_tango_reproduces_the_published_example() -> None:
    # Same source as above: Tango asymptotic score CI for p(before) - p(after) = -0.0621 (95% CI -0.1240
    # to -0.0054); baseline = before here, so the interval of variant - baseline is its mirror image.
    low, high = score_interval(CAVO, 0.95, mcnemar_midp(CAVO))
    assert low == pytest.approx(0.0054, abs=5e-5)
    assert high == pytest.approx(0.1240, abs=5e-5)


def likelihood_score(table: Discordance, delta: float) -> float:
    """Tango's statistic with the restricted maximum-likelihood estimate found numerically: maximize
    b log p_b + c log(p_b + delta) + (a + d) log(1 - 2 p_b - delta) over p_b, then
    (c - b - n delta) / sqrt(n (p_b + p_c - delta^2))."""
    from scipy import optimize

    a, b, c, d, n = table.both, table.baseline_only, table.variant_only, table.neither, table.n

    def minus_log_likelihood(p_b: float) -> float:
        p_c, rest = p_b + delta, 1 - 2 * p_b - delta
        return -(b * math.log(p_b) + c * math.log(p_c) + (a + d) * math.log(rest))

    low, high = max(0.0, -delta) + 1e-12, (1 - delta) / 2 - 1e-12
    p_b = optimize.minimize_scalar(minus_log_likelihood, bounds=(low, high), method="bounded").x
    variance = n * (p_b + (p_b + delta) - delta**2)
    return (c - b - n * delta) / math.sqrt(variance)


@pytest.mark.parametrize("table", [CAVO, BENTUR, Discordance(500, 40, 55, 405), Discordance(3, 20, 2, 4)])
@pytest.mark.parametrize("delta", [-0.3, -0.05, 0.02, 0.1, 0.4])
def test_tango_statistic_matches_a_numerically_maximized_likelihood(table: Discordance, delta: float) -> None:
    assert tango_statistic(table, delta) == pytest.approx(likelihood_score(table, delta), rel=1e-4)


def test_tango_statistic_at_zero_is_mcnemars() -> None:
    assert tango_statistic(BENTUR, 0.0) == pytest.approx(6 / math.sqrt(8), abs=1e-12)
    assert tango_statistic(CAVO, 0.0) == pytest.approx(10 / math.sqrt(22), abs=1e-12)


@pytest.mark.parametrize("test", ["mid-p", "exact"])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_the_interval_excludes_zero_exactly_when_the_test_rejects(test: str, confidence: float) -> None:
    n = 40
    disagreements = 0
    for b in range(n + 1):
        for c in range(n + 1 - b):
            rest = n - b - c
            table = Discordance(rest // 2, b, c, rest - rest // 2)
            p = paired.mcnemar(table, "exact" if test == "exact" else "mid-p")
            low, high = score_interval(table, confidence, p)
            assert (low > 0 or high < 0) == (p < 1 - confidence), (b, c, p, low, high)
            assert low <= table.difference <= high
            z = stats.norm.isf((1 - confidence) / 2)
            disagreements += (abs(tango_statistic(table, 0.0)) > z) != (p < 1 - confidence)
    assert disagreements > 0  # the rescaling was exercised: Tango's own interval disagrees somewhere


def test_score_interval_properties() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b, c, d = (int(v) for v in rng.multinomial(int(rng.integers(5, 400)), rng.dirichlet(np.ones(4))))
        table = Discordance(a, b, c, d)
        p = mcnemar_midp(table)
        low, high = score_interval(table, 0.95, p)
        assert -1.0 <= low <= table.difference <= high <= 1.0
        swapped = score_interval(Discordance(a, c, b, d), 0.95, p)
        assert swapped == pytest.approx((-high, -low), abs=1e-7)
        narrower = score_interval(table, 0.8, p)
        assert low <= narrower[0] + 1e-9 and narrower[1] <= high + 1e-9


def test_clustered_paired_matches_statsmodels_cluster_robust_ols() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(12), 15)
    d = rng.choice([-1.0, 0.0, 1.0], p=[0.1, 0.75, 0.15], size=groups.size) + 0.0
    fitted = sm.OLS(d, np.ones((d.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    result = clustered_paired(d, groups.tolist(), 0.95, 0.05)
    assert result is not None
    assert result.clusters == 12
    assert result.mean == pytest.approx(float(fitted.params[0]), abs=1e-12)
    assert result.stderr == pytest.approx(float(fitted.bse[0]), rel=1e-9)
    assert result.p_value == pytest.approx(float(fitted.pvalues[0]), rel=1e-9)
    low, high = fitted.conf_int(0.05)[0]
    assert result.interval == pytest.approx((low, high), rel=1e-9)
    wide_low, wide_high = fitted.conf_int(0.10)[0]
    assert result.one_sided == pytest.approx((wide_low, wide_high), rel=1e-9)
    plain = float(np.std(d, ddof=1)) / math.sqrt(d.size)
    assert result.design_effect == pytest.approx(max(1.0, (float(fitted.bse[0]) / plain) ** 2), rel=1e-9)


def test_clustered_binary_is_never_bolder_than_mcnemar() -> None:
    # no pair disagrees: the cluster-robust standard error is 0 and its interval a point; McNemar's
    # score interval still says what 300 agreeing pairs cannot rule out
    table = Discordance(both=57, baseline_only=0, variant_only=0, neither=243)
    groups = [i // 100 for i in range(300)]
    only = clustered_paired(np.zeros(300), groups, 0.95, 0.05)
    assert only is not None and only.interval == (0.0, 0.0)
    result = clustered_binary(table, np.zeros(300), groups, 0.95, 0.05)
    assert result is not None
    assert result.p_value == 1.0
    assert result.interval == score_interval(table, 0.95, 1.0)
    assert result.interval[0] < -0.01 and result.interval[1] > 0.01
    assert result.one_sided == score_interval(table, 0.90, 1.0)
    assert result.design_effect == 1.0  # nothing varies: no design effect to speak of


def test_clustered_paired_needs_two_clusters() -> None:
    assert clustered_paired([1.0, 0.0, -1.0], ["a", "a", "a"], 0.95, 0.05) is None


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
