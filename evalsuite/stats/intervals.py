"""Confidence intervals for one model's metric on one task.

The method follows the data:

* a proportion (every per-sample value 0 or 1, aggregated by the mean): Wilson score interval;
* any other mean: the normal interval on the standard error of the mean;
* samples grouped into clusters (MMLU subjects, perturbations of one question, samples of one prompt):
  a t interval with G - 1 degrees of freedom on the cluster-robust standard error (the same estimate as
  statsmodels' OLS with ``cov_type="cluster"``), because samples in one cluster are not independent;
* an aggregate that is not a mean (perplexity, bits per byte, F1, BLEU): a percentile bootstrap with
  ``scipy.stats.bootstrap``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from evalsuite.config import StatsSettings

IntervalMethod = Literal["wilson", "normal", "cluster-robust t", "bootstrap percentile", "none"]


@dataclass(frozen=True)
class IntervalSettings:
    """How one model's intervals on a task or probe are computed (paired comparisons between models have
    their own resamples, ``stats.resamples``)."""

    seed: int  # of the random generator each bootstrap starts from
    confidence: float = 0.95
    resamples: int = 2000  # bootstrap resamples of an interval that is bootstrapped

    @classmethod
    def from_config(cls, config: StatsSettings, seed: int) -> IntervalSettings:
        """The run's settings: ``stats.confidence`` and ``stats.interval_resamples``, as set, with the
        run's seed."""
        return cls(seed=seed, confidence=config.confidence, resamples=config.interval_resamples)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its standard error and a two-sided confidence interval."""

    value: float
    stderr: float | None
    low: float | None
    high: float | None
    confidence: float
    method: IntervalMethod
    clusters: int | None = None


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (as ``scipy.stats.binomtest(...).proportion_ci``)."""
    from scipy import stats

    if n <= 0:
        raise ValueError("a proportion needs at least one trial")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_stderr(values: ArrayLike) -> float | None:
    """Standard error of the mean with the sample standard deviation (ddof=1); None below two values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    return float(np.std(x, ddof=1) / np.sqrt(x.size))


def clustered_stderr(values: ArrayLike, clusters: Sequence[Any]) -> float | None:
    """Cluster-robust standard error of the mean (CR1, as statsmodels OLS ``cov_type="cluster"``).

    ``se^2 = G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2 / n^2`` over G clusters; None when G < 2.
    """
    x = np.asarray(values, dtype=np.float64)
    _, group = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    count = int(group.max()) + 1 if x.size else 0
    if count < 2:
        return None
    sums = np.bincount(group, weights=x - x.mean(), minlength=count)
    return float(np.sqrt(count / (count - 1) * np.sum(sums**2)) / x.size)


def normal_interval(value: float, stderr: float, confidence: float) -> tuple[float, float]:
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return value - z * stderr, value + z * stderr


def is_binary(values: NDArray[np.float64]) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def mean_interval(
    values: ArrayLike, confidence: float = 0.95, clusters: Sequence[Any] | None = None
) -> Interval:
    """Interval for a metric aggregated by the mean; Wilson when binary, clustered when grouped."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return Interval(float("nan"), None, None, None, confidence, "none")
    value = float(x.mean())
    if clusters is not None:
        stderr = clustered_stderr(x, clusters)
        groups = len(set(map(str, clusters)))
        if stderr is not None:  # t with G - 1 degrees of freedom: few clusters make the SE itself uncertain
            half = float(stats.t.ppf(0.5 + confidence / 2, groups - 1)) * stderr
            low, high = value - half, value + half
            if is_binary(x):  # a proportion: the symmetric interval is cut to the values it can take
                low, high = max(0.0, low), min(1.0, high)
            return Interval(value, stderr, low, high, confidence, "cluster-robust t", groups)
    stderr = mean_stderr(x)
    if is_binary(x):
        low, high = wilson_interval(int(x.sum()), x.size, confidence)
        return Interval(value, stderr, low, high, confidence, "wilson")
    if stderr is None:
        return Interval(value, None, None, None, confidence, "none")
    low, high = normal_interval(value, stderr, confidence)
    return Interval(value, stderr, low, high, confidence, "normal")


Statistic = Callable[..., Any]  # vectorized: statistic(*columns, axis=-1) -> array


def bootstrap_interval(
    columns: Sequence[ArrayLike],
    statistic: Statistic,
    rng: np.random.Generator,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> Interval:
    """Percentile bootstrap of ``statistic(*columns)``, resampling rows jointly (``paired=True``).

    ``columns`` are per-sample arrays of equal length, e.g. (log-likelihood, word count) for perplexity.
    """
    from scipy import stats

    data = tuple(np.asarray(c, dtype=np.float64) for c in columns)
    value = float(statistic(*data, axis=-1))
    if data[0].size < 2 or not np.isfinite(value):
        return Interval(value, None, None, None, confidence, "none")
    result = stats.bootstrap(
        data,
        statistic,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        paired=True,
        vectorized=True,
        rng=rng,
        batch=max(1, min(resamples, 2_000_000 // data[0].size)),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Interval(value, float(result.standard_error), low, high, confidence, "bootstrap percentile")
