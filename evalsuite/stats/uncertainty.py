"""How well a model's own uncertainty tracks its mistakes: discrimination, calibration, semantic entropy.

* **AUROC** of an uncertainty score for telling wrong answers from right ones: the probability that a
  random wrong answer scores higher than a random right one, ties counted 1/2 (the Mann-Whitney U
  statistic over n1 * n0), with a percentile bootstrap interval vectorised over resamples.
* **Calibration** of a stated confidence: expected calibration error over equal-width bins (Guo et al.
  2017, "On Calibration of Modern Neural Networks"), the reliability diagram's bins, and the multi-class
  Brier score (Brier 1950), each with a percentile bootstrap interval.
* **Semantic entropy** (Farquhar et al. 2024, "Detecting hallucinations in large language models using
  semantic entropy", Nature), discrete form: the entropy of sampled answers over meaning clusters.

Bins are ``[i/B, (i+1)/B)`` with the last one closed at 1, as ``np.histogram(x, B, range=(0, 1))``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from evalsuite.stats.intervals import Interval, bootstrap_interval

MAX_DROPPED = 0.01  # AUROC bootstrap: above this share of one-class resamples, no interval is given
_CELLS_PER_BATCH = 4_000_000  # resamples x rows drawn at once


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram; an empty bin has count 0 and no mean or accuracy."""

    low: float
    high: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class CalibrationIntervals:
    """Top-label expected calibration error and multi-class Brier score of the same predictions."""

    ece: Interval
    brier: Interval


# --- discrimination: AUROC --------------------------------------------------------------------------


