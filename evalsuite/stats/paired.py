"""Paired comparisons of a variant against its baseline on the samples both answered.

Binary outcomes (correct / wrong):

* exact McNemar test: a two-sided binomial test on the discordant pairs (b, c); no discordant pairs
  means no evidence of a difference (p = 1), never a division by zero;
* Newcombe's hybrid score interval (method 10 of Newcombe 1998) for the difference in proportions,
  which keeps its coverage near the nominal level even with few discordant pairs.

Continuous per-sample scores:

* paired bootstrap percentile interval for the mean difference (vectorized; a multinomial draw over the
  distinct differences when there are few, which is the same resampling distribution at a fraction of
  the cost);
* paired permutation test (random sign flips) with ``scipy.stats.permutation_test``.

Differences are always ``variant - baseline``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from evalsuite.stats.intervals import wilson_interval

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


def mcnemar_exact(table: Discordance) -> float:
    """Two-sided exact McNemar p-value: binomial test of b against b + c at 1/2."""
    if table.flips == 0:
        return 1.0
    return float(stats.binomtest(table.baseline_only, table.flips, 0.5).pvalue)


def newcombe_interval(table: Discordance, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p(variant) - p(baseline) from paired binary outcomes."""
    a, b, c, d, n = table.both, table.baseline_only, table.variant_only, table.neither, table.n
    p_var, p_base = (a + c) / n, (a + b) / n
    l_var, u_var = wilson_interval(a + c, n, confidence)
    l_base, u_base = wilson_interval(a + b, n, confidence)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c  # method 10 shrinks a positive a*d - b*c by n/2 (to no less than 0)
    corrected = max(cross - n / 2, 0.0) if cross > 0 else cross
    phi = corrected / math.sqrt(denominator) if denominator > 0 else 0.0
    theta = p_var - p_base
    below = (p_var - l_var) ** 2 - 2 * phi * (p_var - l_var) * (u_base - p_base) + (u_base - p_base) ** 2
    above = (u_var - p_var) ** 2 - 2 * phi * (u_var - p_var) * (p_base - l_base) + (p_base - l_base) ** 2
    return max(-1.0, theta - math.sqrt(max(below, 0.0))), min(1.0, theta + math.sqrt(max(above, 0.0)))


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
    replicates = bootstrap_mean_differences(differences, rng, resamples)
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(low), float(high)


def permutation_pvalue(
    baseline: ArrayLike, variant: ArrayLike, rng: np.random.Generator, resamples: int = 9_999
) -> float:
    """Two-sided paired permutation test of the mean difference (within-pair swaps = sign flips)."""
    x = np.asarray(baseline, dtype=np.float64)
    y = np.asarray(variant, dtype=np.float64)
    if np.all(x == y):
        return 1.0

    def mean_difference(a: NDArray[np.float64], b: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
        return np.asarray(np.mean(b - a, axis=axis))

    result = stats.permutation_test(
        (x, y),
        mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=resamples,
        alternative="two-sided",
        rng=rng,
    )
    return float(result.pvalue)
