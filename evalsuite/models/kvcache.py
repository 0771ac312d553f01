"""Keys and values of computed prefixes, on transformers' ``DynamicCache``: one place for the cache
plumbing that generation (``batching.py``) and scoring (``hf.py``) share.

A prefix's keys and values are kept as plain tensors per layer (:data:`KV`) and handed to the model as a
fresh ``DynamicCache`` each time, so the stored tensors are never written to: every forward pass that
continues a prefix concatenates into new tensors. Models whose caches are anything else (sliding
windows, state-space and hybrid models) are not handled here: :func:`supports` says so.
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch

# What one more forward pass costs, in tokens of compute. A pass reads every weight once whatever it
# computes (and torchao's int8 layers dequantize every weight), so a pass of a few tokens costs about as
# much as this many tokens more in a larger one: measured on 2 CPU cores, SmolLM2-135M float32 takes
# 0.08 s for a pass of one token per row and 1.2 ms per token more (65 tokens), its torchao int8 variant
# 0.09 s and 1 ms (86 tokens). A prefix is computed apart from its rows, and a batch is split to save
# padding, only where that saves at least this many tokens; one constant, so that what is computed
# together never depends on the machine and answers stay reproducible.
PASS_COST = 64

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), each (batch, heads, length, dim)
Continue = Callable[[list[int], int, "KV | None"], KV]  # (tokens, their first position, cache before)


def supports(model: Any) -> bool:
    """Whether ``model`` keeps a cache of plain per-layer keys and values (checked on a one-token run)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=device), use_cache=True)
    cache = cache_of(out)
    layers = getattr(cache, "layers", None)
    return (
        type(cache) is DynamicCache
        and isinstance(layers, list)
        and bool(layers)
        and all(type(layer) is DynamicLayer for layer in layers)
    )


def cache_argument(module: Any) -> str:
    """The keyword a model's forward takes its cache by: ``cache`` from transformers 5.25,
    ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def cache_of(output: Any) -> Any:
    """The cache a forward pass returned (``cache``, or ``past_key_values`` before transformers 5.25);
    None for outputs that have neither (transformers 4's Mamba returns ``cache_params``)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def kv_of(cache: Any) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def build_cache(kv: KV, rows: int | None = None) -> Any:
    """A ``DynamicCache`` holding ``kv`` (a batch of one repeated to ``rows`` rows, as views, if given)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (keys, values) in enumerate(kv):
        if rows is not None and rows != keys.shape[0]:
            keys, values = keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1)
        cache.update(keys, values, layer)
    return cache


def slot_layer(keys: torch.Tensor, values: torch.Tensor) -> Any:
    """A cache layer over ``keys`` and ``values`` (slots, heads, capacity, dim), buffers that a batch
    writes in place: the model sees the columns ``[start, end)`` (set by the batch before each pass) and
    appends its new tokens at ``end``. transformers' ``DynamicLayer`` concatenates instead, a copy of the
    whole cache at every token."""
    return _slot_layer_class()(keys, values)


@functools.cache
def _slot_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class SlotLayer(DynamicLayer):
        def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.buffers = (keys, values)
            self.start = self.end = 0
            self.is_initialized = True
            self.device, self.dtype = keys.device, keys.dtype
            self.view(0, 0)

        def view(self, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
            self.start, self.end = start, end
            keys, values = self.buffers
            self.keys, self.values = keys[:, :, start:end], values[:, :, start:end]
            return self.keys, self.values

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            new = key_states.shape[-2]
            keys, values = self.buffers
            keys[:, :, self.end : self.end + new] = key_states  # the batch leaves room
            values[:, :, self.end : self.end + new] = value_states
            return self.view(self.start, self.end + new)

    return SlotLayer


def slot_cache(layers: Sequence[Any]) -> Any:
    """A ``DynamicCache`` made of ``layers`` (from :func:`slot_layer`)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    cache.layers[:] = list(layers)
    return cache


class PrefixStore:
    """Prefixes' keys and values (batch of one), each computed once by ``run``; the ``keep`` most recently
    used stay. With ``extend``, a prefix that starts with a stored one computes only its new tokens and
    one that a stored prefix starts with is a slice of it: the values then depend, in their last bits, on
    which prefixes came first. A store that lives across calls is therefore built without ``extend``, so
    that a prefix's values are the same whatever ran before (a resumed run answers bit for bit as an
    uninterrupted one)."""

    def __init__(self, run: Continue, keep: int = 4, extend: bool = False) -> None:
        self.run = run
        self.keep = keep
        self.extend = extend
        self.stored: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self.computed = 0  # tokens run for prefixes

    def get(self, prefix: Sequence[int]) -> KV:
        key = tuple(prefix)
        if key in self.stored:
            self.stored.move_to_end(key)
            return self.stored[key]
        base: tuple[int, ...] = ()
        if self.extend:
            longer = next((k for k in self.stored if k[: len(key)] == key), None)
            if longer is not None:  # a stored prefix starts with this one: its first positions are it
                return [(k[:, :, : len(key)], v[:, :, : len(key)]) for k, v in self.stored[longer]]
            base = max((k for k in self.stored if key[: len(k)] == k), key=len, default=())
        kv = self.run(list(key[len(base) :]), len(base), self.stored.get(base))
        self.computed += len(key) - len(base)
        self.stored[key] = kv
        while len(self.stored) > self.keep:
            self.stored.popitem(last=False)
        return kv


def stack(kvs: Sequence[KV | None], width: int) -> KV:
    """Caches stacked into one batch, each left-padded with zeros to ``width`` positions; None is an empty
    cache of one row (at least one is not None)."""
    template = next(kv for kv in kvs if kv is not None)
    empty = [(k[:1, :, :0], v[:1, :, :0]) for k, v in template]
    padded = [
        [(left_pad(k, width - k.shape[2]), left_pad(v, width - v.shape[2])) for k, v in kv or empty]
        for kv in kvs
    ]
    return [
        (torch.cat([kv[layer][0] for kv in padded]), torch.cat([kv[layer][1] for kv in padded]))
        for layer in range(len(template))
    ]


def left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """``tensor`` (batch, ...) with ``width`` zeros before its sequence dimension (2 for keys and values,
    1 for masks)."""
    if width == 0:
        return tensor
    dim = 1 if tensor.dim() == 2 else 2
    shape = list(tensor.shape)
    shape[dim] = width
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
