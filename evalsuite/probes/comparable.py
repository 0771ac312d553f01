"""What a probe kind can compare between a variant and its baseline: its comparable metrics, and the
statistics they are made of.

A kind declares them in its own module (``ProbeKind.comparable``: metric name -> :class:`Comparable`),
so a plugin kind adds comparisons in its one file. A comparable metric is

* ``rows``: one model's records of one probe unit -> a row of numbers per source sample (by doc_id),
  what the sample contributes to the metric (a rate: the record's 0/1 value; a perturbation: the clean
  score, the sum and the number of the changed copies' scores ...);
* ``statistic``: the metric as a function of rows ``(R, k)`` under per-row weights ``(B, R)``, so that
  with weight 1 on every row it is the unit's own metric, and a paired bootstrap or permutation of
  samples (:mod:`evalsuite.stats.weighted`) is a matrix product. The statistics here are all functions
  of weighted sums:

    Mean(j)                 W x_j / W 1                                  rates, accuracies
    Ratio(i, j)             W x_i / W x_j                                perturbed, flip rate, precision
    DropRate(p, c)          1 - W x_p / W x_c                            PDR
    CalibrationError(b)     sum over bins of |W ((y - c) 1[bin])| / W 1  ECE, equal-width bins
    Spread()                max - min of the column means                prompt-format spread
    GrandMean()             the mean of all cells (rows of equal width)  mean over prompt formats
    PositionStd()           population std over columns of their means   RStd of answer positions
    DetectionF1(h, p, a)    2 W x_h / (W x_p + W x_a), 0 where 0 / 0      abstention F1
    Auroc(s, y)             weighted Mann-Whitney U / (W_pos W_neg)       AUROC of an uncertainty score

* ``higher_is_better``: which way is better, for the reading ("variant worse") and for the gates.

:mod:`evalsuite.probes.comparisons` pairs two models' rows by doc_id and compares them. This module is
imported by the kind modules, which :mod:`evalsuite.config` imports: it imports no numpy (the
statistics and builders import it when called).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalsuite.records import SampleRecord
    from evalsuite.stats.weighted import Array, Statistic

Row = tuple[float, ...]
Rows = Mapping[int, Row]  # doc_id -> the sample's row; every row of one metric has the same length
RowBuilder = Callable[["Sequence[SampleRecord]"], Rows]
# The columns of a row of copy_rows: the metrics of evalsuite.probes.metrics as weighted sums.
CLEAN, PERTURBED_SUM, COPIES, PERTURBED_MEAN, FLIPS, SAME = range(6)


@dataclass(frozen=True)
class Comparable:
    """A metric of a probe unit on which two models can be compared, source sample by source sample."""

    rows: RowBuilder
    statistic: Statistic
    higher_is_better: bool


def per_record(metric: str, where: Callable[[SampleRecord], bool] | None = None) -> RowBuilder:
    """Rows of one per-record value: each record without error that has ``metric`` (and that ``where``
    keeps) gives its sample the row ``(value,)``. The rows of a rate such as a hallucination rate,
    whose :class:`Mean` is the unit's metric."""

    def rows(records: Sequence[SampleRecord]) -> Rows:
        return {
            r.doc_id: (float(r.metrics[metric]),)
            for r in records
            if r.error is None and metric in r.metrics and (where is None or where(r))
        }

    return rows


def copy_rows(records: Sequence[SampleRecord]) -> Rows:
    """The rows of a unit whose samples each have a clean copy and changed copies, columns ``CLEAN``
    ... ``SAME`` (:func:`evalsuite.probes.copies.copy_rows`)."""
    from evalsuite.probes.copies import copy_rows as rows

    return rows(records)


