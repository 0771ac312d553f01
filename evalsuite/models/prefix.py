"""Shared-prefix scoring: run each context once and score every continuation that follows it.

A multiple-choice question with four answers is four requests with one context. Scoring them one by one
(as lm-eval's ``hf`` model does for answers longer than one token) runs the context four times. Here the
requests of one context become one *row*::

    tokens     c0 c1 c2 c3 | a0 a1 | b0 b1 b2
    positions   0  1  2  3 |  4  5 |  4  5  6
    segment     0  0  0  0 |  1  1 |  2  2  2

with an attention mask that lets every token see the context and the earlier tokens of its own segment
only (causal within the context, causal within a segment, never across segments). Each answer
therefore sees exactly what it would see alone after the context: same tokens, same positions. The
first answer token is predicted from the last context position (shared by all answers, which makes
one-token answers free); answer token t from answer token t-1. The last token of an answer is never
fed in, as in lm-eval. The keys and values of the context are computed once and attended by every
answer, which is what a key/value cache would give, in one forward pass and without copying caches.

State-space models have no attention mask to shape; for them ``hf.py`` runs the context once, copies
its recurrent state to one row per answer and steps the answers through it (see ``expand_state``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

Pair = tuple[list[int], list[int]]  # (context tokens, continuation tokens)


@dataclass(frozen=True)
class Member:
    """One request in a row: its index in the caller's list and its continuation tokens."""

    index: int
    continuation: tuple[int, ...]


@dataclass(frozen=True)
class Row:
    """One context and the continuations scored after it in a single sequence."""

    context: tuple[int, ...]
    members: tuple[Member, ...]

    @property
    def length(self) -> int:
        return len(self.context) + sum(len(m.continuation) - 1 for m in self.members)


def pack(pairs: Sequence[Pair], max_length: int) -> tuple[list[Row], list[int]]:
    """Rows of requests that share a context, longest first, each at most ``max_length`` tokens, and
    the indices of requests that do not fit untruncated (they are scored alone, truncated on the left,
    as lm-eval does)."""
    by_context: dict[tuple[int, ...], list[Member]] = {}
    alone = []
    for index, (context, continuation) in enumerate(pairs):
        if len(context) + len(continuation) - 1 > max_length:
            alone.append(index)
        else:
            by_context.setdefault(tuple(context), []).append(Member(index, tuple(continuation)))
    rows = []
    for shared, members in by_context.items():
        current: list[Member] = []
        length = len(shared)
        for member in members:
            extra = len(member.continuation) - 1
            if current and length + extra > max_length:
                rows.append(Row(shared, tuple(current)))
                current, length = [], len(shared)
            current.append(member)
            length += extra
        rows.append(Row(shared, tuple(current)))
    rows.sort(key=lambda r: -r.length)
    return rows, alone


@dataclass(frozen=True)
class PackedBatch:
    """Model inputs for a batch of rows, right-padded, and where each member's predictions are."""

    ids: torch.Tensor  # (batch, width)
    positions: torch.Tensor  # (batch, width)
    real: torch.Tensor  # (batch, width) 1 for tokens, 0 for padding
    segments: torch.Tensor  # (batch, width) 0 context, k segment k, -1 padding
    predicting: list[tuple[int, list[int]]]  # per member (row, positions whose logits predict its tokens)

    def attention_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """(batch, 1, width, width) additive mask: 0 where a query may attend to a key, else the minimum.
        Padding attends to itself (and the context), so no softmax row is empty."""
        width = self.ids.shape[1]
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        query, key = self.segments[:, :, None], self.segments[:, None, :]
        allowed = causal & ((key == 0) | (key == query))
        mask = torch.zeros(allowed.shape, dtype=dtype)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask[:, None]


def packed_batch(rows: Sequence[Row], pad_id: int) -> PackedBatch:
    width = max(r.length for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segments = torch.full((len(rows), width), -1, dtype=torch.long)
    predicting = []
    for b, row in enumerate(rows):
        n = len(row.context)
        ids[b, :n] = torch.tensor(row.context)
        positions[b, :n] = torch.arange(n)
        segments[b, :n] = 0
        start = n
        for k, member in enumerate(row.members, start=1):
            fed = member.continuation[:-1]
            end = start + len(fed)
            if fed:
                ids[b, start:end] = torch.tensor(fed)
                positions[b, start:end] = torch.arange(n, n + len(fed))
                segments[b, start:end] = k
            predicting.append((b, [n - 1, *range(start, end)]))
            start = end
    return PackedBatch(ids, positions, (segments >= 0).long(), segments, predicting)


def kept_columns(batch: PackedBatch) -> torch.Tensor:
    """The sequence positions whose logits any member needs (the model computes logits only there)."""
    columns = sorted({c for _, cols in batch.predicting for c in cols})
    return torch.tensor(columns, dtype=torch.long)


def expand_state(cache: object, rows: int) -> None:
    """Copy a batch-of-one recurrent state (transformers' MambaCache or Mamba2Cache) to ``rows`` rows."""
    for name in ("conv_states", "ssm_states"):
        value = getattr(cache, name)
        if isinstance(value, list):  # MambaCache: per layer (batch, ...)
            setattr(cache, name, [v.expand(rows, *v.shape[1:]).clone() for v in value])
        else:  # Mamba2Cache: (layers, batch, ...)
            setattr(cache, name, value.expand(value.shape[0], rows, *value.shape[2:]).clone())
    if hasattr(cache, "max_batch_size"):
        cache.max_batch_size = rows
