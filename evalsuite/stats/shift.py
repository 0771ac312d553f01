"""Distribution shift between a base model and its variant on the same inputs.

* Multiple-choice answer distributions: per question, the softmax over the choices' log-likelihoods;
  KL(base || variant) per question, averaged; and top-1 agreement (same argmax choice).
* Next-token distributions: KL(base || variant) per token position, averaged over a text sample. The
  base's distribution is kept as its top-k tokens plus one bucket for the rest of the vocabulary; the
  variant's log-probabilities are read at the same k tokens. KL over these k + 1 buckets is a lower bound
  of the full-vocabulary KL (coarse-graining never increases KL, by the data-processing inequality) and
  equals it as the tail mass goes to zero; the mean tail mass is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray


def kl_divergence(log_p: ArrayLike, log_q: ArrayLike) -> NDArray[np.float64]:
    """KL(p || q) along the last axis, from log-probabilities (each row sums to 1 in probability)."""
    lp = np.asarray(log_p, dtype=np.float64)
    lq = np.asarray(log_q, dtype=np.float64)
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):  # 0 * (-inf - x) where p has no mass; np.where drops it
        terms = np.where(p > 0, p * (lp - lq), 0.0)
    return np.asarray(np.maximum(terms.sum(axis=-1), 0.0))


def choice_shift(
    base: Sequence[Sequence[float]], variant: Sequence[Sequence[float]]
) -> tuple[float, float, int]:
    """(mean KL over questions, top-1 agreement, questions) from per-choice log-likelihoods."""
    from scipy.special import log_softmax

    kls, agree = [], []
    for b, v in zip(base, variant, strict=True):
        lb, lv = np.asarray(b, dtype=np.float64), np.asarray(v, dtype=np.float64)
        if lb.size < 2 or lb.size != lv.size:
            continue
        kls.append(float(kl_divergence(log_softmax(lb), log_softmax(lv))))
        agree.append(int(np.argmax(lb)) == int(np.argmax(lv)))
    if not kls:
        return float("nan"), float("nan"), 0
    return float(np.mean(kls)), float(np.mean(agree)), len(kls)


def routing_agreement(base: ArrayLike, variant: ArrayLike) -> float:
    """The share of (token, layer) places where two MoE models route a token to the same set of experts,
    from (tokens, layers, k) expert ids sorted within each place; NaN when there is nothing to compare
    (shapes differ: other tokenizers, layers or k)."""
    b, v = np.asarray(base), np.asarray(variant)
    if b.shape != v.shape or b.ndim != 3 or b.shape[0] * b.shape[1] == 0:
        return float("nan")
    return float(np.all(b == v, axis=-1).mean())


def with_tail(top_logprobs: ArrayLike) -> NDArray[np.float64]:
    """Append log(1 - sum p) to each row of top-k log-probabilities (clipped at a tiny mass)."""
    from scipy.special import logsumexp

    top = np.asarray(top_logprobs, dtype=np.float64)
    covered = np.exp(logsumexp(top, axis=-1, keepdims=True))
    tail = np.log(np.clip(1.0 - covered, 1e-12, None))
    return np.concatenate([top, tail], axis=-1)


class TokenKL(NamedTuple):
    """Next-token KL(base || variant) over a text sample."""

    mean: float  # per token
    tail_mass: float  # mean base probability outside its top k (how loose the lower bound may be)
    tokens: int
    p99: float = float("nan")  # the 99th percentile over tokens: the rare positions a variant breaks


def token_kl(base_top: ArrayLike, variant_at_top: ArrayLike) -> TokenKL:
    """KL(base || variant) per token (mean and 99th percentile), mean base tail mass and the number of
    tokens, from aligned top-k arrays.

    ``base_top`` and ``variant_at_top``: (tokens, k) log-probabilities of the same k token ids, those the
    base ranks highest at each position.
    """
    base = with_tail(base_top)
    variant = with_tail(variant_at_top)
    if base.shape != variant.shape or base.shape[0] == 0:
        return TokenKL(float("nan"), float("nan"), 0)
    kl = kl_divergence(base, variant)
    return TokenKL(
        float(kl.mean()), float(np.exp(base[:, -1]).mean()), int(base.shape[0]), float(np.quantile(kl, 0.99))
    )