def _divide(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator, NaN (or inf) where the denominator is 0, without a warning."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(numerator / denominator, dtype=np.float64)


@dataclass(frozen=True)
class Mean:
    """The weighted mean of one column."""

    column: int = 0

    def __call__(self, rows: Array, weights: Array) -> Array:
        return _divide(weights @ rows[:, self.column], weights.sum(axis=1))


@dataclass(frozen=True)
class Ratio:
    """The ratio of two columns' weighted sums (the perturbed score: scores of the copies over copies)."""

    numerator: int
    denominator: int

    def __call__(self, rows: Array, weights: Array) -> Array:
        return _divide(weights @ rows[:, self.numerator], weights @ rows[:, self.denominator])


@dataclass(frozen=True)
class DropRate:
    """Performance drop rate ``1 - sum(perturbed) / sum(clean)``; undefined where the clean sum is 0."""

    perturbed: int
    clean: int

    def __call__(self, rows: Array, weights: Array) -> Array:
        return 1.0 - _divide(weights @ rows[:, self.perturbed], weights @ rows[:, self.clean])


@dataclass(frozen=True)
class CalibrationError:
    """Expected calibration error over ``bins`` equal-width confidence bins (the bins of
    :mod:`evalsuite.stats.uncertainty`): ``sum_b |sum_{i in b} w_i (y_i - c_i)| / sum_i w_i``."""

    bins: int = 10
    confidence: int = 0
    correct: int = 1

    def __call__(self, rows: Array, weights: Array) -> Array:
        import numpy as np

        from evalsuite.stats.uncertainty import _bin_index

        stated, right = rows[:, self.confidence], rows[:, self.correct]
        gaps = np.zeros((rows.shape[0], self.bins))
        gaps[np.arange(rows.shape[0]), _bin_index(stated, self.bins)] = right - stated
        return _divide(np.abs(weights @ gaps).sum(axis=1), weights.sum(axis=1))


def _column_means(rows: Array, weights: Array) -> Array:
    return _divide(weights @ rows, weights.sum(axis=1)[:, None])  # (B, k)


@dataclass(frozen=True)
class Spread:
    """The best column mean minus the worst (columns: prompt formats)."""

    def __call__(self, rows: Array, weights: Array) -> Array:
        means = _column_means(rows, weights)
        return means.max(axis=1) - means.min(axis=1)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class GrandMean:
    """The mean of every cell, rows being of equal width (the mean score over prompt formats)."""

    def __call__(self, rows: Array, weights: Array) -> Array:
        return _divide(weights @ rows.sum(axis=1), weights.sum(axis=1) * rows.shape[1])


@dataclass(frozen=True)
class PositionStd:
    """The population standard deviation over columns of the column means (RStd: columns are the
    positions of the right answer, cells its recall there)."""

    def __call__(self, rows: Array, weights: Array) -> Array:
        return _column_means(rows, weights).std(axis=1)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DetectionF1:
    """F1 of a detector from per-sample hits, predictions and actual positives: ``2 H / (P + A)``, 0
    where nothing was predicted and nothing was there to detect."""

    hits: int
    predicted: int
    actual: int

    def __call__(self, rows: Array, weights: Array) -> Array:
        import numpy as np

        both = weights @ rows[:, self.predicted] + weights @ rows[:, self.actual]
        f1 = _divide(2 * (weights @ rows[:, self.hits]), both)
        return np.asarray(np.where(both > 0, f1, 0.0))


@dataclass(frozen=True)
class Auroc:
    """Area under the ROC curve of a score for predicting a 0/1 label, under weights: the probability
    that a positive outscores a negative, ties counted 1/2 (weighted Mann-Whitney U over
    ``W_pos W_neg``; :func:`evalsuite.stats.uncertainty.auroc` with unit weights). Undefined without
    weight on both classes."""

    score: int = 0
    label: int = 1

    def __call__(self, rows: Array, weights: Array) -> Array:
        import numpy as np

        levels, level_of = np.unique(rows[:, self.score], return_inverse=True)
        positive = rows[:, self.label] > 0.5
        cells = np.zeros((rows.shape[0], 2 * levels.size))  # one-hot (level, class)
        cells[np.arange(rows.shape[0]), level_of + levels.size * positive] = 1.0
        per_level = weights @ cells
        negatives, positives = per_level[:, : levels.size], per_level[:, levels.size :]
        below = np.cumsum(negatives, axis=1) - negatives  # negative weight strictly below each level
        u = np.sum(positives * (below + negatives / 2), axis=1)
        pairs = positives.sum(axis=1) * negatives.sum(axis=1)
        return np.asarray(np.where(pairs > 0, _divide(u, pairs), np.nan))
