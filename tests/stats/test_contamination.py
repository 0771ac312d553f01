"""Min-K% and Min-K%++ on hand-computed cases, against the authors' formulation, and their refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from evalsuite.stats.contamination import lowest_count, min_k, min_k_plus_plus

# Five tokens after the first: (log p of the token, mean and standard deviation of log p there).
# Standardised scores, (logprob - mean) / std: 1.0, -0.5, 2.0, 0.0, -2.0.
FIVE = np.array(
    [
        [-1.0, -2.0, 1.0],
        [-4.0, -3.0, 2.0],
        [-0.5, -1.5, 0.5],
        [-2.0, -2.0, 4.0],
        [-3.0, -1.0, 1.0],
    ]
)


def test_min_k_plus_plus_averages_the_lowest_standardised_scores() -> None:
    assert min_k_plus_plus(FIVE) == -2.0  # 20% of 5: the lowest, token 5
    assert min_k_plus_plus(FIVE, k=0.4) == -1.25  # (-2.0 + -0.5) / 2
    assert min_k_plus_plus(FIVE, k=1.0) == pytest.approx(0.1)  # (1 - 0.5 + 2 + 0 - 2) / 5


def test_min_k_averages_the_lowest_log_probabilities() -> None:
    """Raw log-probabilities pick token 2 as the least likely, where Min-K%++ picks token 5: token 2 is
    unlikely, but so is everything else the model predicts there."""
    assert min_k(FIVE) == -4.0
    assert min_k(FIVE, k=0.4) == -3.5  # (-4 + -3) / 2
    assert min_k(FIVE, k=1.0) == pytest.approx(-2.1)  # (-1 - 4 - 0.5 - 2 - 3) / 5


def test_k_rounds_down_but_keeps_at_least_one_token() -> None:
    assert min_k_plus_plus(FIVE, k=0.3) == -2.0  # 1.5 tokens: one
    assert min_k_plus_plus(FIVE, k=0.1) == -2.0  # 0.5 tokens: still one
    assert min_k(FIVE, k=0.59) == -3.5  # 2.95 tokens: two
    assert [lowest_count(n, 0.2) for n in (1, 4, 5, 9, 10, 11)] == [1, 1, 1, 1, 2, 2]
    assert lowest_count(100, 0.29) == 29  # 100 * 0.29 is 28.999999999999996 in binary floating point
    assert lowest_count(10, 0.3) == 3 and lowest_count(7, 1.0) == 7


def test_a_certain_distribution_scores_its_limit() -> None:
    """Sigma 0 (the model put all its mass on one token): 0 for that token, minus infinity otherwise."""
    certain = np.array([[0.0, 0.0, 0.0], [-3.0, -1.0, 1.0]])
    assert min_k_plus_plus(certain, k=1.0) == -1.0  # (0 + -2) / 2
    assert min_k_plus_plus(np.array([[-30.0, 0.0, 0.0], [-1.0, -1.0, 1.0]])) == -math.inf


def authors_scores(logits: NDArray[np.float64], ids: NDArray[np.int64], ratio: float) -> tuple[float, float]:
    """Min-K% and Min-K%++ as the authors' run.py writes them for one text, in numpy: positions 1.. of the
    ids, the logits before them, sigma from E[log p^2] - mu^2, ``int(len * ratio)`` of the sorted scores."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)))[:-1]
    probs = np.exp(log_probs)
    token_log_probs = np.take_along_axis(log_probs, ids[1:, None], axis=-1)[:, 0]
    mu = (probs * log_probs).sum(-1)
    sigma = (probs * np.square(log_probs)).sum(-1) - np.square(mu)
    mink_plus = (token_log_probs - mu) / np.sqrt(sigma)
    k_length = int(len(token_log_probs) * ratio)
    return (
        float(np.mean(np.sort(token_log_probs)[:k_length])),
        float(np.mean(np.sort(mink_plus)[:k_length])),
    )


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.5, 1.0])
def test_scores_equal_the_authors_formulation(ratio: float) -> None:
    rng = np.random.default_rng(0)
    for tokens in (11, 20, 33):
        logits = rng.normal(scale=3.0, size=(tokens, 50))
        ids = rng.integers(0, 50, size=tokens)
        log_probs = logits - logits.max(-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
        probs = np.exp(log_probs[:-1])
        mean = (probs * log_probs[:-1]).sum(-1)
        std = np.sqrt((probs * np.square(log_probs[:-1] - mean[:, None])).sum(-1))
        chosen = np.take_along_axis(log_probs[:-1], ids[1:, None], axis=-1)[:, 0]
        statistics = np.stack([chosen, mean, std], axis=1)
        expected_mink, expected_plus = authors_scores(logits, ids, ratio)
        assert min_k(statistics, ratio) == pytest.approx(expected_mink, abs=1e-12)
        assert min_k_plus_plus(statistics, ratio) == pytest.approx(expected_plus, abs=1e-9)


@pytest.mark.parametrize("k", [0.0, -0.2, 1.5, math.nan])
def test_k_outside_zero_to_one_is_refused(k: float) -> None:
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        min_k_plus_plus(FIVE, k)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        min_k(FIVE, k)


def test_a_text_without_scored_tokens_is_refused() -> None:
    with pytest.raises(ValueError, match="no tokens to score"):
        min_k_plus_plus(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="no tokens to score"):
        min_k(np.zeros((0, 3)))


@pytest.mark.parametrize("shape", [(5,), (5, 2), (2, 5, 3)])
def test_an_array_of_another_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="token_statistics array"):
        min_k_plus_plus(np.zeros(shape))
