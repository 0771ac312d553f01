"""Non-inferiority, equivalence (TOST) and multiplicity adjustment against statsmodels and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from evalsuite.stats.decisions import (
    Adjustment,
    adjust_pvalues,
    interval_equivalence,
    non_inferiority,
    tost_paired,
)


def test_non_inferiority_needs_the_bound_strictly_above_minus_margin() -> None:
    assert non_inferiority(-0.049, 0.05, 0.05).non_inferior
    assert not non_inferiority(-0.05, 0.05, 0.05).non_inferior
    assert not non_inferiority(-0.2, 0.05, 0.05).non_inferior
    decision = non_inferiority(0.01, 0.02, 0.025)
    assert (decision.margin, decision.alpha, decision.lower_bound, decision.non_inferior) == (
        0.02,
        0.025,
        0.01,
        True,
    )


@pytest.mark.parametrize(
    ("shift", "margin"), [(0.0, 0.1), (0.05, 0.1), (-0.08, 0.1), (0.3, 0.1), (0.01, 0.02)]
)
def test_tost_matches_statsmodels_ttost_paired(shift: float, margin: float) -> None:
    rng = np.random.default_rng(0)
    baseline = rng.normal(0.5, 0.2, size=150)
    variant = baseline + rng.normal(shift, 0.25, size=150)
    # statsmodels tests x1 - x2 within (low, upp): x1 = variant, x2 = baseline gives variant - baseline
    expected, _, _ = ttost_paired(variant, baseline, -margin, margin)
    ours = tost_paired(variant - baseline, margin, 0.05)
    assert ours.p_value == pytest.approx(float(expected), abs=1e-10)
    assert ours.equivalent == (float(expected) < 0.05)
    # with symmetric margins the direction of the difference does not change the larger p-value
    swapped, _, _ = ttost_paired(baseline, variant, -margin, margin)
    assert ours.p_value == pytest.approx(float(swapped), abs=1e-10)


def test_tost_declares_equivalence_only_for_a_small_difference() -> None:
    rng = np.random.default_rng(1)
    close = rng.normal(0.001, 0.05, size=2000)
    far = rng.normal(0.2, 0.05, size=2000)
    assert tost_paired(close, 0.02, 0.05).equivalent
    assert not tost_paired(far, 0.02, 0.05).equivalent
    assert tost_paired(far, 0.02, 0.05).p_value == pytest.approx(1.0, abs=1e-9)


def test_tost_with_no_spread_decides_from_the_mean() -> None:
    assert tost_paired([0.01] * 20, 0.05, 0.05).equivalent
    outside = tost_paired([0.07] * 20, 0.05, 0.05)
    assert (outside.equivalent, outside.p_value) == (False, 1.0)


def test_interval_equivalence_needs_the_interval_inside_both_margins() -> None:
    assert interval_equivalence(-0.01, 0.02, 0.03, 0.05).equivalent
    assert not interval_equivalence(-0.04, 0.02, 0.03, 0.05).equivalent
    assert not interval_equivalence(-0.01, 0.03, 0.03, 0.05).equivalent
    assert interval_equivalence(-0.01, 0.02, 0.03, 0.05).p_value is None


def test_holm_and_bh_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max 0.02, 0.03,
    # 0.06, 0.06; back in input order:
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-12)
    # BH: sorted p times 4 / rank = 0.02, 0.02, 0.04, 0.04; running min from the top keeps them:
    assert adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02], abs=1e-12)
    # BH running minimum: 0.04 * 3 / 2 = 0.06 > 0.045 * 3 / 3 = 0.045, so the middle one drops to 0.045
    assert adjust_pvalues([0.001, 0.04, 0.045], "bh") == pytest.approx([0.003, 0.045, 0.045], abs=1e-12)
    # Holm caps at 1
    assert adjust_pvalues([0.5, 0.6], "holm") == pytest.approx([1.0, 1.0], abs=1e-12)
    assert adjust_pvalues([], "holm") == []


def test_adjustments_match_statsmodels() -> None:
    p = np.random.default_rng(2).beta(0.4, 2.0, size=25)
    methods: list[tuple[Adjustment, str]] = [("holm", "holm"), ("bh", "fdr_bh")]
    for ours, theirs in methods:
        expected = multipletests(p, method=theirs)[1]
        assert adjust_pvalues(p, ours) == pytest.approx(expected.tolist(), abs=1e-12)
        adjusted = np.asarray(adjust_pvalues(p, ours), dtype=np.float64)
        assert np.all(adjusted >= p - 1e-15)
        assert np.all(adjusted <= 1.0)