def _scores_and_labels(
    scores: ArrayLike, positives: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positives, dtype=bool)
    if s.ndim != 1 or s.shape != p.shape:
        raise ValueError(f"scores and labels must be 1-D of equal length: {s.shape} vs {p.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, p


def auroc(scores: ArrayLike, positives: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for predicting ``positives`` (e.g. "the answer was wrong").

    Equals ``scipy.stats.mannwhitneyu(scores[positives], scores[~positives]).statistic / (n1 * n0)``.
    """
    s, p = _scores_and_labels(scores, positives)
    n1 = int(p.sum())
    n0 = p.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"AUROC needs both classes; got {n1} positive and {n0} negative samples")
    index = np.arange(s.size)[None, :]
    return float(_resampled_aurocs(s, p, index)[0])


def _resampled_aurocs(
    scores: NDArray[np.float64], positives: NDArray[np.bool_], index: NDArray[np.int64]
) -> NDArray[np.float64]:
    """AUROC of each resample ``scores[index[r]]`` (NaN where a class is missing), without sorting it.

    A resample is the original rows with multiplicities w, so with the distinct score levels in order,
    ``U = sum_level W1(level) * (W0(below level) + W0(level) / 2)``; one bincount gives the W per level.
    """
    levels, level_of = np.unique(scores, return_inverse=True)  # level_of: (n,)
    k = levels.size
    draws = index.shape[0]
    cell = level_of[index] + k * positives[index] + 2 * k * np.arange(draws)[:, None]  # (R, n)
    counts = np.bincount(cell.ravel(), minlength=2 * k * draws).reshape(draws, 2, k).astype(np.float64)
    negative, positive = counts[:, 0, :], counts[:, 1, :]  # (R, k) weights per level
    below = np.cumsum(negative, axis=1) - negative  # negatives strictly below each level
    u = np.sum(positive * (below + negative / 2), axis=1)
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(pairs > 0, u / pairs, np.nan))


def auroc_interval(
    scores: ArrayLike,
    positives: ArrayLike,
    rng: np.random.Generator,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> Interval:
    """Percentile bootstrap interval for :func:`auroc`, resampling (score, label) rows jointly.

    Resamples that miss one class have no AUROC and are dropped; when more than 1% are, the bootstrap
    distribution is conditioned on too much and an interval without bounds (method "none") comes back.
    """
    s, p = _scores_and_labels(scores, positives)
    value = auroc(s, p)
    n = s.size
    replicates = np.empty(resamples)
    batch = max(1, _CELLS_PER_BATCH // n)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        index = rng.integers(0, n, size=(size, n), dtype=np.int64)
        replicates[start : start + size] = _resampled_aurocs(s, p, index)
    kept = replicates[np.isfinite(replicates)]
    if kept.size < 2 or resamples - kept.size > MAX_DROPPED * resamples:
        return Interval(value, None, None, None, confidence, "none")
    tail = (1 - confidence) / 2
    low, high = np.percentile(kept, [100 * tail, 100 * (1 - tail)])
    stderr = float(np.std(kept, ddof=1))
    return Interval(value, stderr, float(low), float(high), confidence, "bootstrap percentile")


# --- calibration ------------------------------------------------------------------------------------


def _confidences_and_outcomes(
    confidence: ArrayLike, correct: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    c = np.asarray(confidence, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if c.shape != y.shape or c.ndim != 1:
        raise ValueError(f"confidence and correct must be 1-D and of equal length: {c.shape} vs {y.shape}")
    if c.size == 0:
        raise ValueError("calibration needs at least one sample")
    if not np.all((c >= 0) & (c <= 1)):
        raise ValueError("confidence values must lie in [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("correct must be 0/1 or boolean")
    return c, y


def _bin_index(confidence: NDArray[np.float64], bins: int) -> NDArray[np.int64]:
    """Equal-width bin of each value on [0, 1], the last bin closed at 1 (``np.histogram``'s edges)."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.asarray(np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1))


def _ece(confidence: NDArray[np.float64], correct: NDArray[np.float64], bins: int) -> NDArray[np.float64]:
    """ECE along the last axis: ``sum_b n_b / n * |acc_b - conf_b| = sum_b |sum_{i in b}(y_i - c_i)| / n``."""
    c = np.atleast_2d(confidence)  # (R, n)
    gap = np.atleast_2d(correct) - c
    rows, n = c.shape
    cell = _bin_index(c, bins) + bins * np.arange(rows)[:, None]
    per_bin = np.bincount(cell.ravel(), weights=gap.ravel(), minlength=rows * bins).reshape(rows, bins)
    out = np.abs(per_bin).sum(axis=1) / n
    return np.asarray(out.reshape(np.shape(confidence)[:-1]))


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error: |accuracy - mean confidence| per equal-width bin, weighted by its size."""
    c, y = _confidences_and_outcomes(confidence, correct)
    return float(_ece(c, y, bins))


def reliability_bins(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> list[ReliabilityBin]:
    """The ``bins`` equal-width bins of a reliability diagram, empty ones included."""
    c, y = _confidences_and_outcomes(confidence, correct)
    index = _bin_index(c, bins)
    counts = np.bincount(index, minlength=bins)
    confidence_sums = np.bincount(index, weights=c, minlength=bins)
    correct_sums = np.bincount(index, weights=y, minlength=bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for b in range(bins):
        count = int(counts[b])
        mean = float(confidence_sums[b] / count) if count else None
        accuracy = float(correct_sums[b] / count) if count else None
        out.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), count, mean, accuracy))
    return out


def brier_scores(probabilities: Sequence[ArrayLike], gold: ArrayLike) -> NDArray[np.float64]:
    """Per-sample multi-class Brier score ``sum_k (p_k - 1[k = gold])^2``; vectors may differ in length."""
    vectors = [np.asarray(p, dtype=np.float64).ravel() for p in probabilities]
    g = np.asarray(gold).ravel()
    if len(vectors) != g.size or not vectors:
        raise ValueError(f"{len(vectors)} probability vectors for {g.size} gold labels")
    sizes = np.array([v.size for v in vectors])
    if np.any(sizes == 0):
        raise ValueError("every sample needs at least one class probability")
    if not np.issubdtype(g.dtype, np.integer) or np.any((g < 0) | (g >= sizes)):
        raise ValueError("gold must hold the index of a class of each sample")
    flat = np.concatenate(vectors)
    if not np.all((flat >= 0) & (flat <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    if not np.allclose(np.add.reduceat(flat, starts), 1.0, rtol=0.0, atol=1e-5):
        raise ValueError("each probability vector must sum to 1")
    squares = np.add.reduceat(flat**2, starts)
    return np.asarray(squares - 2 * flat[starts + g] + 1.0)


def brier_score(probabilities: Sequence[ArrayLike], gold: ArrayLike) -> float:
    """Mean multi-class Brier score: 0 for certain right answers, (k - 1) / k for uniform over k classes."""
    return float(np.mean(brier_scores(probabilities, gold)))


def calibration_interval(
    probabilities: Sequence[ArrayLike],
    gold: ArrayLike,
    rng: np.random.Generator,
    bins: int = 10,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> CalibrationIntervals:
    """Percentile bootstrap intervals for top-label ECE and the Brier score of the same predictions.

    The top label is the most probable class (the first on ties); its probability is the confidence and
    it is correct when it is the gold class. ECE is biased upward in small samples, and so its bootstrap.
    """
    scores = brier_scores(probabilities, gold)
    top = np.array([int(np.argmax(np.asarray(p, dtype=np.float64))) for p in probabilities])
    stated = np.array([float(np.max(np.asarray(p, dtype=np.float64))) for p in probabilities])
    right = (top == np.asarray(gold).ravel()).astype(np.float64)
    return CalibrationIntervals(
        ece=ece_interval(stated, right, rng, bins, confidence, resamples),
        brier=bootstrap_interval([scores], np.mean, rng, confidence, resamples),
    )


def ece_interval(
    stated: ArrayLike,
    correct: ArrayLike,
    rng: np.random.Generator,
    bins: int = 10,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> Interval:
    """Percentile bootstrap interval for :func:`expected_calibration_error` of ``stated`` confidences."""
    c, y = _confidences_and_outcomes(stated, correct)

    def statistic(c: NDArray[np.float64], y: NDArray[np.float64], axis: int = -1) -> NDArray[np.float64]:
        return _ece(c, y, bins)  # rows resampled along the last axis, which `axis` always is here

    return bootstrap_interval([c, y], statistic, rng, confidence, resamples)


# --- semantic entropy -------------------------------------------------------------------------------


def semantic_entropy(cluster_ids: Sequence[Hashable]) -> float:
    """Discrete semantic entropy: Shannon entropy (nats) of sampled answers' meaning clusters.

    ``cluster_ids[i]`` names the cluster of the i-th sampled answer; 0 when all share one meaning, log n
    when n samples all differ.
    """
    if not cluster_ids:
        raise ValueError("semantic entropy needs at least one sampled answer")
    counts = np.array(list(Counter(cluster_ids).values()), dtype=np.float64)
    share = counts / counts.sum()
    return float(-np.sum(share * np.log(share)) + 0.0)  # + 0.0: no -0.0 for a single cluster


def cluster_by_equivalence(answers: Sequence[str], same: Callable[[str, str], bool]) -> list[int]:
    """Greedy clustering: each answer joins the first cluster whose representative (first member) it is
    equivalent to, or opens a new one. Cluster ids count up from 0 in order of first appearance.

    ``same(representative, answer)`` is the equivalence test, e.g. bidirectional entailment.
    """
    representatives: list[str] = []
    ids = []
    for answer in answers:
        found = next((i for i, r in enumerate(representatives) if same(r, answer)), None)
        if found is None:
            found = len(representatives)
            representatives.append(answer)
        ids.append(found)
    return ids
