"""Distribution shift: KL against scipy, top-k KL as a lower bound, choice agreement by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from evalsuite.stats.shift import choice_shift, kl_divergence, routing_agreement, token_kl, with_tail

Array = NDArray[np.float64]


def random_distributions(rng: np.random.Generator, rows: int, vocab: int, concentration: float) -> Array:
    return np.asarray(rng.dirichlet(np.full(vocab, concentration), size=rows))


def top_k(base: Array, variant: Array, k: int) -> tuple[Array, Array]:
    """The base's k most likely tokens per row, as (base log-probs, variant log-probs at those tokens)."""
    order = np.argsort(-base, axis=-1)[:, :k]
    return np.log(np.take_along_axis(base, order, -1)), np.log(np.take_along_axis(variant, order, -1))


def test_kl_divergence_matches_scipy_entropy() -> None:
    rng = np.random.default_rng(0)
    p = random_distributions(rng, 50, 12, 0.5)
    q = random_distributions(rng, 50, 12, 0.5)
    ours = kl_divergence(np.log(p), np.log(q))
    assert ours.shape == (50,)
    assert ours == pytest.approx([stats.entropy(a, b) for a, b in zip(p, q, strict=True)], abs=1e-10)
    assert kl_divergence(np.log(p), np.log(p)) == pytest.approx(np.zeros(50), abs=1e-12)


def test_kl_divergence_ignores_outcomes_p_never_gives() -> None:
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" warning from 0 * -inf either
        kl = float(kl_divergence(log_p, np.log(q)))
    assert kl == pytest.approx(stats.entropy(p, q), abs=1e-12)
    assert kl == pytest.approx(math.log(2), abs=1e-12)
    assert float(kl_divergence(np.log(q), log_p)) == math.inf  # q puts mass where p has none


def test_token_kl_with_the_whole_vocabulary_is_the_full_kl() -> None:
    rng = np.random.default_rng(1)
    base = random_distributions(rng, 40, 30, 0.3)
    variant = random_distributions(rng, 40, 30, 0.3)
    mean_kl, tail, tokens, p99 = token_kl(*top_k(base, variant, 30))
    per_token = [stats.entropy(a, b) for a, b in zip(base, variant, strict=True)]
    assert tokens == 40
    assert tail < 1e-9
    assert mean_kl == pytest.approx(np.mean(per_token), abs=1e-6)
    # the 99th percentile, linearly interpolated between the two largest of 40 values
    ranked = sorted(per_token)
    assert p99 == pytest.approx(ranked[38] + 0.61 * (ranked[39] - ranked[38]), abs=1e-6)


@pytest.mark.parametrize("k", [1, 3, 10, 25])
def test_token_kl_of_the_top_k_is_a_lower_bound(k: int) -> None:
    rng = np.random.default_rng(2 + k)
    base = random_distributions(rng, 60, 30, 0.2)
    variant = 0.7 * base + 0.3 * random_distributions(rng, 60, 30, 0.2)  # a perturbed variant
    full = np.array([stats.entropy(a, b) for a, b in zip(base, variant, strict=True)])
    base_top, variant_top = top_k(base, variant, k)
    per_token = kl_divergence(with_tail(base_top), with_tail(variant_top))
    assert np.all(per_token <= full + 1e-12)  # data processing inequality, row by row
    mean_kl, tail, tokens, _ = token_kl(base_top, variant_top)
    assert 0.0 < mean_kl <= full.mean()
    expected_tail = 1 - np.sort(base, axis=-1)[:, ::-1][:, :k].sum(axis=-1)
    assert tail == pytest.approx(expected_tail.mean(), abs=1e-9)
    assert tokens == 60


def test_token_kl_of_nothing() -> None:
    mean_kl, tail, tokens, p99 = token_kl(np.zeros((0, 4)), np.zeros((0, 4)))
    assert (math.isnan(mean_kl), math.isnan(tail), tokens, math.isnan(p99)) == (True, True, 0, True)


def test_choice_shift_of_identical_models() -> None:
    base = [[-1.0, -2.5, -0.3], [-4.0, -1.0], [-2.0, -2.1, -9.0, -0.5]]
    kl, agreement, questions = choice_shift(base, base)
    assert kl == pytest.approx(0.0, abs=1e-12)
    assert (agreement, questions) == (1.0, 3)


def test_choice_shift_by_hand() -> None:
    # question 1: softmax(-1, -2) = (s, 1 - s) with s = sigmoid(1); the variant reverses it:
    # KL = s log(s / (1 - s)) + (1 - s) log((1 - s) / s) = 2s - 1, and the top choices disagree.
    # question 2: the same top choice with a changed spread: KL of (1/2, 1/2) from (2/3, 1/3).
    base = [[-1.0, -2.0], [math.log(0.5), math.log(0.5)], [-1.0], [-1.0, -2.0]]
    variant = [[-2.0, -1.0], [math.log(2 / 3), math.log(1 / 3)], [-3.0], [-1.0, -2.0, -3.0]]
    kl, agreement, questions = choice_shift(base, variant)
    s = 1 / (1 + math.exp(-1))
    first = (2 * s - 1) * math.log(s / (1 - s))  # the log-odds are 1
    second = 0.5 * math.log(0.5 / (2 / 3)) + 0.5 * math.log(0.5 / (1 / 3))
    assert questions == 2  # a single choice and a mismatched count are skipped
    assert kl == pytest.approx((first + second) / 2, abs=1e-12)
    assert agreement == 0.5  # argmax ties resolve to the first choice, as in the base


def test_choice_shift_of_nothing() -> None:
    kl, agreement, questions = choice_shift([], [])
    assert (math.isnan(kl), math.isnan(agreement), questions) == (True, True, 0)


def test_routing_agreement_counts_places_with_the_same_expert_set() -> None:
    # 2 tokens x 2 layers x top-2, sorted within each place
    base = np.array([[[0, 3], [1, 2]], [[2, 3], [0, 1]]])
    same = base.copy()
    one_moved = base.copy()
    one_moved[1, 0] = [1, 3]  # token 1, layer 0: one of its two experts changed
    assert routing_agreement(base, same) == 1.0
    assert routing_agreement(base, one_moved) == 0.75  # 3 of 4 places unchanged
    assert math.isnan(routing_agreement(base, base[:1]))  # other token counts: not comparable
    assert math.isnan(routing_agreement(np.zeros((0, 0, 0)), np.zeros((0, 0, 0))))
