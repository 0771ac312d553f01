"""The original-minus-fresh gap by template: against scipy's paired t test and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evalsuite.stats.gaps import template_gap


def test_agrees_with_scipys_paired_t_test_on_template_means() -> None:
    original = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    fresh = [
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [1.0, 0.0, 1.0],
    ]
    gap = template_gap(original, fresh)
    means = [sum(f) / len(f) for f in fresh]
    reference = stats.ttest_rel(original, means)
    interval = reference.confidence_interval(0.95)
    assert gap.value == pytest.approx(float(np.mean(original) - np.mean(means)))
    assert gap.p_value == pytest.approx(reference.pvalue)
    assert gap.statistic == pytest.approx(reference.statistic)
    assert (gap.low, gap.high) == pytest.approx((interval.low, interval.high))
    assert gap.templates == 6


def test_interval_excludes_zero_exactly_when_the_test_rejects() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        original = rng.integers(0, 2, size=12).astype(float).tolist()
        fresh = rng.integers(0, 2, size=(12, 4)).astype(float).tolist()
        gap = template_gap(original, fresh, confidence=0.9)
        assert gap.p_value is not None and gap.low is not None and gap.high is not None
        assert (gap.p_value < 0.1) == (gap.low > 0 or gap.high < 0)


def test_templates_without_an_original_or_fresh_scores_are_left_out() -> None:
    gap = template_gap([1.0, None, 0.0, 1.0], [[0.0, 0.0], [1.0], [], [0.5, 0.5]])
    # by hand: the differences 1 - 0 = 1 and 1 - 0.5 = 0.5
    assert gap.templates == 2
    assert gap.value == pytest.approx(0.75)
    assert gap.stderr == pytest.approx(0.25)


def test_degenerate_samples() -> None:
    assert math.isnan(template_gap([], []).value)
    one = template_gap([1.0], [[0.0]])
    assert (one.value, one.low, one.p_value) == (1.0, None, None)
    same = template_gap([1.0, 1.0], [[0.0], [0.0]])
    assert (same.low, same.high, same.p_value) == (1.0, 1.0, 0.0)
    none = template_gap([1.0, 0.0], [[1.0], [0.0]])
    assert (none.value, none.p_value) == (0.0, 1.0)
