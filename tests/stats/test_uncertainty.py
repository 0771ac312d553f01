"""Uncertainty statistics: known answers from scipy (Mann-Whitney U, entropy, histogram) and by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from evalsuite.stats.uncertainty import (
    _resampled_aurocs,
    auroc,
    auroc_interval,
    brier_score,
    brier_scores,
    calibration_interval,
    cluster_by_equivalence,
    ece_interval,
    expected_calibration_error,
    reliability_bins,
    semantic_entropy,
)

# --- AUROC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "levels", "seed"), [(30, 4, 0), (200, 7, 1), (1000, 50, 2), (501, 10_000, 3)])
def test_auroc_matches_mann_whitney_u_with_ties(n: int, levels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    positives = rng.random(n) < 0.3
    scores = rng.integers(0, levels, n) + positives * rng.integers(0, 3, n)  # informative, many ties
    u = stats.mannwhitneyu(scores[positives], scores[~positives]).statistic
    expected = u / (positives.sum() * (~positives).sum())
    assert auroc(scores, positives) == pytest.approx(expected, abs=1e-12)


def test_auroc_perfect_inverse_and_constant_scores() -> None:
    positives = np.array([False, False, True, False, True, True])
    assert auroc([0.1, 0.2, 0.9, 0.3, 0.8, 0.7], positives) == 1.0
    assert auroc([0.9, 0.8, 0.1, 0.7, 0.2, 0.3], positives) == 0.0
    assert auroc([0.5] * 6, positives) == 0.5


def test_auroc_needs_both_classes_and_valid_input() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="both classes"):
        auroc_interval([0.1, 0.2], [False, False], np.random.default_rng(0))
    with pytest.raises(ValueError, match="equal length"):
        auroc([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="finite"):
        auroc([0.1, float("nan")], [True, False])


def test_resampled_aurocs_equal_auroc_of_each_resample() -> None:
    rng = np.random.default_rng(4)
    n = 60
    positives = rng.random(n) < 0.2
    scores = rng.integers(0, 6, n).astype(np.float64)
    index = rng.integers(0, n, size=(300, n))
    fast = _resampled_aurocs(scores, positives, index)
    for row, value in zip(index, fast, strict=True):
        if positives[row].all() or not positives[row].any():
            assert math.isnan(value)
        else:
            assert value == pytest.approx(auroc(scores[row], positives[row]), abs=1e-12)


def test_auroc_interval_contains_the_value_and_is_seeded() -> None:
    rng = np.random.default_rng(5)
    positives = rng.random(400) < 0.4
    scores = rng.normal(size=400) + 0.8 * positives
    first = auroc_interval(scores, positives, np.random.default_rng(11))
    again = auroc_interval(scores, positives, np.random.default_rng(11))
    assert first == again
    assert first.method == "bootstrap percentile" and first.confidence == 0.95
    assert first.low is not None and first.high is not None and first.stderr is not None
    assert first.low < first.value < first.high
    assert first.value == auroc(scores, positives)
    # the bootstrap standard error is close to the Hanley-McNeil (1982) approximation
    a, n1, n0 = first.value, int(positives.sum()), int((~positives).sum())
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    hanley = math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))
    assert first.stderr == pytest.approx(hanley, rel=0.15)
    narrow = auroc_interval(scores, positives, np.random.default_rng(11), confidence=0.5)
    assert narrow.low is not None and narrow.high is not None
    assert first.low < narrow.low < narrow.high < first.high


def test_auroc_interval_gives_up_when_resamples_miss_a_class() -> None:
    scores = np.arange(12.0)
    positives = np.zeros(12, dtype=bool)
    positives[-1] = True  # P(a resample misses the one positive) = (11/12)^12, about 35%
    result = auroc_interval(scores, positives, np.random.default_rng(0), resamples=500)
    assert result.method == "none" and result.low is None and result.high is None
    assert result.value == 1.0


def test_auroc_interval_draws_its_resamples_in_a_few_array_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes the interval fast, counted instead of timed: the resamples are scored in batches of up
    to ``_CELLS_PER_BATCH`` drawn rows by one vectorised call each, never one Python call per resample."""
    import evalsuite.stats.uncertainty as uncertainty

    batches: list[tuple[int, int]] = []

    def counted(scores: NDArray[np.float64], positives: NDArray[np.bool_], index: NDArray[np.int64]) -> Any:
        batches.append(index.shape)
        return _resampled_aurocs(scores, positives, index)

    monkeypatch.setattr(uncertainty, "_resampled_aurocs", counted)
    monkeypatch.setattr(uncertainty, "_CELLS_PER_BATCH", 500_000)  # several batches, the last one short
    rng = np.random.default_rng(6)
    positives = rng.random(1000) < 0.3
    scores = rng.normal(size=1000) + positives
    result = auroc_interval(scores, positives, rng, resamples=2000)
    assert [shape for shape in batches if shape[0] > 1] == [(500, 1000)] * 4
    assert len(batches) <= 5  # and at most one more call, for the AUROC itself
    assert result.method == "bootstrap percentile" and result.low is not None and result.high is not None
    assert result.low < auroc(scores, positives) < result.high
    batches.clear()
    auroc_interval(scores, positives, rng, resamples=1234)
    assert [shape for shape in batches if shape[0] > 1] == [(500, 1000), (500, 1000), (234, 1000)]


