"""Power and sample sizes: Connor's McNemar formula written independently, statsmodels for paired means."""

from __future__ import annotations

import math

import pytest
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower, TTestPower

from evalsuite.stats.power import (
    mcnemar_mde,
    mcnemar_power,
    mcnemar_sample_size,
    paired_mean_mde,
    paired_mean_power,
    paired_mean_sample_size,
)

CASES = [  # (delta, discordance, alpha, power)
    (0.05, 0.3, 0.05, 0.8),
    (0.02, 0.1, 0.05, 0.9),
    (0.1, 0.25, 0.01, 0.8),
    (0.03, 0.03, 0.05, 0.8),  # every discordant pair favours one side
    (-0.04, 0.2, 0.1, 0.95),
]


def connor_sample_size(delta: float, psi: float, alpha: float, power: float) -> int:
    """Connor (1987), Biometrics 43:207-211: n = [z_a sqrt(psi) + z_b sqrt(psi - delta^2)]^2 / delta^2."""
    z_alpha = float(norm.isf(alpha / 2))
    z_beta = float(norm.isf(1 - power))
    return math.ceil((z_alpha * math.sqrt(psi) + z_beta * math.sqrt(psi - delta**2)) ** 2 / delta**2)


@pytest.mark.parametrize(("delta", "psi", "alpha", "power"), CASES)
def test_mcnemar_sample_size_is_connors(delta: float, psi: float, alpha: float, power: float) -> None:
    n = mcnemar_sample_size(delta, psi, alpha, power)
    assert n == connor_sample_size(abs(delta), psi, alpha, power)
    assert mcnemar_power(delta, n, psi, alpha) >= power  # the smallest n that reaches the power
    assert mcnemar_power(delta, n - 1, psi, alpha) < power


def test_mcnemar_sample_size_of_a_known_case() -> None:
    # delta 0.05, psi 0.3: (1.95996 * 0.54772 + 0.84162 * 0.54544)^2 / 0.0025 = 939.5 -> 940 pairs
    assert mcnemar_sample_size(0.05, 0.3) == 940
    with pytest.raises(ValueError, match="non-zero"):
        mcnemar_sample_size(0.0, 0.3)


@pytest.mark.parametrize(("n", "psi"), [(1000, 0.3), (200, 0.1), (5000, 0.02), (300, 0.0), (50, 0.5)])
def test_mcnemar_mde_inverts_the_power(n: int, psi: float) -> None:
    mde = mcnemar_mde(n, psi, 0.05, 0.8)
    assert 0 < mde < 1
    assert mcnemar_power(mde, n, psi, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert mcnemar_power(0.9 * mde, n, psi, 0.05) < 0.8


def test_mcnemar_edge_cases() -> None:
    assert mcnemar_power(0.0, 500, 0.2) == 0.05
    assert mcnemar_power(0.1, 0, 0.2) == 0.05
    assert mcnemar_mde(0, 0.3) == math.inf
    assert mcnemar_mde(3, 0.3, power=0.99) == math.inf  # three pairs never reach 99% power
    assert mcnemar_power(0.3, 1000, 0.3) > 0.999


@pytest.mark.parametrize(("delta", "sd"), [(0.05, 0.4), (0.1, 1.0), (0.02, 0.3), (0.5, 1.0), (-0.2, 0.7)])
def test_paired_mean_sample_size_matches_statsmodels(delta: float, sd: float) -> None:
    n = paired_mean_sample_size(delta, sd)
    normal = NormalIndPower().solve_power(effect_size=abs(delta) / sd, alpha=0.05, power=0.8, ratio=0)
    assert abs(n - math.ceil(normal)) <= 1  # statsmodels also counts the far tail
    t_based = TTestPower().solve_power(effect_size=abs(delta) / sd, alpha=0.05, power=0.8)
    assert 0 <= math.ceil(t_based) - n <= 2  # the t-test needs a pair or two more than the normal one


def test_paired_mean_power_is_the_normal_power_without_the_far_tail() -> None:
    for delta, sd, n in [(0.05, 0.4, 100), (0.1, 1.0, 785), (0.02, 0.3, 50)]:
        z = norm.isf(0.025)
        far_tail = norm.cdf(-z - delta * math.sqrt(n) / sd)
        expected = NormalIndPower().power(delta / sd, n, 0.05, ratio=0)
        assert paired_mean_power(delta, sd, n) + far_tail == pytest.approx(expected, abs=1e-9)


def test_paired_mean_mde_inverts_the_power() -> None:
    for sd, n in [(0.4, 500), (1.0, 30), (0.05, 10_000)]:
        mde = paired_mean_mde(sd, n)
        assert paired_mean_power(mde, sd, n) == pytest.approx(0.8, abs=1e-9)
        assert paired_mean_sample_size(mde, sd) == pytest.approx(n, abs=1)
    assert paired_mean_mde(0.4, 0) == math.inf
    with pytest.raises(ValueError, match="non-zero"):
        paired_mean_sample_size(0.0, 1.0)
