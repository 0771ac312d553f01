"""Shared-prefix scoring: run each shared prefix once and score every continuation that follows it.

A multiple-choice question with four answers is four requests with one context. Scoring them one by one
(as lm-eval's ``hf`` model does for answers longer than one token) runs the context four times, and
few-shot prompts repeat the same examples before every question. Here the requests of a chunk become
rows that are *prefix trees*: every distinct prefix of the requests' inputs is one token of a row::

    tokens     q0 q1 q2 q3 a0 a1 b0 b1 b2 r0 r1
    parent     -1  0  1  2  3  4  3  6  7  1  9     (question 1: q0-q3; question 2 shares q0 q1)
    position    0  1  2  3  4  5  4  5  6  2  3     (depth in the tree)

with an attention mask that lets each token see exactly its ancestors and itself. Every request therefore
sees what it would see alone (same tokens, same positions) while each shared prefix is computed once:
the answers of one question, and the few-shot examples or instructions that several questions share. The
first token of an answer is predicted at its context's last token (which makes one-token answers free),
answer token t at answer token t-1; the last token of an answer is never fed, as in lm-eval. A context
and an answer that do not fit in ``max_length`` are scored alone, truncated on the left like lm-eval.

A question joins the row being built when it shares its whole context with the row, or at least
``MIN_SHARED`` tokens and half of its own, and the row stays within ``ROW_BUDGET`` tokens: attention over
a row costs its length squared, so questions that share only a short instruction get rows of their own
(measured: merging MMLU questions on their 17-token subject line made them slower, not faster). Those
rows are then filled (``fill``): in the order of their tokens, a row takes the rows after it, each a tree
with its own root, while it stays within the longest row or ``FILL`` tokens, so that rows come out of
nearly one length (batches without padding) and questions that start alike share their start.

State-space models have no attention mask to shape; for them ``hf.py`` runs a context once, copies its
recurrent state to one row per answer and steps the answers through it (``expand_state``); their rows
are built with ``merge=False``, one context each.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

Pair = tuple[list[int], list[int]]  # (context tokens, continuation tokens)
MIN_SHARED = 16  # tokens (and half its own) a question must share with a row to join it
ROW_BUDGET = 1024  # tokens per row (or the longest single request, if longer)
FILL = 512  # a row takes further questions up to this many tokens (or its longest question's)


@dataclass(frozen=True)
class Member:
    """One request in a row: its index in the caller's list, its continuation tokens, and the row
    positions whose logits predict each of them."""

    index: int
    continuation: tuple[int, ...]
    context_length: int = 0
    predicting: tuple[int, ...] = ()


@dataclass(frozen=True)
class Row:
    """A prefix tree of requests laid out as one sequence: each token follows its parent."""

    tokens: tuple[int, ...]
    parents: tuple[int, ...]  # position of each token's parent in the row, -1 for a root
    members: tuple[Member, ...]

    @property
    def length(self) -> int:
        return len(self.tokens)

    @property
    def context(self) -> tuple[int, ...]:
        """The context of a row built with ``merge=False`` (one context, laid out first)."""
        return self.tokens[: self.members[0].context_length]

    @functools.cached_property
    def roots(self) -> tuple[int, ...]:
        """The root of each token's tree (a filled row holds several trees; parents come first)."""
        root: list[int] = []
        for position, parent in enumerate(self.parents):
            root.append(position if parent < 0 else root[parent])
        return tuple(root)

    def rooted_first(self, member: Member) -> bool:
        """Whether ``member`` is a request of the row's first tree."""
        return self.roots[member.predicting[0]] == 0

    def depths(self) -> list[int]:
        depth: list[int] = []
        for parent in self.parents:
            depth.append(0 if parent < 0 else depth[parent] + 1)
        return depth


