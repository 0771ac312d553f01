"""What the backends that score token ids share: lm-eval's tokenization rules and rolling windows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from evalsuite.config import ModelConfig

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


class RollingByTokens:
    """``loglikelihood_rolling`` for backends that score token ids (``_loglikelihood_tokens``) and encode
    text with lm-eval's rules (``tok_encode``, ``prefix_token_id``) within ``max_length``."""

    max_length: int

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Perplexity-style scoring with lm-eval's disjoint rolling windows; the windows of every
        document are scored together, so short documents share rows and batches."""
        return rolling_loglikelihoods(
            [str(r.args[0]) for r in requests],
            self.tok_encode,  # type: ignore[attr-defined]  # from the backend's tokenizer rules
            self.prefix_token_id,  # type: ignore[attr-defined]
            self.max_length,
            self._loglikelihood_tokens,  # type: ignore[attr-defined]
        )


class TokenizerRules:
    """lm-eval's tokenization hooks over a transformers tokenizer (``self.tokenizer``) and the model's
    ``add_bos_token`` setting (``self.config``), for backends built on lm-eval's ``TemplateLM``."""

    tokenizer: Any
    config: ModelConfig

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return int(bos if bos is not None else self.tokenizer.eos_token_id)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """lm-eval's rule: an explicit flag wins, then ``add_bos_token``, then the tokenizer's default;
        never a second BOS when the text already starts with one."""
        if add_special_tokens is None:
            add_special_tokens = self.config.add_bos_token
            if string.startswith(self.tokenizer.decode(self.prefix_token_id)):
                add_special_tokens = False
        extra = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        return list(self.tokenizer.encode(string, **extra))
