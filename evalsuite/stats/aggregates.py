"""lm-eval's aggregations as vectorizable statistics, and intervals and paired tests built on them.

Most of lm-eval's aggregations are a transform of a ratio of sums over samples:

    mean                 x_i                      sum(x) / n
    perplexity           log-likelihood ll_i      exp(-sum(ll) / n)
    weighted_perplexity  (ll_i, words_i)          exp(-sum(ll) / sum(words))
    bits_per_byte        (ll_i, bytes_i)          -sum(ll) / sum(bytes) / ln 2

Written as ``g(sum(num) / sum(den))`` they resample and permute as matrix products, so bootstrap and
permutation tests over thousands of samples stay fast. Other aggregations (F1, BLEU, Matthews) get a
plain bootstrap interval and no paired test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evalsuite.stats.intervals import Interval, bootstrap_interval, mean_interval

Array = NDArray[np.float64]


@dataclass(frozen=True)
class RatioAggregate:
    name: str
    transform: Callable[[Array], Array]

    def columns(self, values: Sequence[Any]) -> tuple[Array, Array]:
        """(numerators, denominators) per sample: pairs (a, b) give (a, b); scalars give (x, 1)."""
        if values and isinstance(values[0], list | tuple):
            pairs = np.asarray(values, dtype=np.float64)
            return pairs[:, 0], pairs[:, 1]
        x = np.asarray(values, dtype=np.float64)
        return x, np.ones_like(x)

    def __call__(self, num: Array, den: Array, axis: int = -1) -> Array:
        return self.transform(np.sum(num, axis=axis) / np.sum(den, axis=axis))


def _identity(r: Array) -> Array:
    return r


def _perplexity(r: Array) -> Array:
    return np.exp(-r)


def _bits(r: Array) -> Array:
    return -r / math.log(2)


AGGREGATES = {
    "mean": RatioAggregate("mean", _identity),
    "perplexity": RatioAggregate("perplexity", _perplexity),
    "weighted_perplexity": RatioAggregate("weighted_perplexity", _perplexity),
    "bits_per_byte": RatioAggregate("bits_per_byte", _bits),
}


def summarize(
    values: Sequence[Any],
    aggregation: str,
    fallback: Callable[[list[Any]], float] | None,
    rng: np.random.Generator,
    confidence: float = 0.95,
    clusters: Sequence[Any] | None = None,
    resamples: int = 2000,
) -> Interval:
    """A metric's task-level value with its standard error and confidence interval; an aggregate that is
    not a mean is bootstrapped with ``resamples`` resamples (``stats.interval_resamples``), as given."""
    if aggregation == "mean":
        return mean_interval(values, confidence, clusters)
    ratio = AGGREGATES.get(aggregation)
    if ratio is not None:
        return bootstrap_interval(ratio.columns(values), ratio, rng, confidence, resamples)
    if fallback is None:
        raise ValueError(f"no way to aggregate {aggregation!r}")
    return _generic_bootstrap(list(values), fallback, rng, confidence, resamples)


def _generic_bootstrap(
    items: list[Any],
    statistic: Callable[[list[Any]], float],
    rng: np.random.Generator,
    confidence: float,
    resamples: int,
) -> Interval:
    value = float(statistic(items))
    if len(items) < 2:
        return Interval(value, None, None, None, confidence, "none")
    n = len(items)
    draws = np.array([statistic([items[i] for i in rng.integers(0, n, size=n)]) for _ in range(resamples)])
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(
        value, float(draws.std(ddof=1)), float(low), float(high), confidence, "bootstrap percentile"
    )


@dataclass(frozen=True)
class PairedAggregate:
    """variant minus baseline of a ratio aggregate, with a bootstrap interval and a permutation p-value."""

    difference: float
    low: float
    high: float
    p_value: float


def paired_ratio_test(
    aggregate: RatioAggregate,
    baseline: tuple[Array, Array],
    variant: tuple[Array, Array],
    rng: np.random.Generator,
    confidence: float = 0.95,
    resamples: int = 10_000,
) -> PairedAggregate:
    """Paired bootstrap (resample samples jointly) and paired permutation (swap within pairs)."""
    bn, bd = baseline
    vn, vd = variant
    n = bn.size
    observed = float(aggregate(vn, vd) - aggregate(bn, bd))
    batch = max(1, 2_000_000 // max(n, 1))
    boot, null = np.empty(resamples), np.empty(resamples)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        index = rng.integers(0, n, size=(size, n))
        boot[start : start + size] = aggregate(vn[index], vd[index]) - aggregate(bn[index], bd[index])
        swap = rng.integers(0, 2, size=(size, n)).astype(np.float64)  # 1: the pair's labels are swapped
        sums = [x.sum() + swap @ (y - x) for x, y in ((vn, bn), (vd, bd), (bn, vn), (bd, vd))]
        null[start : start + size] = aggregate.transform(sums[0] / sums[1]) - aggregate.transform(
            sums[2] / sums[3]
        )
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    greater = (np.sum(null >= observed) + 1) / (resamples + 1)
    less = (np.sum(null <= observed) + 1) / (resamples + 1)
    return PairedAggregate(observed, float(low), float(high), float(min(1.0, 2 * min(greater, less))))
