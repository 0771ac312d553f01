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
* paired permutation test (random within-pair swaps, i.e. sign flips of the differences), vectorized,
  with ``scipy.stats.permutation_test``'s p-value conventions.

Differences are always ``variant - baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

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
    from scipy import stats

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
    return bootstrap_intervals_of_mean(differences, rng, (confidence,), resamples)[0]


def bootstrap_intervals_of_mean(
    differences: ArrayLike, rng: np.random.Generator, levels: Sequence[float], resamples: int = 10_000
) -> list[tuple[float, float]]:
    """Percentile intervals at several confidence levels from one set of bootstrap replicates."""
    replicates = bootstrap_mean_differences(differences, rng, resamples)
    out = []
    for confidence in levels:
        tail = (1 - confidence) / 2
        low, high = np.quantile(replicates, [tail, 1 - tail])
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
