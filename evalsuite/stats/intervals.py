"""Standard errors of aggregated metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean, sample standard deviation (ddof=1); None below two values."""
    if len(values) < 2:
        return None
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1) / np.sqrt(len(values)))


def bootstrap_stderr(
    items: Sequence[Any],
    statistic: Callable[[list[Any]], float],
    rng: np.random.Generator,
    resamples: int = 200,
) -> float | None:
    """Standard deviation of ``statistic`` over resamples of ``items`` drawn with replacement.

    For aggregations that are not a mean (perplexity, F1, BLEU); ``items`` may be tuples.
    """
    if len(items) < 2:
        return None
    n = len(items)
    draws = [statistic([items[i] for i in rng.integers(0, n, size=n)]) for _ in range(resamples)]
    return float(np.std(np.asarray(draws, dtype=np.float64), ddof=1))