@dataclass
class _Tree:
    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    children: dict[tuple[int, int], int] = field(default_factory=dict)  # (parent, token) -> position
    members: list[Member] = field(default_factory=list)

    def walk(self, sequence: Sequence[int]) -> list[int]:
        """Positions of the longest prefix of ``sequence`` already in the tree."""
        path: list[int] = []
        for token in sequence:
            node = self.children.get((path[-1] if path else -1, token))
            if node is None:
                break
            path.append(node)
        return path

    def add(self, index: int, context: list[int], continuation: list[int]) -> None:
        sequence = [*context, *continuation[:-1]]
        path = self.walk(sequence)
        for token in sequence[len(path) :]:
            parent = path[-1] if path else -1
            self.children[(parent, token)] = len(self.tokens)
            path.append(len(self.tokens))
            self.tokens.append(token)
            self.parents.append(parent)
        start = len(context) - 1
        predicting = tuple(path[start : start + len(continuation)])
        self.members.append(Member(index, tuple(continuation), len(context), predicting))

    def row(self) -> Row:
        return Row(tuple(self.tokens), tuple(self.parents), tuple(self.members))


def pack(pairs: Sequence[Pair], max_length: int, merge: bool = True) -> tuple[list[Row], list[int]]:
    """Rows of requests that share prefixes, longest first, and the indices of requests that do not fit
    untruncated in ``max_length`` (the caller scores those alone). Requests are taken in the given order,
    so the continuations of one context should be adjacent (the engine sends them so)."""
    rows: list[Row] = []
    alone: list[int] = []
    tree = _Tree()
    for index, (context, continuation) in enumerate(pairs):
        fed = len(context) + len(continuation) - 1
        if fed > max_length:
            alone.append(index)
            continue
        shared = len(tree.walk([*context, *continuation[:-1]]))
        if merge:  # its own context, or a prefix worth the longer row (at least half its tokens)
            joins = shared >= len(context) or (shared >= MIN_SHARED and 2 * shared >= fed)
        else:  # one context per row
            joins = bool(tree.members) and tree.tokens[: tree.members[0].context_length] == context
        if tree.members and (not joins or len(tree.tokens) + fed - shared > max(ROW_BUDGET, fed)):
            rows.append(tree.row())
            tree = _Tree()
        tree.add(index, context, continuation)
    if tree.members:
        rows.append(tree.row())
    if merge:
        rows = fill(rows, pairs)
    rows.sort(key=lambda r: -r.length)
    return rows, alone


def fill(rows: Sequence[Row], pairs: Sequence[Pair]) -> list[Row]:
    """Consecutive rows merged into one while it stays within the longest row's length or ``FILL``
    tokens: short questions share rows (their common starts, such as an instruction, once) and rows come
    out of nearly equal length, so batches carry little padding. Each question stays in one row."""
    width = max(FILL, *(r.length for r in rows)) if rows else FILL
    filled: list[_Tree] = []
    for row in sorted(rows, key=lambda r: r.tokens):  # rows that share a start become neighbours
        context = pairs[row.members[0].index][0]
        tree = filled[-1] if filled else None
        if tree is None or len(tree.tokens) + row.length - len(tree.walk(context)) > width:
            tree = _Tree()
            filled.append(tree)
        for member in row.members:
            tree.add(member.index, *pairs[member.index])
    return [tree.row() for tree in filled]


def fitting(lengths: Sequence[int], padding: float, slack: int = 0) -> int:
    """How many of the leading rows (lengths sorted longest first) make a batch whose padding stays
    within ``padding`` of its positions or within ``slack`` positions (at least one row)."""
    total = 0
    for count, length in enumerate(lengths, start=1):
        total += length
        if count * lengths[0] - total > max(padding * count * lengths[0], slack):
            return count - 1
    return len(lengths)


