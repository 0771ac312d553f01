"""One model's interval: known answers from statsmodels and scipy on fixed inputs."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.typing import NDArray
from scipy import stats
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.proportion import proportion_confint

from evalsuite.stats.intervals import (
    bootstrap_interval,
    clustered_stderr,
    mean_interval,
    mean_stderr,
    wilson_interval,
)

Array = NDArray[np.float64]


def statsmodels_cluster_se(values: Array, groups: NDArray[np.int64]) -> float:
    fit = OLS(values, np.ones_like(values)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    return float(fit.bse[0])


def weighted_ratio(num: Array, den: Array, axis: int = -1) -> Array:
    return np.asarray(np.exp(-np.sum(num, axis=axis) / np.sum(den, axis=axis)))


def column_mean(x: Array, axis: int = -1) -> Array:
    return np.asarray(np.mean(x, axis=axis))


@pytest.mark.parametrize(
    ("successes", "n", "confidence"),
    [(0, 20, 0.95), (1, 20, 0.95), (7, 20, 0.95), (20, 20, 0.95), (613, 1000, 0.9), (33, 200, 0.99)],
)
def test_wilson_matches_statsmodels(successes: int, n: int, confidence: float) -> None:
    expected = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    assert wilson_interval(successes, n, confidence) == pytest.approx(expected, abs=1e-6)


def test_mean_stderr_matches_scipy_sem() -> None:
    rng = np.random.default_rng(1)
    for size in (2, 3, 50, 1001):
        x = rng.normal(0.3, 2.0, size)
        assert mean_stderr(x) == pytest.approx(float(stats.sem(x)), abs=1e-12)
    assert mean_stderr([0.5]) is None
    assert mean_stderr([]) is None


def test_clustered_stderr_matches_statsmodels_cluster_ols() -> None:
    rng = np.random.default_rng(2)
    sizes = rng.integers(1, 25, size=17)  # unbalanced clusters, some singletons
    groups = np.repeat(np.arange(sizes.size), sizes)
    x = rng.normal(size=sizes.size)[groups] + rng.normal(size=groups.size)
    expected = statsmodels_cluster_se(x, groups)
    assert clustered_stderr(x, groups.tolist()) == pytest.approx(expected, abs=1e-9)
    names = [f"subject-{g}" for g in groups]  # labels need not be integers nor sorted
    assert clustered_stderr(x, names) == pytest.approx(expected, abs=1e-9)


def test_clustered_stderr_on_binary_values_matches_statsmodels() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 12, size=300)
    x = (rng.random(300) < 0.2 + 0.05 * groups).astype(np.float64)
    assert clustered_stderr(x, groups.tolist()) == pytest.approx(statsmodels_cluster_se(x, groups), abs=1e-9)


def test_clustered_stderr_needs_two_clusters() -> None:
    assert clustered_stderr([0.1, 0.4, 0.9], ["a", "a", "a"]) is None
    assert clustered_stderr([], []) is None


def test_mean_interval_uses_wilson_for_binary_values() -> None:
    x = np.array([1.0] * 13 + [0.0] * 27)
    interval = mean_interval(x, 0.95)
    assert interval.method == "wilson"
    assert interval.value == pytest.approx(13 / 40)
    assert (interval.low, interval.high) == pytest.approx(
        proportion_confint(13, 40, alpha=0.05, method="wilson"), abs=1e-9
    )
    assert interval.stderr == pytest.approx(float(stats.sem(x)))


def test_mean_interval_uses_the_normal_interval_for_continuous_values() -> None:
    x = np.random.default_rng(4).gamma(2.0, 0.5, size=80)
    interval = mean_interval(x, 0.9)
    half = stats.norm.ppf(0.95) * stats.sem(x)
    assert interval.method == "normal"
    assert (interval.low, interval.high) == pytest.approx((x.mean() - half, x.mean() + half), abs=1e-12)


def test_mean_interval_uses_the_cluster_robust_error_when_clustered() -> None:
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(10), 8)
    x = (rng.random(80) < 0.6).astype(np.float64)  # binary, yet clusters win over Wilson
    interval = mean_interval(x, 0.95, clusters=groups.tolist())
    se = statsmodels_cluster_se(x, groups)
    assert interval.method == "cluster-robust t"
    assert interval.clusters == 10
    assert interval.stderr == pytest.approx(se, abs=1e-9)
    assert interval.low is not None and interval.high is not None
    # statsmodels' cluster-robust t interval (G - 1 degrees of freedom) is the known answer
    fit = sm.OLS(x, np.ones_like(x)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    assert (interval.low, interval.high) == pytest.approx(tuple(fit.conf_int(0.05)[0]), abs=1e-9)


def test_mean_interval_falls_back_without_enough_data() -> None:
    assert mean_interval([]).method == "none"
    single = mean_interval([0.25])
    assert (single.method, single.value, single.low) == ("none", 0.25, None)
    one_cluster = mean_interval([0.2, 0.4, 0.7], clusters=["x", "x", "x"])  # no clustered error: plain one
    assert one_cluster.method == "normal"


def test_bootstrap_interval_matches_scipy_with_the_same_seed() -> None:
    rng = np.random.default_rng(6)
    loglik = -rng.gamma(3.0, 10.0, size=300)
    words = rng.integers(5, 40, size=300).astype(np.float64)
    ours = bootstrap_interval((loglik, words), weighted_ratio, np.random.default_rng(11), 0.9, 3000)
    theirs = stats.bootstrap(
        (loglik, words),
        weighted_ratio,
        n_resamples=3000,
        confidence_level=0.9,
        method="percentile",
        paired=True,
        vectorized=True,
        rng=np.random.default_rng(11),
    )
    assert ours.method == "bootstrap percentile"
    assert ours.value == pytest.approx(float(weighted_ratio(loglik, words)), rel=1e-12)
    assert ours.low == pytest.approx(float(theirs.confidence_interval.low), abs=1e-9)
    assert ours.high == pytest.approx(float(theirs.confidence_interval.high), abs=1e-9)
    assert ours.stderr == pytest.approx(float(theirs.standard_error), abs=1e-9)


def test_bootstrap_interval_of_one_column_matches_scipy() -> None:
    x = np.random.default_rng(7).exponential(size=120)
    ours = bootstrap_interval((x,), column_mean, np.random.default_rng(12), 0.95, 2000)
    theirs = stats.bootstrap(
        (x,), column_mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(12)
    )
    assert (ours.low, ours.high) == pytest.approx(tuple(theirs.confidence_interval), abs=1e-9)
    assert ours.low < x.mean() < ours.high


def test_bootstrap_interval_needs_two_values() -> None:
    interval = bootstrap_interval(([0.4],), column_mean, np.random.default_rng(0))
    assert (interval.method, interval.value, interval.low) == ("none", 0.4, None)


def test_a_clustered_proportion_interval_stays_within_zero_and_one() -> None:
    # one success among 30 copies of 10 samples: the symmetric t interval would reach below zero
    values = [1.0] + [0.0] * 29
    clusters = [i // 3 for i in range(30)]
    interval = mean_interval(values, 0.95, clusters)
    assert interval.method == "cluster-robust t"
    assert interval.low == 0.0 and 0 < interval.high < 1
    assert interval.value - interval.high < 0  # the upper bound is the untouched t bound
    continuous = mean_interval([v - 0.5 for v in values], 0.95, clusters)
    assert continuous.low is not None and continuous.low < -0.5  # only proportions are cut
