"""Generation with continuous batching and shared-prefix reuse.

``generate()`` on a left-padded batch (lm-eval's way) runs every batch until its longest row stops, and
every prompt recomputes the few-shot examples or instructions it shares with the others. Here:

* **Continuous batching.** Up to ``rows`` prompts generate side by side. A row leaves the batch as soon
  as it stops (end of sequence, a stop string in its decoded text, or ``max_new`` tokens), and a waiting
  prompt takes its place. The batch's cache is left-padded: each row has its own attention mask and
  positions, so rows of any length decode together, and columns no row needs any more are left out.
  It is written in place (``Batch``: one slot per row in buffers with room to grow), where transformers'
  ``DynamicCache`` copies the whole cache at every token: 18% less time on GSM8K (docs/engine.md).
* **Shared prefixes.** Prompts of one call that share a prefix (the longest each shares with another
  prompt) get its keys and values computed once where that saves at least ``PASS_COST`` tokens (a pass
  of its own costs about that much); each prompt then computes only what follows, at the positions it
  would have alone.
* **Stop strings per row,** checked on the decoded text after every token, so a row stops exactly where
  lm-eval's would (at the first token whose text completes a stop string).
* **Sampling per row,** from a generator seeded by the run's seed, the request and its occurrence: a
  sample does not depend on which other prompts shared its batch, so reruns and resumed runs draw the
  same text.

Greedy rows compute what ``generate()`` computes for them, in differently shaped matrix products, so a
token can differ only where the top two log-probabilities are within float rounding of each other
(benchmarks/RESULTS.md measures it against lm-eval). Transformers' own continuous batching
(``generate_batch``, paged attention) was measured and not used: docs/engine.md says why.

Caches whose layers are not plain ``DynamicLayer`` (sliding windows, state-space and hybrid models) are
not handled here; ``supports`` tells the caller to use ``generate()`` for them.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from evalsuite.models import kvcache
from evalsuite.models.kvcache import (
    KV,
    PASS_COST,
    PrefixStore,
    build_cache,
    cache_argument,
    cache_of,
    kv_of,
    stack,
)
from evalsuite.models.prefix import common_length


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one request; ``temperature`` > 0."""

    temperature: float
    top_p: float = 1.0
    top_k: int = 0


@dataclass
class Request:
    """One prompt to continue: its tokens, how many new tokens at most, its stop strings and its sampling
    settings (None: greedy) with the seed of its generator."""

    tokens: list[int]
    max_new: int
    until: Sequence[str]
    sampling: Sampling | None = None
    seed: int = 0
    generated: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None


