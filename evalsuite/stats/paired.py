"""Paired comparisons of a variant against its baseline on the samples both answered.

Binary outcomes (correct / wrong):

* McNemar's test on the discordant pairs (b, c): the mid-p test by default (Fagerland, Lydersen and
  Laake, BMC Medical Research Methodology 13:91, 2013), whose size stays close to alpha where the exact
  conditional test is very conservative (at high agreement, where quantized variants live); the exact
  test on request. No discordant pairs means no evidence of a difference (p = 1);
* the interval that agrees with that test: Tango's asymptotic score interval for the difference of
  paired proportions (Tango, Statistics in Medicine 17:891, 1998), recommended by Fagerland et al.;
  its score statistic at no difference is McNemar's. Where the score interval and the chosen McNemar
  test disagree about zero (borderline cases), the statistic is rescaled by the test's normal-equivalent
  quantile over its own value at zero, so that zero lies outside the interval exactly when p < 1 - level.

Clustered samples (MMLU subjects): the mean paired difference with a cluster-robust (CR1) standard
error and a t test and interval on G - 1 degrees of freedom (:func:`clustered_paired`).

Continuous per-sample scores:

* paired bootstrap percentile interval for the mean difference (vectorized; a multinomial draw over the
  distinct differences when there are few, which is the same resampling distribution at a fraction of
  the cost);
* paired permutation test (random within-pair swaps, i.e. sign flips of the differences), vectorized,
  with ``scipy.stats.permutation_test``'s p-value conventions.

Differences are always ``variant - baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from evalsuite.stats.intervals import clustered_stderr

FEW_DISTINCT = 64  # below this many distinct differences, bootstrap by multinomial counts


@dataclass(frozen=True)
class Discordance:
    """The 2x2 table of paired binary outcomes."""

    both: int  # a: both correct
    baseline_only: int  # b: baseline correct, variant wrong
    variant_only: int  # c: baseline wrong, variant correct
    neither: int  # d: both wrong

    @property
    def n(self) -> int:
        return self.both + self.baseline_only + self.variant_only + self.neither

    @property
    def flips(self) -> int:
        return self.baseline_only + self.variant_only

    @property
    def flip_rate(self) -> float:
        return self.flips / self.n if self.n else 0.0

    @property
    def difference(self) -> float:
        return (self.variant_only - self.baseline_only) / self.n if self.n else 0.0


def discordance(baseline: ArrayLike, variant: ArrayLike) -> Discordance:
    x = np.asarray(baseline, dtype=bool)
    y = np.asarray(variant, dtype=bool)
    if x.shape != y.shape:
        raise ValueError(f"paired outcomes differ in length: {x.shape} vs {y.shape}")
    return Discordance(
        both=int(np.sum(x & y)),
        baseline_only=int(np.sum(x & ~y)),
        variant_only=int(np.sum(~x & y)),
        neither=int(np.sum(~x & ~y)),
    )


McNemarTest = Literal["mid-p", "exact"]


def mcnemar_exact(table: Discordance) -> float:
    """Two-sided exact McNemar p-value: binomial test of b against b + c at 1/2."""
    from scipy import stats

    if table.flips == 0:
        return 1.0
    return float(stats.binomtest(table.baseline_only, table.flips, 0.5).pvalue)


def mcnemar_midp(table: Discordance) -> float:
    """Two-sided mid-p McNemar p-value: the exact p-value less the probability of the observed b,
    i.e. ``2 * (P(X < m) + P(X = m) / 2)`` for ``m = min(b, c)``, ``X ~ Binomial(b + c, 1/2)``."""
    from scipy import stats

    if table.flips == 0:
        return 1.0
    smaller = min(table.baseline_only, table.variant_only)
    tail = stats.binom.cdf(smaller, table.flips, 0.5) - stats.binom.pmf(smaller, table.flips, 0.5) / 2
    return float(min(1.0, 2 * tail))


def mcnemar(table: Discordance, test: McNemarTest = "mid-p") -> float:
    """The two-sided McNemar p-value of the named test."""
    return mcnemar_midp(table) if test == "mid-p" else mcnemar_exact(table)


def tango_statistic(table: Discordance, delta: float) -> float:
    """Tango's score statistic for H0: p(variant) - p(baseline) = ``delta`` (decreasing in ``delta``).

    ``(c - b - n delta) / sqrt(n (2 p_b + delta (1 - delta)))`` with ``p_b`` the maximum-likelihood
    estimate of the baseline-only cell under H0, a root of a quadratic (Tango 1998, eq. 3). At
    ``delta = 0`` it is McNemar's ``(c - b) / sqrt(b + c)``."""
    b, c, n = table.baseline_only, table.variant_only, table.n
    quad_a = 2 * n  # the quadratic a p^2 + b p + c = 0 whose positive root is p_b
    quad_b = -b - c + (2 * n - c + b) * delta
    quad_c = -b * delta * (1 - delta)
    p_b = (math.sqrt(max(quad_b**2 - 4 * quad_a * quad_c, 0.0)) - quad_b) / (2 * quad_a)
    variance = n * (2 * p_b + delta * (1 - delta))
    excess = c - b - n * delta
    if variance <= 0:
        return 0.0 if excess == 0 else math.copysign(math.inf, excess)
    return excess / math.sqrt(variance)


