"""Paired resampling of two models' per-sample rows, for any statistic of rows under weights.

A *row* is what one model's records of one source sample contribute to a metric: a few numbers, such
as the clean copy's score, the sum of the perturbed copies' scores and their count. A statistic maps
rows ``(R, k)`` and weights ``(B, R)`` to ``B`` values: weight 1 on every row gives the metric itself;
the counts of a bootstrap resample of samples give the metric of that resample; 0/1 weights over two
models' stacked rows give one side of a permutation. A metric that is a function of weighted sums
(the probe kinds' statistics, :mod:`evalsuite.probes.comparable`) is then resampled thousands of times
by a few matrix products. A statistic may be undefined (NaN) under some weights: a drop rate whose
clean sum is 0.

Paired inference, always of ``variant - baseline`` over the samples both models scored:

* :func:`paired_bootstrap`: a cluster bootstrap over source samples. Each resample draws n samples with
  replacement (``rng.integers``; their counts are the weights) and applies the same weights to both
  models' rows, so the pairing and every copy of a sample stay together. Percentile intervals;
  resamples where either side is undefined are dropped, and when more than 1% are, no interval is given
  (it would be conditioned on too much).
* :func:`paired_permutation_pvalue`: under the null hypothesis the two models' rows of a sample are
  exchangeable, so each resample swaps them within every sample with probability 1/2 (0/1 weights over
  both models' rows stacked). All 2^n patterns are enumerated when there are no more of them than
  ``resamples`` (an exact p-value); otherwise random patterns. The conventions are
  ``scipy.stats.permutation_test``'s (and :func:`evalsuite.stats.paired.permutation_pvalue`'s): Monte
  Carlo counts include the observed statistic (+1 in numerator and denominator), ties within a
  relative 100 eps count as at least as extreme, two-sided is twice the smaller one-sided p (at most 1).
  Patterns under which the statistic is undefined are left out of the count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from evalsuite.stats.paired import percentile_intervals

Array = np.ndarray[Any, np.dtype[np.float64]]

CELLS_PER_BATCH = 4_000_000  # resamples x rows drawn at once
MAX_UNDEFINED = 0.01  # above this share of undefined bootstrap resamples, no interval is given


class Statistic(Protocol):
    """rows ``(R, k)`` and weights ``(B, R)`` -> ``(B,)``: the metric under each weight vector."""

    def __call__(self, rows: Array, weights: Array) -> Array: ...


def value(statistic: Statistic, rows: Array) -> float:
    """The statistic of the rows themselves (weight 1 each); NaN where it is undefined."""
    return float(statistic(rows, np.ones((1, rows.shape[0])))[0])


def _batches(total: int, rows: int) -> list[tuple[int, int]]:
    size = max(1, CELLS_PER_BATCH // max(rows, 1))
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def bootstrap_differences(
    statistic: Statistic, baseline: Array, variant: Array, rng: np.random.Generator, resamples: int
) -> Array:
    """``resamples`` replicates of ``statistic(variant) - statistic(baseline)``, each under the counts of
    one draw of n samples with replacement (``rng.integers``), the same for both models."""
    n = baseline.shape[0]
    out = np.empty(resamples)
    for start, size in _batches(resamples, n):
        drawn = rng.integers(0, n, size=(size, n), dtype=np.int64)
        cells = (drawn + n * np.arange(size)[:, None]).ravel()
        weights = np.bincount(cells, minlength=size * n).reshape(size, n).astype(np.float64)
        out[start : start + size] = statistic(variant, weights) - statistic(baseline, weights)
    return out


def paired_bootstrap(
    statistic: Statistic,
    baseline: Array,
    variant: Array,
    rng: np.random.Generator,
    levels: Sequence[float],
    resamples: int = 10_000,
) -> list[tuple[float, float]] | None:
    """Percentile intervals of ``statistic(variant) - statistic(baseline)`` at each confidence level,
    from one set of paired cluster-bootstrap replicates; None when more than 1% of them are undefined."""
    replicates = bootstrap_differences(statistic, baseline, variant, rng, resamples)
    defined = replicates[np.isfinite(replicates)]
    if defined.size < 2 or resamples - defined.size > MAX_UNDEFINED * resamples:
        return None
    return percentile_intervals(defined, levels)


def paired_permutation_pvalue(
    statistic: Statistic,
    baseline: Array,
    variant: Array,
    rng: np.random.Generator,
    resamples: int = 10_000,
) -> float:
    """Two-sided p-value of ``statistic(variant) - statistic(baseline)`` under random swaps of the two
    models' rows within each sample (the conventions are in the module's docstring)."""
    n = baseline.shape[0]
    observed = value(statistic, variant) - value(statistic, baseline)
    if n == 0 or np.array_equal(baseline, variant) or not math.isfinite(observed):
        return 1.0
    stacked = np.concatenate([baseline, variant])  # (2n, k): a swapped sample's variant row is its baseline's

    def null(swapped: Array) -> Array:
        to_variant = np.concatenate([swapped, 1.0 - swapped], axis=1)  # weights of the variant's side
        return statistic(stacked, to_variant) - statistic(stacked, 1.0 - to_variant)

    if n < 63 and 2**n <= resamples:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float64)
        parts = [null(patterns[start : start + size]) for start, size in _batches(2**n, 2 * n)]
        draws = np.concatenate(parts)
        adjustment = 0
    else:
        parts = []
        for _, size in _batches(resamples, 2 * n):
            bits = np.unpackbits(rng.integers(0, 256, size=(size, (n + 7) // 8), dtype=np.uint8), axis=1)
            parts.append(null(bits[:, :n].astype(np.float64)))
        draws, adjustment = np.concatenate(parts), 1
    draws = draws[np.isfinite(draws)]
    gamma = abs(np.finfo(np.float64).eps * 100 * observed)
    total = draws.size + adjustment
    less = (np.count_nonzero(draws <= observed + gamma) + adjustment) / total
    greater = (np.count_nonzero(draws >= observed - gamma) + adjustment) / total
    return float(min(1.0, 2 * min(less, greater)))
