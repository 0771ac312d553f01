"""Next-token KL between each model and its baseline, measured while the models are loaded.

The baseline's top-k next-token distributions over a sample of the run's own prompts are kept in memory
(ids and log-probabilities, k x tokens per prompt); when the variant is loaded its log-probabilities at
the same ids give KL(baseline || variant) (see ``stats.shift``). Models whose backend cannot show
distributions (replay) or whose tokenizers differ are skipped, and the reason is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from evalsuite.config import StatsSettings
from evalsuite.manifest import PairShift, TokenShiftEntry
from evalsuite.models.base import Backend, ExpertRouting, TokenDistributions
from evalsuite.stats.shift import TokenKL, routing_agreement, token_kl

Reference = tuple[str, list[tuple[NDArray[np.int64], NDArray[np.float64]]]]  # vocabulary id, per text


@dataclass
class TokenShift:
    pairs: Sequence[tuple[str, str]]  # (baseline, variant), every baseline evaluated before its variant
    texts: Sequence[str]
    settings: StatsSettings
    items: Sequence[tuple[str, int]] = ()  # per text, the (task, document) it is the prompt of
    references: dict[str, Reference] = field(default_factory=dict)
    measured: dict[tuple[str, str], TokenKL] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    routes: dict[str, list[NDArray[np.int64]]] = field(default_factory=dict)  # a baseline's expert choices
    # MoE pairs: per (task, document), the share of (token, layer) places routed to the same experts
    routing: dict[tuple[str, str], dict[tuple[str, int], float]] = field(default_factory=dict)

    def wants(self, name: str) -> bool:
        """Whether this model's distributions are needed (it is a baseline or a variant of a pair)."""
        return bool(self.texts) and any(name in pair for pair in self.pairs)

    def observe(self, name: str, backend: Backend) -> None:
        """Call once per model while it is loaded."""
        if not self.wants(name):
            return
        self._observe_routing(name, backend)
        if not isinstance(backend, TokenDistributions):
            for base, variant in self.pairs:
                if name in (base, variant):
                    self.skipped[f"{base} -> {variant}"] = f"{name}'s backend shows no token distributions"
            return
        vocabulary = backend.vocabulary_id()
        settings = self.settings
        for base, variant in self.pairs:
            if variant != name or base not in self.references:
                continue
            base_vocabulary, reference = self.references[base]
            if base_vocabulary != vocabulary:
                self.skipped[f"{base} -> {variant}"] = "the tokenizers differ"
                continue
            ids = [top_ids for top_ids, _ in reference]
            at = backend.logprobs_at(self.texts, settings.kl_max_tokens, ids)
            self.measured[(base, variant)] = token_kl(
                np.concatenate([logprobs for _, logprobs in reference]), np.concatenate(at)
            )
        if any(base == name for base, _ in self.pairs):
            self.references[name] = (
                vocabulary,
                backend.top_logprobs(self.texts, settings.kl_max_tokens, settings.kl_top_k),
            )

    def _observe_routing(self, name: str, backend: Backend) -> None:
        """MoE models: which experts each prompt token goes to, the baseline's kept, a variant's compared
        with it per prompt (so the items that flip can be set beside the routing that moved)."""
        if not isinstance(backend, ExpertRouting) or backend.describe().architecture != "moe":
            return
        choices = backend.expert_choices(self.texts, self.settings.kl_max_tokens)
        for base, variant in self.pairs:
            if variant == name and base in self.routes:
                agreement = {
                    item: routing_agreement(b, v)
                    for item, b, v in zip(self.items, self.routes[base], choices, strict=True)
                }
                self.routing[(base, variant)] = {k: a for k, a in agreement.items() if not np.isnan(a)}
        if any(base == name for base, _ in self.pairs):
            self.routes[name] = choices

    def release(self, name: str) -> None:
        """Drop a baseline's reference once every variant of it has been measured."""
        if all(variant in {v for _, v in self.measured} for base, variant in self.pairs if base == name):
            self.references.pop(name, None)
        if all((base, variant) in self.routing for base, variant in self.pairs if base == name):
            self.routes.pop(name, None)

    def manifest(self) -> TokenShiftEntry:
        return TokenShiftEntry(
            method=f"top-{self.settings.kl_top_k} + tail bucket lower bound, first "
            f"{self.settings.kl_max_tokens} tokens of {len(self.texts)} prompts of the run",
            pairs={
                f"{b} -> {v}": PairShift(
                    token_kl=kl.mean,
                    tail_mass=kl.tail_mass,
                    tokens=kl.tokens,
                    token_kl_p99=None if np.isnan(kl.p99) else kl.p99,
                )
                for (b, v), kl in self.measured.items()
            },
            skipped=dict(self.skipped),
            routing={
                f"{b} -> {v}": [(task, doc, value) for (task, doc), value in sorted(agreement.items())]
                for (b, v), agreement in self.routing.items()
            },
        )