def request_seed(seed: int, request: Any, occurrence: int) -> int:
    """A generator seed from the run's seed, the request (its arguments) and its occurrence in the call."""
    digest = hashlib.sha256(json.dumps([seed, request, occurrence], default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little")


class Generator:
    """Continuous-batching generation for one model. ``decode`` turns token ids into text (special
    tokens kept, as lm-eval's stop check sees them)."""

    def __init__(
        self,
        model: Any,
        decode: Callable[[list[int]], str],
        eos_ids: set[int],
        rows: int,
        share_prefix: bool = True,
    ) -> None:
        self.model = model
        self.decode = decode
        self.eos_ids = eos_ids
        self.rows = max(1, rows)
        self.share_prefix = share_prefix
        self.device = next(model.parameters()).device
        self.cache_arg = cache_argument(model)
        self.keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.prefill_tokens = 0  # tokens computed for prompts (prefixes once, suffixes per prompt)

    @torch.inference_mode()  # no autograd graph: it would keep every pass's activations alive
    def run(self, requests: Sequence[Request]) -> list[list[int]]:
        """The generated tokens of each request, in order (stop strings included, as generated)."""
        prefixes = shared_prefixes([r.tokens for r in requests]) if self.share_prefix else {}
        store = PrefixStore(
            self._prefill,
            keep=len(requests),
            extend=True,  # one call's store: the same prompts in the same order give the same values
        )
        waiting = deque(sorted(range(len(requests)), key=lambda i: -len(requests[i].tokens)))
        for request in requests:
            if request.sampling is not None:
                request.generator = torch.Generator(device=self.device).manual_seed(request.seed)
        batch = Batch(self, slots=min(self.rows, len(requests)))
        while waiting or batch.active:
            free = len(batch.rows) - len(batch.active)
            admitted = [waiting.popleft() for _ in range(min(free, len(waiting)))]
            if admitted:
                shared = [prefixes.get(i, 0) for i in admitted]
                self._admit([requests[i] for i in admitted], shared, store, batch)
            if not waiting:
                batch.settle()
            if batch.active:
                batch.step()
        return [r.generated for r in requests]

    def _admit(self, requests: list[Request], shared: list[int], store: PrefixStore, batch: Batch) -> None:
        """Prefill waiting prompts together (one forward pass, as ``generate()`` prefills a batch), each
        after its shared prefix from ``store``, choose their first tokens, and join those that go on to
        ``batch``. Row ``i`` is laid out as [padding][its prefix][padding][the rest of its prompt]: both
        parts left-padded, so every row's last position is its own last token."""
        pasts = [store.get(r.tokens[:n]) if n else None for r, n in zip(requests, shared, strict=True)]
        suffixes = [r.tokens[n:] for r, n in zip(requests, shared, strict=True)]
        width, length = max(shared), max(map(len, suffixes))
        ids = torch.zeros((len(requests), length), dtype=torch.long)
        mask = torch.zeros((len(requests), width + length), dtype=torch.long)
        positions = torch.zeros((len(requests), length), dtype=torch.long)
        for i, (n, suffix) in enumerate(zip(shared, suffixes, strict=True)):
            ids[i, length - len(suffix) :] = torch.tensor(suffix)
            mask[i, width - n : width] = 1
            mask[i, width + length - len(suffix) :] = 1
            positions[i, length - len(suffix) :] = torch.arange(n, n + len(suffix))
        self.prefill_tokens += sum(map(len, suffixes))
        past = build_cache(stack(pasts, width)) if width else None
        mask, positions = mask.to(self.device), positions.to(self.device)
        logits, cache = self.forward(ids.to(self.device), mask, positions, past)
        going = [
            i
            for i, (request, token) in enumerate(zip(requests, self._choose(logits, requests), strict=True))
            if not self._finish(request, token)
        ]
        if going:
            index = torch.tensor(going, device=self.device)
            kv = [(k[index], v[index]) for k, v in kv_of(cache)]
            batch.add([requests[i] for i in going], kv, mask[index], positions[index, -1] + 1)

    def _finish(self, request: Request, token: int) -> bool:
        """Append ``token`` to the request's generation; True when the request is done."""
        request.generated.append(token)
        return self._finished(request)

    def _choose(self, logits: torch.Tensor, requests: Sequence[Request]) -> list[int]:
        """Next tokens for (rows, vocab) logits: argmax for greedy rows, a draw from each sampled row's
        own generator otherwise."""
        chosen = logits.argmax(dim=-1).tolist()
        for i, request in enumerate(requests):
            if request.sampling is not None:
                chosen[i] = sample(logits[i].float(), request.sampling, request.generator)
        return [int(c) for c in chosen]

    def _finished(self, request: Request) -> bool:
        if request.generated[-1] in self.eos_ids or len(request.generated) >= request.max_new:
            return True
        text = self.decode(request.generated)
        return any(stop and stop in text for stop in request.until)

    def _prefill(self, tokens: list[int], start: int, kv: KV | None) -> KV:
        """Keys and values of ``tokens`` (batch of one) from position ``start`` after ``kv``."""
        ids = torch.tensor([tokens], device=self.device)
        mask = torch.ones((1, start + len(tokens)), dtype=torch.long, device=self.device)
        positions = torch.arange(start, start + len(tokens), device=self.device)[None]
        self.prefill_tokens += len(tokens)
        return kv_of(self.forward(ids, mask, positions, build_cache(kv) if kv else None)[1])

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> Any:
        """One forward pass over ``ids`` after ``cache`` (a model cache, or None); returns (last logits,
        the cache with ``ids`` appended)."""
        kwargs: dict[str, Any] = {self.cache_arg: cache} if cache is not None else {}
        if self.keeps_logits:  # the output layer at the last position only, as generate() does
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        return out.logits[:, -1], cache_of(out)


class Batch:
    """The rows generating now, each in a slot of one cache written in place.

    Every layer's keys and values live in buffers of (slots, heads, capacity, dim) with room to grow.
    The batch uses the columns ``[start, end)``; each row sits right-aligned at ``end`` (left-padded,
    with its own attention mask and positions), and a step writes every row's new token at column
    ``end``. A row that joins is copied into a free slot; a row that leaves frees its slot and the
    columns no row needs any more are left out of the view. Buffers are copied only when they run out
    of room (and once rows stop joining, to drop the free slots): a ``DynamicCache`` copies the whole
    cache at every token and again whenever a row joins or leaves."""

    def __init__(self, generator: Generator, slots: int) -> None:
        self.g = generator
        self.rows: list[Request | None] = [None] * slots
        self.layers: list[Any] = []
        self.cache: Any = None
        self.mask = torch.zeros((slots, 0), dtype=torch.long, device=generator.device)
        self.positions = torch.zeros((slots,), dtype=torch.long, device=generator.device)
        self.start = self.end = 0

    @property
    def active(self) -> list[Request]:
        return [r for r in self.rows if r is not None]

    def add(self, requests: list[Request], kv: KV, mask: torch.Tensor, positions: torch.Tensor) -> None:
        """Join prefilled rows (their keys and values, attention masks and next positions) in free slots,
        their last positions at the column before ``end``."""
        width = mask.shape[1]
        if not self.layers:
            self._allocate(kv, len(self.rows), width)
        elif self.end < width:
            self._relayout(list(range(len(self.rows))), max(self.end - self.start, width))
        free = [s for s, r in enumerate(self.rows) if r is None][: len(requests)]
        slots = torch.tensor(free, device=self.g.device)
        first = self.end - width
        for layer, (keys, values) in zip(self.layers, kv, strict=True):
            layer.buffers[0][slots, :, first : self.end] = keys
            layer.buffers[1][slots, :, first : self.end] = values
        self.mask[slots] = 0
        self.mask[slots, first : self.end] = mask
        self.positions[slots] = positions
        self.start = min(self.start, first)
        for slot, request in zip(free, requests, strict=True):
            self.rows[slot] = request

    @property
    def capacity(self) -> int:
        return int(self.mask.shape[1])

    def step(self) -> None:
        """Feed every row its last token, choose the next, and let finished rows leave."""
        g = self.g
        if self.end >= self.capacity:
            self._relayout(list(range(len(self.rows))), self.end - self.start)
        last = torch.tensor([[r.generated[-1] if r else 0] for r in self.rows], device=g.device)
        self.mask[:, self.end] = 1  # every slot sees its new token (a free slot only that)
        for layer in self.layers:
            layer.view(self.start, self.end)
        logits, _ = g.forward(
            last, self.mask[:, self.start : self.end + 1], self.positions[:, None], self.cache
        )
        self.end += 1
        self.positions += 1
        live = [s for s, r in enumerate(self.rows) if r is not None]
        requests = [self.rows[s] for s in live]
        chosen = g._choose(logits[torch.tensor(live, device=logits.device)], requests)  # type: ignore[arg-type]
        left = False
        for slot, request, token in zip(live, requests, chosen, strict=True):
            assert request is not None
            request.generated.append(token)
            if g._finished(request):
                self.rows[slot] = None
                self.mask[slot] = 0
                self.positions[slot] = 0
                left = True
        if left:  # only a row that leaves frees leading columns
            self._narrow()

    def settle(self) -> None:
        """No row will join any more: drop the free slots, so that steps compute only live rows."""
        live = [s for s, r in enumerate(self.rows) if r is not None]
        if live and len(live) < len(self.rows):
            self._relayout(live, self.end - self.start)

    def _narrow(self) -> None:
        """Leave out of the view the leading columns no live row attends to."""
        used = self.mask[:, self.start : self.end].any(dim=0).nonzero()
        self.start = self.start + int(used[0]) if len(used) else self.end

    def _allocate(self, kv: KV, slots: int, width: int) -> None:
        capacity = width + room(width)
        self.layers = [
            kvcache.slot_layer(
                keys.new_zeros((slots, keys.shape[1], capacity, keys.shape[3])),
                values.new_zeros((slots, values.shape[1], capacity, values.shape[3])),
            )
            for keys, values in kv
        ]
        self.cache = kvcache.slot_cache(self.layers)
        self.mask = torch.zeros((slots, capacity), dtype=torch.long, device=self.g.device)
        self.start = self.end = width

    def _relayout(self, keep: list[int], end: int) -> None:
        """New buffers holding the slots ``keep``: their columns in use end at ``end`` and leave room
        after it."""
        used = self.end - self.start
        capacity = end + room(end)
        index = torch.tensor(keep, device=self.g.device)
        for layer in self.layers:
            fresh = []
            for buffer in layer.buffers:
                new = buffer.new_zeros((len(keep), buffer.shape[1], capacity, buffer.shape[3]))
                new[:, :, end - used : end] = buffer[index, :, self.start : self.end]
                fresh.append(new)
            layer.buffers = (fresh[0], fresh[1])
        mask = self.mask.new_zeros((len(keep), capacity))
        mask[:, end - used : end] = self.mask[index, self.start : self.end]
        self.mask, self.positions = mask, self.positions[index]
        self.rows = [self.rows[s] for s in keep]
        self.start, self.end = end - used, end


def room(width: int) -> int:
    """Columns a cache of ``width`` columns is given to grow into before it is copied again."""
    return max(64, width // 4)


def sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    """One token drawn from ``logits`` (vocab,) at ``sampling``'s temperature, within its top-k and
    nucleus (the fewest most likely tokens whose probability reaches ``top_p``)."""
    scores = logits / sampling.temperature
    if sampling.top_k > 0:
        kth = scores.topk(min(sampling.top_k, scores.shape[-1])).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        ordered, order = scores.softmax(-1).sort(descending=True)
        outside = ordered.cumsum(-1) - ordered >= sampling.top_p  # the mass ranked above already reaches it
        scores = scores.masked_fill(torch.empty_like(outside).scatter(0, order, outside), float("-inf"))
    probabilities = scores.softmax(-1)
    return int(torch.multinomial(probabilities, 1, generator=generator))


def shared_prefixes(prompts: Sequence[Sequence[int]]) -> dict[int, int]:
    """For each prompt that shares a prefix worth a pass of its own, the longest such prefix (shorter than
    the prompt: its last token's logits are its own). A prefix is worth it where the tokens it saves, its
    length times the prompts that start with it less one, reach ``PASS_COST``."""
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    common = [common_length(prompts[a], prompts[b]) for a, b in itertools.pairwise(order)]  # neighbours'
    shared: dict[int, int] = {}
    for j, i in enumerate(order):
        length = min(max(common[max(j - 1, 0) : j + 1], default=0), len(prompts[i]) - 1)
        first, last = j, j  # the prompts that start with the prefix: the sorted run around this one
        while length > 0:
            while first > 0 and common[first - 1] >= length:
                first -= 1
            while last < len(common) and common[last] >= length:
                last += 1
            if (last - first) * length >= PASS_COST:
                shared[i] = length
                break
            # not worth it: try the longest shorter prefix that more prompts start with
            outside = [common[first - 1]] if first > 0 else []
            outside += [common[last]] if last < len(common) else []
            length = max(outside, default=0)
    return shared