class Starts:
    """The rows of one call, sorted by their tokens, to choose the prefix a batch computes apart."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.sorted = sorted(row.tokens for row in rows)

    def worth(self, start: Sequence[int], cost: int) -> int:
        """The length of the prefix of ``start`` (a batch's shared start) that saves the call's rows the
        most tokens when computed apart once, its length times the rows that start with it less one;
        0 when no prefix saves ``cost`` tokens. The shorter prefix wins where more rows share it: the
        same few-shot examples are then the same stored prefix for every batch and every call, whatever
        the question that follows them in each batch's first row."""
        key = tuple(start)
        first = bisect.bisect_left(self.sorted, key[:1])
        last = bisect.bisect_right(self.sorted, (*key[:1], math.inf))
        shares = sorted((common_length(self.sorted[i], key) for i in range(first, last)), reverse=True)
        best, best_saving = 0, cost - 1
        for rows, length in enumerate(shares, start=1):  # ``rows`` rows share at least ``length`` tokens
            if (rows - 1) * length > best_saving:
                best, best_saving = length, (rows - 1) * length
        return best


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens ``a`` and ``b`` start with alike."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def shared_start(rows: Sequence[Row]) -> int:
    """Length of the prefix every row of a batch starts with and every token of it descends from: its
    keys and values can be computed once (``kvcache.PrefixStore``) and the rows run only the rest. It
    stops before each member's last context token, whose logits the member needs."""
    limit = min(m.context_length - 1 for row in rows for m in row.members if row.rooted_first(m))
    first = rows[0].tokens
    for row in rows:
        chain = row.length  # the row is a chain up to the first token that branches off earlier
        for position, parent in enumerate(row.parents):
            if position and 0 <= parent != position - 1:  # (another root cannot see the prefix)
                chain = min(chain, parent + 1)
        limit = min(limit, chain)
        limit = next((i for i in range(limit) if row.tokens[i] != first[i]), limit)
    return max(limit, 0)


@dataclass(frozen=True)
class PackedBatch:
    """Model inputs for a batch of rows, right-padded, and where each member's predictions are."""

    ids: torch.Tensor  # (batch, width)
    positions: torch.Tensor  # (batch, width) depth in the row's tree
    real: torch.Tensor  # (batch, width) 1 for tokens, 0 for padding
    allowed: torch.Tensor  # (batch, width, width) True where a query may attend to a key
    predicting: list[tuple[int, tuple[int, ...]]]  # per member (row, positions predicting its tokens)

    def attention_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """(batch, 1, width, width) additive mask: 0 where attention is allowed, else the minimum."""
        mask = torch.zeros(self.allowed.shape, dtype=dtype)
        mask.masked_fill_(~self.allowed, torch.finfo(dtype).min)
        return mask[:, None]


def packed_batch(rows: Sequence[Row], pad_id: int) -> PackedBatch:
    width = max(r.length for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    real = torch.zeros((len(rows), width), dtype=torch.long)
    allowed = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)  # padding sees itself only
    predicting: list[tuple[int, tuple[int, ...]]] = []
    for b, row in enumerate(rows):
        n = row.length
        ids[b, :n] = torch.tensor(row.tokens)
        positions[b, :n] = torch.tensor(row.depths())
        real[b, :n] = 1
        for position, parent in enumerate(row.parents):  # ancestors of a token: its parent's, and itself
            if parent >= 0:
                allowed[b, position, :position] = allowed[b, parent, :position]
        predicting.extend((b, m.predicting) for m in row.members)
    return PackedBatch(ids, positions, real, allowed, predicting)


def expand_state(cache: object, rows: int) -> None:
    """Copy a batch-of-one recurrent state to ``rows`` rows: transformers 5's ``Cache`` (per-layer
    linear-attention states) through its own ``reorder_cache``, transformers 4's MambaCache or
    Mamba2Cache by hand."""
    if isinstance(getattr(cache, "layers", None), list):  # transformers 5
        cache.reorder_cache(torch.zeros(rows, dtype=torch.long))  # type: ignore[attr-defined]
        return
    for name in ("conv_states", "ssm_states"):
        value = getattr(cache, name)
        if isinstance(value, list):  # MambaCache: per layer (batch, ...)
            setattr(cache, name, [v.expand(rows, *v.shape[1:]).clone() for v in value])
        else:  # Mamba2Cache: (layers, batch, ...)
            setattr(cache, name, value.expand(value.shape[0], rows, *value.shape[2:]).clone())
    if hasattr(cache, "max_batch_size"):
        cache.max_batch_size = rows