def score_interval(table: Discordance, confidence: float, p_value: float) -> tuple[float, float]:
    """Tango's score interval for ``p(variant) - p(baseline)``, agreeing with the test of ``p_value``.

    The interval is every difference whose score statistic lies within the normal quantile. Where it
    and the test disagree about zero, the statistic is scaled by ``z(p) / |T(0)|`` (``z(p)`` the normal
    quantile whose two-sided p-value is the test's), so that zero is outside exactly when
    ``p_value < 1 - confidence``; elsewhere the scale is 1 and the interval is Tango's own."""
    from scipy import optimize, stats

    if table.n == 0:
        return -1.0, 1.0
    z = float(stats.norm.isf((1 - confidence) / 2))
    at_zero = tango_statistic(table, 0.0)
    scale = 1.0
    if at_zero != 0 and (p_value < 1 - confidence) != (abs(at_zero) > z):
        scale = float(stats.norm.isf(p_value / 2)) / abs(at_zero)

    def excess(delta: float, limit: float) -> float:
        return scale * tango_statistic(table, delta) - limit

    edge = 1.0 - 1e-12  # the statistic's quadratic is degenerate at exactly +-1
    estimate = table.difference
    low = -1.0 if excess(-edge, z) <= 0 else float(optimize.brentq(excess, -edge, estimate, args=(z,)))
    high = 1.0 if excess(edge, -z) >= 0 else float(optimize.brentq(excess, estimate, edge, args=(-z,)))
    return low, high


def clustered_paired(
    differences: ArrayLike, clusters: Sequence[object], confidence: float, one_sided_alpha: float
) -> ClusteredPaired | None:
    """The mean paired difference with a cluster-robust (CR1) standard error, its two-sided t test and
    interval on G - 1 degrees of freedom, and the (1 - 2 alpha) interval non-inferiority reads its
    bound from; None with fewer than two clusters. Samples in one cluster (an MMLU subject) move
    together, and a test that counts them as independent finds differences that are not there."""
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    stderr = clustered_stderr(d, clusters)
    if stderr is None:
        return None
    groups = len(set(map(str, clusters)))
    mean = float(d.mean())
    degrees = groups - 1
    flat = 1.0 if mean == 0 else 0.0  # every cluster moved by exactly the same amount
    p = float(2 * stats.t.sf(abs(mean) / stderr, degrees)) if stderr > 0 else flat
    half = float(stats.t.isf((1 - confidence) / 2, degrees)) * stderr
    half_wide = float(stats.t.isf(one_sided_alpha, degrees)) * stderr
    plain = float(np.std(d, ddof=1)) / math.sqrt(d.size) if d.size > 1 else 0.0
    effect = max(1.0, (stderr / plain) ** 2) if plain > 0 else 1.0
    return ClusteredPaired(
        mean, stderr, groups, p, (mean - half, mean + half), (mean - half_wide, mean + half_wide), effect
    )


@dataclass(frozen=True)
class ClusteredPaired:
    mean: float
    stderr: float
    clusters: int
    p_value: float
    interval: tuple[float, float]  # at the requested confidence
    one_sided: tuple[float, float]  # the (1 - 2 alpha) interval
    # the design effect: the cluster-robust variance over the independent-samples one (at least 1), so
    # n / design_effect is the number of independent pairs the clustered ones are worth
    design_effect: float = 1.0