# --- calibration ------------------------------------------------------------------------------------


def test_ece_of_perfect_calibration_is_zero() -> None:
    confidence = [0.25] * 4 + [0.75] * 4 + [1.0] * 3
    correct = [1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1]  # 1/4, 3/4 and 3/3 right
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-15)


def test_ece_of_overconfidence() -> None:
    assert expected_calibration_error([1.0] * 10, [1, 0] * 5) == pytest.approx(0.5)
    # two bins: (0.925 said, 0.5 right) on 4 of 5 samples and (0.15 said, 0 right) on 1
    value = expected_calibration_error([0.9, 0.9, 0.95, 0.95, 0.15], [1, 1, 0, 0, 0])
    assert value == pytest.approx(0.8 * (0.925 - 0.5) + 0.2 * 0.15)
    assert expected_calibration_error([0.9, 0.1], [1, 0], bins=1) == pytest.approx(0.0)


def test_reliability_bins_follow_numpy_histogram() -> None:
    rng = np.random.default_rng(7)
    confidence = np.concatenate([rng.random(500), np.linspace(0, 1, 11), [0.0, 1.0]])  # edges included
    correct = rng.random(confidence.size) < confidence
    for bins in (1, 10, 15):
        table = reliability_bins(confidence, correct, bins)
        counts, edges = np.histogram(confidence, bins=bins, range=(0, 1))
        assert [b.count for b in table] == counts.tolist()
        assert sum(b.count for b in table) == confidence.size
        assert [b.low for b in table] == edges[:-1].tolist() and [b.high for b in table] == edges[1:].tolist()
        which = np.digitize(confidence, edges[1:-1])  # the same bins, by another route
        expected = (
            sum(
                abs(correct[which == b].mean() - confidence[which == b].mean()) * np.sum(which == b)
                for b in range(bins)
                if np.any(which == b)
            )
            / confidence.size
        )
        assert expected_calibration_error(confidence, correct, bins) == pytest.approx(expected, abs=1e-12)
        for b, row in enumerate(table):
            if row.count:
                assert row.accuracy == pytest.approx(correct[which == b].mean())
                assert row.mean_confidence == pytest.approx(confidence[which == b].mean())


def test_reliability_bins_keep_empty_bins() -> None:
    table = reliability_bins([0.05, 0.95, 0.96], [0, 1, 0], bins=4)
    assert [b.count for b in table] == [1, 0, 0, 2]
    assert table[1].accuracy is None and table[1].mean_confidence is None
    assert table[3].accuracy == 0.5 and table[3].mean_confidence == pytest.approx(0.955)


def test_calibration_input_is_checked() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.2], [1])
    with pytest.raises(ValueError, match="0/1"):
        expected_calibration_error([0.5], [2])
    with pytest.raises(ValueError, match="equal length"):
        reliability_bins([0.5, 0.5], [1])
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error([0.5], [1], bins=0)


