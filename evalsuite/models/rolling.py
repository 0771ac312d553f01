"""Rolling log-likelihoods (perplexity) from token scoring, shared by the backends that score token ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

TokenRequest = tuple[Any, list[int], list[int]]  # (cache key, context tokens, continuation tokens)


def rolling_loglikelihoods(
    texts: Sequence[str],
    encode: Callable[[str], list[int]],
    prefix_token: int,
    max_seq_len: int,
    score: Callable[[list[TokenRequest]], list[tuple[float, bool]]],
) -> list[float]:
    """Each text's log-likelihood over lm-eval's disjoint rolling windows (the first token predicted
    from ``prefix_token``); the windows of every text go to ``score`` together, so short texts share
    batches."""
    windows: list[TokenRequest] = []
    owners: list[int] = []
    for owner, text in enumerate(texts):
        for window in get_rolling_token_windows(
            token_list=encode(text), prefix_token=prefix_token, max_seq_len=max_seq_len, context_len=1
        ):
            windows.append((None, *make_disjoint_window(window)))
            owners.append(owner)
    totals = [0.0] * len(texts)
    for owner, (value, _) in zip(owners, score(windows), strict=True):
        totals[owner] += value
    return totals