def clustered_binary(
    table: Discordance,
    differences: ArrayLike,
    clusters: Sequence[object],
    confidence: float,
    one_sided_alpha: float,
    test: McNemarTest = "mid-p",
) -> ClusteredPaired | None:
    """Right/wrong scores in clusters: the cluster-robust paired test, never bolder than McNemar's.

    The p-value is the larger of the two tests' and each interval spans both tests' intervals, so zero
    is outside it exactly when both reject (each interval agrees with its own test). The cluster-robust
    one is the wider where clusters move together; McNemar's score interval is the wider where they
    do not, and where no pair disagrees at all, which leaves the cluster-robust standard error at zero
    and its interval a point."""
    clustered = clustered_paired(differences, clusters, confidence, one_sided_alpha)
    if clustered is None:
        return None
    p = mcnemar(table, test)

    def spanning(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return min(a[0], b[0]), max(a[1], b[1])

    return ClusteredPaired(
        clustered.mean,
        clustered.stderr,
        clustered.clusters,
        max(clustered.p_value, p),
        spanning(clustered.interval, score_interval(table, confidence, p)),
        spanning(clustered.one_sided, score_interval(table, 1 - 2 * one_sided_alpha, p)),
        clustered.design_effect,
    )


def bootstrap_mean_differences(
    differences: ArrayLike, rng: np.random.Generator, resamples: int = 10_000
) -> NDArray[np.float64]:
    """``resamples`` bootstrap replicates of the mean of paired differences, vectorized."""
    d = np.asarray(differences, dtype=np.float64)
    n = d.size
    distinct, counts = np.unique(d, return_counts=True)
    if distinct.size <= FEW_DISTINCT:  # resampling n rows == a multinomial draw over distinct values
        draws = rng.multinomial(n, counts / n, size=resamples)  # (resamples, distinct)
        return np.asarray(draws @ distinct / n, dtype=np.float64)
    means = np.empty(resamples)
    batch = max(1, 4_000_000 // n)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        index = rng.integers(0, n, size=(size, n), dtype=np.int64)
        means[start : start + size] = d[index].mean(axis=1)
    return means


def bootstrap_interval_of_mean(
    differences: ArrayLike, rng: np.random.Generator, confidence: float = 0.95, resamples: int = 10_000
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean paired difference."""
    return bootstrap_intervals_of_mean(differences, rng, (confidence,), resamples)[0]


def bootstrap_intervals_of_mean(
    differences: ArrayLike, rng: np.random.Generator, levels: Sequence[float], resamples: int = 10_000
) -> list[tuple[float, float]]:
    """Percentile intervals at several confidence levels from one set of bootstrap replicates."""
    return percentile_intervals(bootstrap_mean_differences(differences, rng, resamples), levels)


def percentile_intervals(replicates: ArrayLike, levels: Sequence[float]) -> list[tuple[float, float]]:
    """The two-sided percentile interval of bootstrap ``replicates`` at each confidence level."""
    out = []
    for confidence in levels:
        tail = (1 - confidence) / 2
        low, high = np.quantile(np.asarray(replicates, dtype=np.float64), [tail, 1 - tail])
        out.append((float(low), float(high)))
    return out


def permutation_pvalue(
    baseline: ArrayLike, variant: ArrayLike, rng: np.random.Generator, resamples: int = 9_999
) -> float:
    """Two-sided paired permutation test of the mean difference: each pair's labels swapped at random.

    Swapping a pair flips the sign of its difference, so the null distribution is the mean of randomly
    sign-flipped differences, computed as one matrix product per batch. Every one of the 2^n sign patterns
    is enumerated when there are no more of them than ``resamples`` (an exact p-value). The p-value follows
    ``scipy.stats.permutation_test``: Monte Carlo counts include the observed statistic, ties within a
    relative 100 eps count as at least as extreme, and two-sided is twice the smaller one-sided p.
    """
    d = np.asarray(variant, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    n = d.size
    if n == 0 or np.all(d == 0):
        return 1.0
    observed = float(d.mean())
    if n < 63 and 2**n <= resamples:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0  # (2^n, n), all patterns
        null, total, adjustment = signs @ d / n, 2**n, 0
    else:
        null = np.empty(resamples)
        batch = max(1, 4_000_000 // n)
        for start in range(0, resamples, batch):
            size = min(batch, resamples - start)
            bits = np.unpackbits(rng.integers(0, 256, size=(size, (n + 7) // 8), dtype=np.uint8), axis=1)
            signs = bits[:, :n].astype(np.float64) * 2.0 - 1.0  # one random bit per pair: 8x fewer draws
            null[start : start + size] = signs @ d / n
        total, adjustment = resamples, 1
    gamma = abs(np.finfo(np.float64).eps * 100 * observed)
    less = (np.count_nonzero(null <= observed + gamma) + adjustment) / (total + adjustment)
    greater = (np.count_nonzero(null >= observed - gamma) + adjustment) / (total + adjustment)
    return float(min(1.0, 2 * min(less, greater)))