def test_brier_known_answers() -> None:
    assert brier_score([[0.0, 1.0, 0.0], [1.0, 0.0]], [1, 0]) == 0.0
    for k in (2, 3, 7):
        assert brier_score([np.full(k, 1 / k)] * 3, [0, k - 1, 1]) == pytest.approx((k - 1) / k)
    assert brier_score([[0.0, 1.0]], [0]) == 2.0  # certain and wrong
    # ragged vectors, against the definition one sample at a time
    rng = np.random.default_rng(8)
    probabilities = [rng.dirichlet(np.ones(k)) for k in rng.integers(2, 9, 50)]
    gold = np.array([rng.integers(0, p.size) for p in probabilities])
    expected = [np.sum((p - np.eye(p.size)[g]) ** 2) for p, g in zip(probabilities, gold, strict=True)]
    assert brier_scores(probabilities, gold) == pytest.approx(expected, abs=1e-12)


def test_brier_input_is_checked() -> None:
    with pytest.raises(ValueError, match="gold"):
        brier_score([[0.5, 0.5]], [2])
    with pytest.raises(ValueError, match="sum to 1"):
        brier_score([[0.5, 0.6]], [0])
    with pytest.raises(ValueError, match="probability vectors"):
        brier_score([[0.5, 0.5]], [0, 1])


def test_calibration_intervals_contain_the_values_and_are_seeded() -> None:
    rng = np.random.default_rng(9)
    probabilities = [rng.dirichlet(np.ones(4) * 0.5) for _ in range(300)]
    gold = np.array([rng.choice(4, p=p) if rng.random() < 0.7 else 0 for p in probabilities])
    first = calibration_interval(probabilities, gold, np.random.default_rng(3), resamples=500)
    assert first == calibration_interval(probabilities, gold, np.random.default_rng(3), resamples=500)
    assert first.brier.value == pytest.approx(brier_score(probabilities, gold))
    stated = np.array([p.max() for p in probabilities])
    right = np.array([int(np.argmax(p)) == g for p, g in zip(probabilities, gold, strict=True)])
    assert first.ece.value == pytest.approx(expected_calibration_error(stated, right))
    for interval in (first.ece, first.brier):
        assert interval.method == "bootstrap percentile"
        assert interval.low is not None and interval.high is not None
        assert interval.low <= interval.value <= interval.high
    alone = ece_interval(stated, right, np.random.default_rng(3), resamples=500)
    assert alone.value == first.ece.value and alone.low is not None


# --- semantic entropy -------------------------------------------------------------------------------


def test_semantic_entropy_known_answers() -> None:
    assert semantic_entropy([3, 3, 3, 3]) == 0.0
    for n in (2, 5, 10):
        assert semantic_entropy(list(range(n))) == pytest.approx(math.log(n))
    ids = [0, 0, 1, 2, 2, 2, 1, 0, 3]
    assert semantic_entropy(ids) == pytest.approx(float(stats.entropy(np.bincount(ids))))
    assert semantic_entropy(["a", "b", "a", "a"]) == pytest.approx(float(stats.entropy([3, 1])))
    with pytest.raises(ValueError, match="needs at least one sampled answer"):
        semantic_entropy([])


def test_cluster_by_equivalence_is_greedy_and_deterministic() -> None:
    calls: list[tuple[str, str]] = []

    def same(a: str, b: str) -> bool:
        calls.append((a, b))
        return a.strip(".").lower() == b.strip(".").lower()

    answers = ["Paris.", "paris", "Lyon", "PARIS", "Nice", "lyon."]
    assert cluster_by_equivalence(answers, same) == [0, 0, 1, 0, 2, 1]
    assert ("Paris.", "lyon.") in calls and ("Lyon", "lyon.") in calls  # compared with representatives only
    assert ("paris", "PARIS") not in calls
    assert cluster_by_equivalence([], same) == []

    def first_letter(a: str, b: str) -> bool:  # not transitive: the first matching cluster wins
        return a[0] == b[0] or a[-1] == b[-1]

    assert cluster_by_equivalence(["ab", "cb", "ca", "xa"], first_letter) == [0, 0, 1, 1]
    assert semantic_entropy(cluster_by_equivalence(answers, same)) == pytest.approx(
        float(stats.entropy([3, 2, 1]))
    )
