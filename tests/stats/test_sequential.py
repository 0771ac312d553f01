"""Anytime-valid confidence sequences and the early-stopping non-inferiority verdict: error under optional
stopping (against a naive Wald interval peeked at the same looks), coverage, power, and literal values
from the reference implementation (confseq)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from evalsuite.stats.sequential import Decision, checkpoints, confidence_sequence, decide

Array = NDArray[np.float64]
Z95 = 1.6448536269514722  # standard normal 0.95 quantile: the one-sided 5% Wald bound


def paired_binary(rng: np.random.Generator, shape: tuple[int, int], mean: float, discordance: float) -> Array:
    """Differences of paired binary scores: +1 w.p. (discordance + mean) / 2, -1 w.p. (discordance - mean)
    / 2, else 0; so their mean is ``mean`` and the share of discordant pairs ``discordance``."""
    up, down = (discordance + mean) / 2, (discordance - mean) / 2
    u = rng.random(shape)
    return np.where(u < up, 1.0, np.where(u < up + down, -1.0, 0.0))


@pytest.mark.parametrize("discordance", [0.1, 0.3])
def test_error_under_optional_stopping_stays_below_alpha(discordance: float) -> None:
    """At the null boundary (true improvement exactly -margin), peeking after every pair and stopping at
    the first settled verdict declares "non_inferior" (or "inferior") in at most alpha of the sequences,
    while a fixed-n Wald bound checked only at five looks (100, 200, 400, 800, 1,000 pairs) errs far above
    alpha.

    Observed with this seed (2,000 sequences of 1,000 pairs), discordance 0.1 then 0.3: false
    "non_inferior" 0.021 and 0.026, false "inferior" 0.022 and 0.039 (8,000 sequences of another seed:
    0.020, 0.030 and 0.023, 0.031); Wald peeked at the five looks 0.152 and 0.132, at the last look alone
    0.054 and 0.046, its nominal 0.05.
    """
    alpha, margin, n, sequences = 0.05, 0.03, 1000, 2000
    d = paired_binary(np.random.default_rng(2024), (sequences, n), -margin, discordance)
    # The bounds are a running intersection: the lower one on all n pairs is the highest of the lower
    # bounds at every n' <= n, so it lies above -margin exactly when some look would have said
    # "non_inferior" (likewise the upper one for "inferior"): one call per sequence covers every look.
    decisions = [decide(row, margin, alpha) for row in d]
    false_non_inferior = np.mean([decision.low > -margin for decision in decisions])
    false_inferior = np.mean([decision.high < -margin for decision in decisions])
    assert false_non_inferior <= alpha
    assert false_inferior <= alpha

    looks = np.array(checkpoints(n, 100, 2))
    assert looks.tolist() == [100, 200, 400, 800, 1000]
    sums, squares = np.cumsum(d, axis=1)[:, looks - 1], np.cumsum(d * d, axis=1)[:, looks - 1]
    mean = sums / looks
    variance = (squares - looks * mean**2) / (looks - 1)
    wald_lower = mean - Z95 * np.sqrt(variance / looks)
    peeked = float(np.mean((wald_lower > -margin).any(axis=1)))
    assert peeked > 2 * alpha
    assert 0.035 < float(np.mean(wald_lower[:, -1] > -margin)) < 0.065  # nominal at one fixed n


def test_covers_the_mean_of_bounded_continuous_scores_at_all_times() -> None:
    # Scores in [0, 1]: variant ~ Beta(2, 2), baseline ~ Beta(2, 3); true mean difference 1/2 - 2/5.
    rng = np.random.default_rng(11)
    truth, alpha, sequences = 0.1, 0.05, 500
    d = rng.beta(2, 2, (sequences, 1000)) - rng.beta(2, 3, (sequences, 1000))
    missed, widths = 0, []
    for row in d:
        lower, upper = confidence_sequence(row, alpha)
        missed += bool(np.any(lower > truth) or np.any(upper < truth))
        widths.append(upper[-1] - lower[-1])
    assert missed / sequences <= alpha  # observed 0.014
    assert 0.05 < float(np.mean(widths)) < 0.07  # observed 0.060 after 1,000 pairs


def test_power_equal_models_settle_non_inferior_early() -> None:
    """Equal models (true difference 0), 90% agreement, margin 0.05, looks at 100, 200, 400, ..., 2,000
    pairs: observed with this seed, the share of the 200 sequences settled "non_inferior" is 0.22, 0.42,
    0.68, 0.91, 0.995 and 1.0 at the looks (median first settled look: 400 pairs)."""
    alpha, margin, n, sequences = 0.05, 0.05, 2000, 200
    d = paired_binary(np.random.default_rng(7), (sequences, n), 0.0, 0.1)
    looks = np.array(checkpoints(n, 100, 2))
    settled = np.array([confidence_sequence(row, 2 * alpha)[0][looks - 1] > -margin for row in d])
    by_look = settled.mean(axis=0)
    assert by_look[looks.tolist().index(800)] > 0.8
    assert by_look[-1] > 0.95
    assert decide(d[0], margin, alpha).status == "non_inferior"


def test_literal_bounds_match_the_reference_implementation() -> None:
    # Expected values: confseq 0.0.11, betting_cs(x = (d + 1) / 2, breaks=1000, theta=1/2, trunc_scale=1/2,
    # m_trunc=True, running_intersection=True) with bets lambda_predmix_eb(x, alpha=alpha / 2), mapped to
    # 2 x - 1.
    lower, upper = confidence_sequence(np.zeros(500), 0.05)
    assert (lower[-1], upper[-1]) == pytest.approx((-0.016, 0.016), abs=1e-9)
    assert -0.05 < lower[-1] < 0 < upper[-1] < 0.05
    lower, upper = confidence_sequence(np.zeros(100), 0.05)
    assert (lower[-1], upper[-1]) == pytest.approx((-0.070, 0.070), abs=1e-9)
    lower, upper = confidence_sequence(np.tile([1.0, 0.0, -1.0, 0.0, 0.0], 100), 0.05)
    assert (lower[-1], upper[-1]) == pytest.approx((-0.094, 0.102), abs=1e-9)
    lower, upper = confidence_sequence(np.ones(200), 0.05)
    assert lower[[0, 9, 49, 99, 199]] == pytest.approx([-1.0, 0.056, 0.734, 0.860, 0.928], abs=1e-9)
    assert np.all(upper == 1.0)  # m = 1 is never bet against when every x is 1


def test_nothing_is_excluded_after_one_pair() -> None:
    # The first bet is sqrt(2 log 40 / (1/4 * log 2)) ~ 6.5, capped at c/m or c/(1-m); one observation
    # multiplies a capital by at most 1 + 6.5 < 2 / alpha = 40, so the first bounds are the whole range.
    for first in (-1.0, 0.0, 0.5, 1.0):
        lower, upper = confidence_sequence([first], 0.05)
        assert (lower[0], upper[0]) == (-1.0, 1.0)


def test_bounds_are_a_running_intersection() -> None:
    rng = np.random.default_rng(3)
    for d in (
        paired_binary(rng, (1, 3000), 0.02, 0.2)[0],
        rng.uniform(-1, 1, 3000),
        rng.choice([-1.0, 1.0], 3000),
    ):
        lower, upper = confidence_sequence(d, 0.1)
        assert lower.shape == upper.shape == (3000,)
        assert np.all(np.diff(lower) >= 0)
        assert np.all(np.diff(upper) <= 0)
        assert np.all((lower >= -1) & (lower <= upper) & (upper <= 1))
        assert upper[-1] - lower[-1] < 0.2


def test_decide_verdicts_and_reason() -> None:
    # Two-sided 90% sequences (one-sided 5%); bounds from confseq as in the literal test above.
    decision = decide(np.zeros(500), margin=0.03, alpha=0.05)
    assert (decision.status, decision.n, decision.settled) == ("non_inferior", 500, True)
    assert (decision.low, decision.high) == pytest.approx((-0.012, 0.012), abs=1e-9)
    assert decision.reason == (
        "after 500 pairs the 90% confidence sequence of variant - baseline [-0.012, +0.012] "
        "lies above -0.03, the non-inferiority margin"
    )
    assert decision == Decision("non_inferior", 500, decision.low, decision.high, decision.reason)

    worse = np.tile([-1.0, 0.0, 0.0, 0.0, 0.0], 100)  # mean -0.2: sequence [-0.262, -0.154]
    inferior = decide(worse, margin=0.1, alpha=0.05)
    assert inferior.status == "inferior"
    assert (inferior.low, inferior.high) == pytest.approx((-0.262, -0.154), abs=1e-9)
    assert "[-0.262, -0.154] lies below -0.1, the non-inferiority margin" in inferior.reason

    # Lower is better: a drop of the metric is an improvement; the bounds stay variant - baseline.
    better = decide(worse, margin=0.1, alpha=0.05, higher_is_better=False)
    assert better.status == "non_inferior"
    assert (better.low, better.high) == pytest.approx((-0.262, -0.154), abs=1e-9)
    assert better.reason.endswith(
        "[-0.262, -0.154] lies below +0.1, the non-inferiority margin (lower is better)"
    )
    raised = decide(-worse, margin=0.1, alpha=0.05, higher_is_better=False)  # sequence [+0.154, +0.262]
    assert raised.status == "inferior"
    assert (raised.low, raised.high) == pytest.approx((0.154, 0.262), abs=1e-9)
    assert "[+0.154, +0.262] lies above +0.1," in raised.reason

    early = decide(worse[:20], margin=0.1, alpha=0.05)  # sequence [-0.478, +0.118]
    assert (early.status, early.settled) == ("unsettled", False)
    assert "[-0.478, +0.118] still contains -0.1," in early.reason
    assert "still contains +0," in decide(np.zeros(5), margin=0.0, alpha=0.05).reason


def test_checkpoints() -> None:
    assert checkpoints(1000, 100, 2) == [100, 200, 400, 800, 1000]
    assert checkpoints(1000, 100, 1.5) == [100, 150, 225, 337, 505, 757, 1000]
    assert checkpoints(300, 100, 1.15) == [100, 115, 132, 151, 173, 198, 227, 261, 300]
    assert checkpoints(800, 100, 2) == [100, 200, 400, 800]
    assert checkpoints(50, 100, 2) == [50]
    assert checkpoints(5, 1, 1.001) == [1, 2, 3, 4, 5]
    for total, first, growth, message in [
        (0, 1, 2.0, "total must be an integer >= 1"),
        (10, 0, 2.0, "first must be an integer >= 1"),
        (10, 1, 1.0, "growth must be a finite number > 1"),
        (10, 1, float("nan"), "growth must be a finite number > 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            checkpoints(total, first, growth)


def test_invalid_inputs_raise() -> None:
    for alpha in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\)"):
            confidence_sequence([0.0, 1.0], alpha)
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 0.5\)"):
        decide([0.0, 1.0], margin=0.03, alpha=0.5)
    for bad in ([0.5, 1.5], [-1.01], [0.0, float("nan")], [float("inf")]):
        with pytest.raises(ValueError, match=r"lie in \[-1, 1\]"):
            confidence_sequence(bad, 0.05)
    with pytest.raises(ValueError, match="empty"):
        confidence_sequence([], 0.05)
    with pytest.raises(ValueError, match="empty"):
        decide([], margin=0.03, alpha=0.05)
    with pytest.raises(ValueError, match="one-dimensional"):
        confidence_sequence([[0.0, 1.0]], 0.05)
    with pytest.raises(ValueError, match="grid must be an integer >= 2"):
        confidence_sequence([0.0], 0.05, grid=1)
    for margin in (-0.01, float("nan")):
        with pytest.raises(ValueError, match="margin must be finite and >= 0"):
            decide([0.0], margin=margin, alpha=0.05)
