"""Min-K% and Min-K%++: how familiar a model finds a text, a signal of training-data contamination.

References: W. Shi et al., "Detecting Pretraining Data from Large Language Models" (Min-K%, ICLR 2024);
J. Zhang, J. Sun, E. Yeats, Y. Ouyang, M. Kuo, J. Zhang, H. Yang, H. Li, "Min-K%++: Improved Baseline for
Detecting Pre-Training Data from Large Language Models" (ICLR 2025, arXiv:2404.02936).

Both read a text's tokens x_1 .. x_n through the model, one row per token after the first (the first
has nothing before it to be predicted from), as ``TokenDistributions.token_statistics`` gives them:

* Min-K%: the mean of the k% lowest log p(x_t | x_<t).
* Min-K%++: the mean of the k% lowest standardised scores
  score_t = (log p(x_t | x_<t) - mu_t) / sigma_t, where, with z drawn from the next-token distribution
  p(. | x_<t), mu_t = E_z[log p(z | x_<t)] and sigma_t^2 = E_z[(log p(z | x_<t))^2] - mu_t^2.
  Standardising asks whether x_t is a mode of the distribution the model predicts there, not merely
  likely: training pushes the training texts' tokens towards local maxima, and a token that is
  unlikely only because many tokens fit (a name, a number) no longer counts against the text.

k% of n tokens is rounded down as the authors' code does (``int(len * ratio)``), but never below one
token (their code averages an empty selection for short texts), and after rounding n * k to 9 decimals,
so that 29% of 100 tokens is 29 tokens and not the 28 that binary floating point gives.

Higher scores mean more familiar. What they are not:

* A verdict. A score has no threshold that separates seen from unseen texts: it moves with the text's
  length (k% of few tokens is one or two, and noisy), its kind (code, lists of numbers and boilerplate
  are predictable and score high unseen; rare names score low seen), its tokenization and the model.
* Comparable across kinds of text or across models. The one reading that says anything compares
  benchmark items with fresh items of the same kind and length (the same templates with new names and
  numbers, say), paired item by item, on the same model: benchmark items scoring consistently higher
  than their fresh twins is evidence the model has seen them or text very like them (a paraphrase, a
  solution posted online), not proof of verbatim contamination, and no difference is not proof of none.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

LOGPROB, MEAN, STD = 0, 1, 2  # the columns of a token_statistics array


def min_k_plus_plus(statistics: NDArray[np.float64], k: float = 0.2) -> float:
    """The Min-K%++ score of one text: the mean of its k lowest standardised token scores.

    ``statistics`` is the (tokens - 1, 3) array ``token_statistics`` gives for the text. Where the model
    was certain (sigma 0, every other token's probability underflowed), the score is the limit as the
    distribution becomes certain: 0 for the certain token, minus infinity for any other.
    """
    rows = _checked(statistics, k)
    logprob, mean, std = rows[:, LOGPROB], rows[:, MEAN], rows[:, STD]
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(std > 0, (logprob - mean) / std, np.where(logprob >= mean, 0.0, -np.inf))
    return _mean_of_lowest(scores, k)


def min_k(statistics: NDArray[np.float64], k: float = 0.2) -> float:
    """The Min-K% score of one text: the mean of its k lowest token log-probabilities (the baseline
    Min-K%++ improves on, from the same ``token_statistics`` array)."""
    return _mean_of_lowest(_checked(statistics, k)[:, LOGPROB], k)


def lowest_count(tokens: int, k: float) -> int:
    """How many of ``tokens`` scores the k% lowest are: k% rounded down, at least one."""
    return max(1, int(round(tokens * k, 9)))


def _mean_of_lowest(scores: NDArray[np.float64], k: float) -> float:
    count = lowest_count(len(scores), k)
    return float(np.partition(scores, count - 1)[:count].mean())


def _checked(statistics: ArrayLike, k: float) -> NDArray[np.float64]:
    if not 0 < k <= 1:
        raise ValueError(f"k is the share of tokens to average, in (0, 1]; got {k}")
    rows = np.asarray(statistics, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 3:
        raise ValueError(f"expected a (tokens - 1, 3) token_statistics array, got shape {rows.shape}")
    if not len(rows):
        raise ValueError("no tokens to score: a text needs two tokens or more (the first is not predicted)")
    return rows
