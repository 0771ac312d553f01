"""What every backend is: lm-eval's three-method model interface plus a description and telemetry.

Backends subclass lm-eval's ``LM`` (``loglikelihood``, ``loglikelihood_rolling``, ``generate_until``
over flat lists of ``Instance``), so any lm-eval task runs on them, and add two methods evalsuite
needs for its records: ``describe()`` (static facts: parameters, dtype, quantization, fingerprint)
and ``telemetry()`` (what was measured while it ran: memory, speed, MoE routing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from lm_eval.api.model import LM
from numpy.typing import NDArray

from evalsuite.config import ModelConfig
from evalsuite.errors import BackendError
from evalsuite.registry import Registry
from evalsuite.store import Store

Architecture = Literal["dense", "moe", "ssm", "hybrid", "unknown"]

# Task generation_kwargs that inference servers and vLLM's SamplingParams take under the same names as
# transformers' generate(); backends that cannot pass a task's setting on reject it instead of ignoring it.
SAMPLING_EXTRAS = ("top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty")


def sampling_extras(settings: dict[str, Any], refusal: str) -> dict[str, Any]:
    """Take the SAMPLING_EXTRAS out of a task's remaining generation settings; any other setting left is
    a BackendError: "generation setting(s) <names> <refusal> (it takes ...)"."""
    extras = {name: settings.pop(name) for name in SAMPLING_EXTRAS if name in settings}
    if settings:
        raise BackendError(
            f"generation setting(s) {', '.join(sorted(settings))} {refusal} "
            f"(it takes until, max_gen_toks, temperature, do_sample, top_p, {', '.join(SAMPLING_EXTRAS)})"
        )
    return extras


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded model, known before it answers anything."""

    architecture: Architecture
    model_type: str
    parameters: int
    active_parameters: int
    dtype: str
    quantization: str
    weight_memory_bytes: int
    fingerprint: str
    device: str
    max_length: int | None = None
    num_experts: int | None = None
    experts_per_token: int | None = None
    # how the weights are stored and run, for the report's models table (None where not known)
    weight_format: str | None = None  # e.g. "GGUF Q4_K (q4_k_m)", "compressed-tensors W8A8-int8"
    bits_per_weight: float | None = None  # stored bytes * 8 / weights, over every tensor
    group_size: int | None = None  # quantization block size of the dominant format
    kernel: str | None = None  # what computes with them, e.g. "llama.cpp (llama-cpp-python 0.3.36)"


@dataclass(frozen=True)
class RoutingStats:
    """MoE routing over a run: per layer, the share of expert selections each expert received."""

    expert_load: tuple[tuple[float, ...], ...]  # [layer][expert], each row sums to 1
    routing_entropy: tuple[float, ...]  # [layer] mean per-token entropy of the router softmax, nats
    load_entropy: tuple[float, ...]  # [layer] entropy of expert_load, nats (log(E) = perfectly balanced)
    tokens: int


@dataclass(frozen=True)
class Telemetry:
    """Measured while the model ran; zero where nothing of that kind was run."""

    peak_memory_bytes: int
    memory_kind: Literal["cuda_max_allocated", "process_rss_peak", "none"]
    scored_tokens: int
    scoring_seconds: float
    generated_tokens: int
    generation_seconds: float
    oom_backoffs: int = 0  # times the batch size was halved after running out of GPU memory
    retries: int = 0  # served models: requests tried again after a timeout, dropped connection, 429 or 5xx
    routing: RoutingStats | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.scored_tokens / self.scoring_seconds if self.scoring_seconds else 0.0

    @property
    def generated_tokens_per_second(self) -> float:
        return self.generated_tokens / self.generation_seconds if self.generation_seconds else 0.0


@dataclass(frozen=True)
class LoadContext:
    """What a backend may use while loading, beyond its own config."""

    cache_dir: Path
    seed: int
    progress: Callable[[str], None] = field(default=lambda message: None)
    store: Store | None = None  # the persistent cache, when the run keeps one
    secrets: Mapping[str, str] = field(default_factory=dict)  # API keys by the env var names the config gives


class Backend(LM, ABC):  # type: ignore[misc]  # lm-eval's LM is untyped
    """A model evalsuite can evaluate. Subclasses register a ``load(config, context)`` factory."""

    @abstractmethod
    def describe(self) -> ModelInfo: ...

    @abstractmethod
    def telemetry(self) -> Telemetry: ...

    def close(self) -> None:
        """Release the model's memory; the backend is unusable afterwards."""


@runtime_checkable
class TokenDistributions(Protocol):
    """Backends that can show their next-token distributions (for KL between a model and its variant, and
    for contamination scores)."""

    def vocabulary_id(self) -> str:
        """Identifies the tokenizer: distributions are comparable only between equal ids."""
        ...

    def top_logprobs(
        self, texts: Sequence[str], max_tokens: int, k: int
    ) -> list[tuple[NDArray[np.int64], NDArray[np.float64]]]:
        """Per text: the k most likely next-token ids and their log-probabilities at each position."""
        ...

    def logprobs_at(
        self, texts: Sequence[str], max_tokens: int, ids: Sequence[NDArray[np.int64]]
    ) -> list[NDArray[np.float64]]:
        """Per text: the log-probabilities of the given token ids at each position."""
        ...

    def token_statistics(self, texts: Sequence[str], max_tokens: int) -> list[NDArray[np.float64]]:
        """Per text: a (tokens - 1, 3) array for each of its first ``max_tokens`` tokens after the first: the
        token's log-probability given those before it, and the mean and standard deviation of the
        log-probability under the next-token distribution there (what Min-K%++ standardises by,
        ``stats.contamination``). Reduced inside the backend, so no vocabulary-wide row leaves it."""
        ...


@runtime_checkable
class ExpertRouting(Protocol):
    """MoE backends that can show which experts each token is routed to (for routing agreement between
    a model and its variant)."""

    def expert_choices(self, texts: Sequence[str], max_tokens: int) -> list[NDArray[np.int64]]:
        """Per text: (tokens, layers, k) the experts each of the first tokens is routed to at each MoE
        layer, sorted within a token and layer; (0, 0, 0) for a model without routers."""
        ...


BackendFactory = Callable[[ModelConfig, LoadContext], Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend")

BackendCheck = Callable[[ModelConfig], None]
PREFLIGHT: Registry[BackendCheck] = Registry("backend check")
"""Backends register here what can be checked in seconds without loading anything (the weights exist or
are in the offline hub cache, the device and the packages they need are there), so that a run that cannot
work says so before any model loads, any model is converted or any file is written. A check raises
ConfigError with one line that says what to do."""

BackendIdentity = Callable[[ModelConfig, LoadContext], str]
IDENTITIES: Registry[BackendIdentity] = Registry("backend identity")
"""Backends that can name their model before loading it (weights hash, dtype, quantization, library
versions: everything that changes an answer) register that here; the engine caches their answers under
that name, and a run whose answers are all cached never loads the model."""
