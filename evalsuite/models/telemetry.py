"""Measurements taken while a model runs: peak memory, token throughput, MoE routing."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import psutil
import torch

from evalsuite.models.base import RoutingStats, Telemetry


class RoutingMeter:
    """Accumulates top-k expert selections and router entropy per layer over non-padding tokens."""

    def __init__(self, layers: int, experts: int, top_k: int) -> None:
        self.counts = np.zeros((layers, experts), dtype=np.int64)
        self.entropy_sum = np.zeros(layers, dtype=np.float64)
        self.top_k = top_k
        self.tokens = 0

    def add(self, router_logits: Sequence[torch.Tensor], mask: torch.Tensor) -> None:
        """``router_logits``: per layer (batch * seq, experts); ``mask``: (batch, seq), 1 = real token."""
        keep = mask.reshape(-1).bool()
        for layer, logits in enumerate(router_logits):
            if layer >= len(self.counts):
                break
            probs = torch.softmax(logits.float()[keep.to(logits.device)], dim=-1)  # (tokens, experts)
            chosen = probs.topk(self.top_k, dim=-1).indices.reshape(-1).cpu().numpy()
            self.counts[layer] += np.bincount(chosen, minlength=self.counts.shape[1])
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
            self.entropy_sum[layer] += float(entropy.sum())
        self.tokens += int(keep.sum())

    def stats(self) -> RoutingStats | None:
        if self.tokens == 0:
            return None
        load = self.counts / np.maximum(self.counts.sum(axis=1, keepdims=True), 1)
        load_entropy = -(load * np.log(np.where(load > 0, load, 1.0))).sum(axis=1)
        return RoutingStats(
            expert_load=tuple(tuple(round(float(x), 6) for x in row) for row in load),
            routing_entropy=tuple(round(float(x), 6) for x in self.entropy_sum / self.tokens),
            load_entropy=tuple(round(float(x), 6) for x in load_entropy),
            tokens=self.tokens,
        )


def _is_gate(name: str, module: torch.nn.Module, experts: int) -> bool:
    if not name.endswith(".gate"):
        return False
    if getattr(module, "out_features", None) == experts:  # transformers 4: nn.Linear
        return True
    weight = getattr(module, "weight", None)  # transformers 5: a TopKRouter holding the gate's weight
    return isinstance(weight, torch.Tensor) and weight.dim() == 2 and weight.shape[0] == experts


def _logits(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


class RouterCapture:
    """Router logits of an MoE model, read by forward hooks on its gate layers.

    Hooks rather than ``output_router_logits``: with that flag transformers also computes the auxiliary
    balancing loss from the attention mask, which fails on the 4-D masks of shared-prefix scoring.
    A gate is a module named ``...gate`` with one output per expert (Mixtral, Qwen2-MoE, OLMoE): in
    transformers 4 a linear layer returning the logits, in 5 a top-k router (``weight`` of shape
    (experts, hidden)) returning ``(logits, scores, indices)``.
    """

    def __init__(self, model: torch.nn.Module, experts: int | None) -> None:
        self.gates = [
            module for name, module in model.named_modules() if experts and _is_gate(name, module, experts)
        ]

    @contextmanager
    def capture(self) -> Iterator[list[torch.Tensor]]:
        """Within the block, each forward appends per layer (tokens, experts) router logits."""
        captured: list[torch.Tensor] = []
        handles = [
            gate.register_forward_hook(lambda module, args, output: captured.append(_logits(output).detach()))
            for gate in self.gates
        ]
        try:
            yield captured
        finally:
            for handle in handles:
                handle.remove()


class Meter:
    """Token counts and wall time per kind of work, and the peak memory seen while working."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.scored_tokens = 0
        self.scoring_seconds = 0.0
        self.generated_tokens = 0
        self.generation_seconds = 0.0
        self.peak_rss = 0
        self.oom_backoffs = 0
        self.routing: RoutingMeter | None = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    @contextmanager
    def scoring(self, tokens: int) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.scoring_seconds += time.perf_counter() - start
        self.scored_tokens += tokens
        self._sample_memory()

    @contextmanager
    def generating(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.generation_seconds += time.perf_counter() - start
        self._sample_memory()

    def _sample_memory(self) -> None:
        if self.device.type != "cuda":
            self.peak_rss = max(self.peak_rss, psutil.Process().memory_info().rss)

    def snapshot(self) -> Telemetry:
        if self.device.type == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(self.device), "cuda_max_allocated"
        else:
            peak, kind = self.peak_rss, "process_rss_peak" if self.peak_rss else "none"
        return Telemetry(
            peak_memory_bytes=int(peak),
            memory_kind=kind,  # type: ignore[arg-type]
            scored_tokens=self.scored_tokens,
            scoring_seconds=self.scoring_seconds,
            generated_tokens=self.generated_tokens,
            generation_seconds=self.generation_seconds,
            oom_backoffs=self.oom_backoffs,
            routing=self.routing.stats() if self.routing else None,
        )


def merge(parts: Sequence[Telemetry]) -> Telemetry:
    """One model's telemetry over the ranks of a data-parallel run: tokens, seconds (summed over the
    ranks: busy time, not wall time) and counters add up, memory is the largest rank's peak, and expert
    loads and routing entropies are averaged weighted by each rank's routed tokens."""
    if len(parts) == 1:
        return parts[0]
    routed = [p.routing for p in parts if p.routing is not None and p.routing.tokens]
    return Telemetry(
        peak_memory_bytes=max(p.peak_memory_bytes for p in parts),
        memory_kind=next((p.memory_kind for p in parts if p.memory_kind != "none"), "none"),
        scored_tokens=sum(p.scored_tokens for p in parts),
        scoring_seconds=sum(p.scoring_seconds for p in parts),
        generated_tokens=sum(p.generated_tokens for p in parts),
        generation_seconds=sum(p.generation_seconds for p in parts),
        oom_backoffs=sum(p.oom_backoffs for p in parts),
        retries=sum(p.retries for p in parts),
        routing=_merge_routing(routed) if routed else None,
    )


def _merge_routing(parts: Sequence[RoutingStats]) -> RoutingStats:
    weights = np.array([p.tokens for p in parts], dtype=np.float64)
    weights /= weights.sum()
    load = sum(w * np.array(p.expert_load) for w, p in zip(weights, parts, strict=True))
    entropy = sum(w * np.array(p.routing_entropy) for w, p in zip(weights, parts, strict=True))
    load_entropy = -(load * np.log(np.where(load > 0, load, 1.0))).sum(axis=1)
    return RoutingStats(
        expert_load=tuple(tuple(round(float(x), 6) for x in row) for row in load),
        routing_entropy=tuple(round(float(x), 6) for x in entropy),
        load_entropy=tuple(round(float(x), 6) for x in load_entropy),
        tokens=sum(p.tokens for p in parts),
    )
