"""Paired resampling of two models' per-sample rows: the cluster bootstrap against resampling the samples
themselves, and the permutation test against exact enumerations worked by hand and scipy's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from evalsuite.probes.comparable import DropRate, Mean
from evalsuite.stats.weighted import (
    bootstrap_differences,
    paired_bootstrap,
    paired_permutation_pvalue,
    value,
)

# (clean, mean perturbed score) of six samples: a drop rate per model
BASE = np.array([[1, 1], [1, 0.5], [0, 0], [1, 1], [1, 0], [0, 0.5]], dtype=np.float64)
VARIANT = np.array([[1, 0.5], [1, 0], [1, 0], [1, 1], [0, 0], [1, 0.5]], dtype=np.float64)


def drop_rate(rows: np.ndarray, picked: list[int]) -> float:
    """1 - sum(perturbed) / sum(clean) over the picked samples, one term per draw."""
    return 1 - sum(rows[i][1] for i in picked) / sum(rows[i][0] for i in picked)


def test_each_bootstrap_replicate_is_the_statistic_of_the_resampled_samples() -> None:
    draws = bootstrap_differences(DropRate(1, 0), BASE, VARIANT, np.random.default_rng(3), 40)
    picks = np.random.default_rng(3).integers(0, 6, size=(40, 6))  # the same draws, as sample indices
    brute = []
    for picked in picks.tolist():
        if sum(BASE[i][0] for i in picked) == 0 or sum(VARIANT[i][0] for i in picked) == 0:
            brute.append(np.nan)  # a resample without a clean right answer: no drop rate
        else:
            brute.append(drop_rate(VARIANT, picked) - drop_rate(BASE, picked))
    np.testing.assert_allclose(draws, brute, rtol=0, atol=1e-12)


def test_bootstrap_interval_is_the_percentile_interval_of_those_replicates() -> None:
    rows_b, rows_v = np.tile(BASE, (3, 1)), np.tile(VARIANT, (3, 1))  # 18 samples: PDR always defined
    intervals = paired_bootstrap(DropRate(1, 0), rows_b, rows_v, np.random.default_rng(5), (0.9, 0.5), 50)
    picks = np.random.default_rng(5).integers(0, 18, size=(50, 18))
    brute = [drop_rate(rows_v, p) - drop_rate(rows_b, p) for p in picks.tolist()]
    assert intervals is not None
    np.testing.assert_allclose(intervals[0], np.quantile(brute, [0.05, 0.95]), atol=1e-12)
    np.testing.assert_allclose(intervals[1], np.quantile(brute, [0.25, 0.75]), atol=1e-12)


def test_no_interval_when_the_statistic_is_often_undefined() -> None:
    # one sample of two has a clean score: a quarter of the resamples have no drop rate
    base = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert paired_bootstrap(DropRate(1, 0), base, base, np.random.default_rng(0), (0.95,), 400) is None


def test_identical_rows_differ_by_nothing() -> None:
    intervals = paired_bootstrap(Mean(), BASE, BASE, np.random.default_rng(0), (0.95,), 200)
    assert intervals == [(0.0, 0.0)]
    assert paired_permutation_pvalue(Mean(), BASE, BASE, np.random.default_rng(0)) == 1.0


def test_permutation_mean_worked_by_hand() -> None:
    # differences 2, 1, -1 over 3 samples: the 8 sign patterns sum to 4, 2, 2, 0, 0, -2, -2, -4;
    # observed 2 -> 3/8 at least as large, 7/8 at most as large: p = 2 * 3/8
    base, variant = np.array([[0.0], [0.0], [1.0]]), np.array([[2.0], [1.0], [0.0]])
    assert paired_permutation_pvalue(Mean(), base, variant, np.random.default_rng(0)) == 0.75


def test_permutation_of_a_drop_rate_worked_by_hand() -> None:
    # (clean, perturbed) rows; the drop rate is a ratio, so swapping a sample is not a sign flip:
    # base 1 - 2/2 = 0, variant 1 - 1/3 = 2/3: observed 2/3. Swapping sample 0 gives 1/3 - 1/2, sample 1
    # 1/2 - 1/3, both 0 - 2/3; sample 2 is the same for both models, so each outcome appears twice:
    # {2/3, -1/6, 1/6, -2/3} x 2 -> 2/8 at least 2/3, 8/8 at most: p = 2 * 2/8
    base = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    variant = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert value(DropRate(1, 0), base) == 0.0
    assert value(DropRate(1, 0), variant) == pytest.approx(2 / 3)
    assert paired_permutation_pvalue(DropRate(1, 0), base, variant, np.random.default_rng(0)) == 0.5


def test_patterns_where_the_statistic_is_undefined_are_left_out() -> None:
    # swapping either sample alone leaves one side without a clean right answer: of the 4 patterns only
    # "no swap" (+1) and "swap both" (-1) count, so p = 2 * min(1/2, 2/2) = 1 (not 2 * 1/4)
    base = np.array([[1.0, 1.0], [0.0, 0.0]])
    variant = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert paired_permutation_pvalue(DropRate(1, 0), base, variant, np.random.default_rng(0)) == 1.0


def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y - x, axis=axis)  # type: ignore[no-any-return]


@pytest.mark.parametrize("seed", range(4))
def test_exact_permutation_of_a_mean_is_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2, 11).astype(np.float64)
    variant = rng.integers(0, 2, 11).astype(np.float64)
    if np.array_equal(base, variant):
        variant[0] = 1 - variant[0]
    expected = stats.permutation_test(
        (base, variant), mean_difference, permutation_type="samples", n_resamples=np.inf
    ).pvalue
    got = paired_permutation_pvalue(Mean(), base[:, None], variant[:, None], np.random.default_rng(0))
    assert got == pytest.approx(expected, rel=1e-12)


def test_monte_carlo_permutation_is_close_to_the_exact_p_value() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 16)
    variant = base + rng.normal(0.6, 1, 16)
    d = variant - base
    observed = d.mean()
    null = [np.mean(np.array(signs) * d) for signs in itertools.product((1, -1), repeat=16)]
    exact = 2 * min(np.mean(np.array(null) >= observed), np.mean(np.array(null) <= observed))
    got = paired_permutation_pvalue(Mean(), base[:, None], variant[:, None], np.random.default_rng(2), 20_000)
    assert 0.005 < exact < 0.5  # a case where the two can differ
    assert got == pytest.approx(exact, abs=0.01)
