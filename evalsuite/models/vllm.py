"""Backend ``vllm``: a checkpoint run in-process by vLLM on one or more CUDA GPUs (optional extra).

vLLM splits the model over ``tensor_parallel_size`` GPUs (a model config key, default 1) and answers
all three request types through ``LLM.generate``, as lm-eval's own ``vllm`` backend does:

* ``generate_until``: the prompt's token ids with ``SamplingParams(max_tokens, temperature, top_p,
  stop)``; the task's ``generation_kwargs`` are merged over the model's ``generation`` defaults as the
  ``hf`` backend merges them. Sampled requests carry a seed derived from the run seed, the request and
  how many identical requests came before it in the call, so a rerun draws the same samples and
  repeated requests draw different ones.
* ``loglikelihood`` and ``loglikelihood_rolling``: the whole sequence (context and continuation) as
  the prompt with ``SamplingParams(max_tokens=1, prompt_logprobs=1)``: vLLM returns the
  log-probability of every prompt token, and of the most likely token where that is another, and the
  continuation's tokens are summed (:func:`continuation_score`). The token that is then generated is
  ignored. vLLM runs such prompts without its prefix cache, so every one is prefilled in full.

Tokenization is lm-eval's (``TemplateLM._encode_pair``, the ``hf`` backend's BOS rule), so token ids
equal the ``hf`` backend's. vLLM needs room for one generated token after each prompt: scored
sequences are cut on the left to ``max_length - 1`` tokens and rolling windows predict
``max_length - 2`` tokens each, as in lm-eval's vllm backend.

The model is ``path`` (a local checkpoint folder or a hub id); vLLM reads pre-quantized checkpoints
(AWQ, GPTQ, FP8) from the folder itself, so ``quantization`` stays ``none``; ``device`` is not read.
vLLM is imported only when a model is loaded: ``pip install 'evalsuite[vllm]'`` on a CUDA machine.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM

from evalsuite.config import ModelConfig
from evalsuite.errors import BackendError, ConfigError
from evalsuite.models import sources
from evalsuite.models.base import (
    BACKENDS,
    IDENTITIES,
    PREFLIGHT,
    Backend,
    LoadContext,
    ModelInfo,
    Telemetry,
    sampling_extras,
)
from evalsuite.models.hf import architecture_of
from evalsuite.models.tokens import TokenizerRules, TokenRequest, rolling_loglikelihoods

SamplingFactory = Callable[..., Any]  # vllm.SamplingParams, or a stand-in taking the same keywords
DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "auto": "auto"}
INSTALL_HINT = "pip install 'evalsuite[vllm]' (vLLM needs a CUDA GPU)"


def continuation_score(
    prompt_logprobs: Sequence[Mapping[int, Any] | None] | None,
    prompt_ids: Sequence[int],
    n_continuation: int,
) -> tuple[float, bool]:
    """Log-probability of the last ``n_continuation`` prompt tokens, and whether each was the most
    likely token at its position.

    ``prompt_logprobs`` is vLLM's ``RequestOutput.prompt_logprobs``: one entry per prompt token, None
    for the first, else token id -> ``Logprob`` (``.logprob``, ``.rank``; a bare float in old vLLM).
    A token is greedy when its rank is 1 or no token in its entry is more likely (a tie counts).
    """
    if prompt_logprobs is None:
        raise BackendError("vLLM returned no prompt log-probabilities (prompt_logprobs was not set)")
    if len(prompt_logprobs) != len(prompt_ids):
        raise BackendError(
            f"vLLM returned {len(prompt_logprobs)} prompt log-probabilities for {len(prompt_ids)} tokens"
        )
    if not 0 < n_continuation < len(prompt_ids):
        raise BackendError(f"cannot score {n_continuation} of {len(prompt_ids)} prompt tokens")
    total, greedy = 0.0, True
    for position in range(len(prompt_ids) - n_continuation, len(prompt_ids)):
        entry, token = prompt_logprobs[position], prompt_ids[position]
        if entry is None or token not in entry:
            raise BackendError(f"vLLM returned no log-probability for prompt token {position} (id {token})")
        value = _logprob(entry[token])
        total += value
        if getattr(entry[token], "rank", None) != 1 and value < max(_logprob(v) for v in entry.values()):
            greedy = False
    return total, greedy


def _logprob(value: Any) -> float:
    return float(getattr(value, "logprob", value))


class VLLMBackend(TokenizerRules, Backend, TemplateLM):  # type: ignore[misc]
    """A model loaded by vLLM. Build it with :func:`load`; tests pass a stand-in ``llm``."""

    def __init__(
        self,
        config: ModelConfig,
        llm: Any,
        tokenizer: Any,
        seed: int = 0,
        sampling_params: SamplingFactory | None = None,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.llm = llm
        self.tokenizer = tokenizer
        self.seed = seed
        self._sampling_params = sampling_params
        self.model_config = _model_config(llm)
        self.max_length = int(self.model_config.max_model_len)
        self.fingerprint = (
            fingerprint
            or hashlib.sha256(
                f"vllm\n{config.path}\n{config.revision or 'main'}\n{config.dtype}".encode()
            ).hexdigest()[:32]
        )
        self._scored = self._generated = 0
        self._scoring_seconds = self._generation_seconds = 0.0

    def _sampling(self, **settings: Any) -> Any:
        """SamplingParams, from vLLM unless a stand-in was given."""
        if self._sampling_params is None:
            from vllm import SamplingParams

            self._sampling_params = SamplingParams
        return self._sampling_params(**settings)

    # -- scoring ----------------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests: list[TokenRequest], **kwargs: Any) -> list[tuple[float, bool]]:
        """Each (context, continuation) as one prompt, cut on the left to leave room for the one token
        vLLM must generate; the continuation's last tokens are scored when even it does not fit."""
        prompts, counts = [], []
        for _, context, continuation in requests:
            if not continuation:
                raise BackendError("empty continuation: nothing to score")
            whole = (list(context) + list(continuation))[-(self.max_length - 1) :]
            if len(whole) < 2:
                raise BackendError(f"max_length {self.max_length} leaves no room to score a token")
            prompts.append(whole)
            counts.append(min(len(continuation), len(whole) - 1))
        if not prompts:
            return []
        params = self._sampling(temperature=0.0, max_tokens=1, prompt_logprobs=1, detokenize=False)
        started = time.perf_counter()
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompts], sampling_params=params, use_tqdm=False
        )
        self._scoring_seconds += time.perf_counter() - started
        self._scored += sum(map(len, prompts))
        return [
            continuation_score(output.prompt_logprobs, ids, n)
            for output, ids, n in zip(outputs, prompts, counts, strict=True)
        ]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Perplexity-style scoring with lm-eval's disjoint rolling windows, all windows of all
        documents in one call; each window is one prefix token (or the tail of the previous window)
        and up to ``max_length - 2`` predicted tokens."""
        if self.max_length < 3:
            raise BackendError(f"max_length {self.max_length} is too short for rolling windows")
        return rolling_loglikelihoods(
            [str(r.args[0]) for r in requests],
            self.tok_encode,
            self.prefix_token_id,
            self.max_length - 2,
            self._loglikelihood_tokens,
        )

    # -- generation -------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Every request in one ``LLM.generate`` call, each with its own sampling parameters."""
        occurrence: Counter[str] = Counter()  # identical requests in one call are distinct draws
        prompts, params, stops = [], [], []
        for request in requests:
            context, settings = request.args
            key = json.dumps([context, settings], sort_keys=True, default=str)
            until, options = self._generation_options(dict(settings))
            max_new = options.pop("max_tokens")
            budget = max(self.max_length - max_new, 1)
            ids = self.tok_encode(str(context))[-budget:] or [self.prefix_token_id]
            if options["temperature"] > 0:  # seeded by the run and the request, not by the order sent
                digest = hashlib.sha256(json.dumps([self.seed, key, occurrence[key]]).encode()).digest()
                options["seed"] = int.from_bytes(digest[:4], "little") >> 1
            occurrence[key] += 1
            max_tokens = min(max_new, self.max_length - len(ids))
            prompts.append({"prompt_token_ids": ids})
            params.append(self._sampling(max_tokens=max_tokens, stop=until, **options))
            stops.append(until)
        if not prompts:
            return []
        started = time.perf_counter()
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        self._generation_seconds += time.perf_counter() - started
        texts = []
        for output, until in zip(outputs, stops, strict=True):
            completion = output.outputs[0]
            self._generated += len(completion.token_ids)
            text = str(completion.text)
            for stop in until:
                text = text.split(stop)[0]
            texts.append(text)
        return texts

    def _generation_options(self, settings: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """Merge a task's ``generation_kwargs`` over the model's defaults, as the hf backend does:
        ``until`` (default: the end-of-text token's text), ``max_gen_toks``, ``temperature``,
        ``do_sample`` (default: temperature > 0) and ``top_p`` when sampling."""
        defaults = self.config.generation
        until = settings.pop("until", None) or [self.tokenizer.decode(self.eot_token_id)]
        until = [until] if isinstance(until, str) else [s for s in until if s]
        max_new = int(settings.pop("max_gen_toks", defaults.max_new_tokens))
        temperature = float(settings.pop("temperature", defaults.temperature))
        do_sample = bool(settings.pop("do_sample", temperature > 0))
        top_p = float(settings.pop("top_p", defaults.top_p))
        options: dict[str, Any] = {"max_tokens": max_new, "temperature": 0.0, "top_p": 1.0, "seed": None}
        if do_sample and temperature > 0:
            options.update(temperature=temperature, top_p=top_p)
        options.update(sampling_extras(settings, "have no vLLM counterpart"))
        return until, options

    # -- evalsuite's additions --------------------------------------------------------------------
    def describe(self) -> ModelInfo:
        hf_config = getattr(self.model_config, "hf_config", None)
        architecture, experts, top_k = architecture_of(hf_config)
        dtype = getattr(self.model_config, "dtype", None)
        return ModelInfo(
            architecture=architecture if hf_config is not None else "unknown",
            model_type=str(getattr(hf_config, "model_type", "unknown")),
            parameters=0,
            active_parameters=0,
            dtype=str(dtype).removeprefix("torch.") if dtype is not None else self.config.dtype,
            quantization=str(getattr(self.model_config, "quantization", None) or self.config.quantization),
            weight_memory_bytes=0,
            fingerprint=self.fingerprint,
            device=f"cuda x{self.config.tensor_parallel_size}",
            max_length=self.max_length,
            num_experts=experts,
            experts_per_token=top_k,
        )

    def telemetry(self) -> Telemetry:
        """Peak memory is what this process allocated through torch; where vLLM runs its engine in
        worker processes (its default in recent versions, and always with tensor parallelism) that is
        nothing, and then no memory figure is reported."""
        peak = int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else 0
        return Telemetry(
            peak_memory_bytes=peak,
            memory_kind="cuda_max_allocated" if peak else "none",
            scored_tokens=self._scored,
            scoring_seconds=self._scoring_seconds,
            generated_tokens=self._generated,
            generation_seconds=self._generation_seconds,
        )

    def close(self) -> None:
        """Shut the engine down and give its GPU memory back, so another model can load after it."""
        if self.llm is None:
            return
        shutdown = getattr(
            getattr(getattr(self.llm, "llm_engine", None), "engine_core", None), "shutdown", None
        )
        if callable(shutdown):
            shutdown()
        self.llm = None
        gc.collect()
        try:
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )
        except ImportError:
            pass
        else:
            destroy_model_parallel()
            destroy_distributed_environment()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _model_config(llm: Any) -> Any:
    """vLLM's ModelConfig (``max_model_len``, ``hf_config``, ``dtype``, ``quantization``)."""
    engine = getattr(llm, "llm_engine", None)
    model_config = getattr(engine, "model_config", None) or getattr(llm, "model_config", None)
    if model_config is None:
        raise BackendError("cannot read the model's configuration from vLLM (llm_engine.model_config)")
    return model_config


def check_config(config: ModelConfig) -> str:
    """What vLLM should load (``path``); the settings this backend cannot honour are config errors."""
    if config.quantization != "none":
        raise ConfigError(
            f"model {config.name!r}: backend 'vllm' takes no 'quantization' ({config.quantization!r}): "
            "vLLM reads pre-quantized checkpoints (AWQ, GPTQ, FP8) from the model folder itself"
        )
    if config.package is not None or config.gguf_file is not None or config.path is None:
        raise ConfigError(
            f"model {config.name!r}: backend 'vllm' takes 'path' (a local checkpoint folder or hub id), "
            "not 'package' or 'gguf_file'"
        )
    return config.path


@PREFLIGHT.register("vllm")
def preflight(config: ModelConfig) -> None:
    """Settings vLLM takes, vLLM itself and a CUDA GPU, and weights that can be found: before anything
    starts."""
    check_config(config)
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            f"model {config.name!r}: backend 'vllm' needs vLLM, which is not installed: {INSTALL_HINT}"
        )
    if not torch.cuda.is_available():
        raise ConfigError(f"model {config.name!r}: backend 'vllm' needs a CUDA GPU, and torch sees none")
    sources.check_location(config)


@BACKENDS.register("vllm")
def load(config: ModelConfig, context: LoadContext) -> VLLMBackend:
    """Start vLLM on the model's GPUs (``tensor_parallel_size`` of them)."""
    location = check_config(config)
    try:
        from vllm import LLM, SamplingParams
    except ImportError as error:
        raise BackendError(
            f"model {config.name!r}: backend 'vllm' needs vLLM: {INSTALL_HINT} ({error})"
        ) from None
    if not torch.cuda.is_available():
        raise BackendError(f"model {config.name!r}: backend 'vllm' needs a CUDA GPU, and none is available")
    fingerprint = sources.fingerprint(location, config, store=context.store)
    context.progress(f"loading {config.name} with vLLM")
    try:
        llm = LLM(
            model=location,
            revision=config.revision,
            dtype=DTYPES[config.dtype],
            tensor_parallel_size=config.tensor_parallel_size,
            seed=context.seed,
            max_model_len=config.max_length,
            trust_remote_code=config.trust_remote_code,
            enforce_eager=False,
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise BackendError(f"model {config.name!r}: vLLM cannot load {location}: {error}") from error
    return VLLMBackend(config, llm, llm.get_tokenizer(), context.seed, SamplingParams, fingerprint)


SCORING_VERSION = 1  # raise when a change here alters answers: old cache entries retire


@IDENTITIES.register("vllm")
def identity(config: ModelConfig, context: LoadContext) -> str:
    """What changes an answer, known without starting vLLM: the checkpoint's files, dtype, how the model
    is split (all-reduce order changes the arithmetic), length and BOS settings, generation defaults and
    the library versions. A rerun whose answers are all cached never starts vLLM."""
    location = check_config(config)
    parts = {
        "fingerprint": sources.fingerprint(location, config, store=context.store),
        "dtype": config.dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "max_length": config.max_length,
        "add_bos_token": config.add_bos_token,
        "trust_remote_code": config.trust_remote_code,
        "generation": config.generation.model_dump(mode="json"),
        "versions": {name: sources.version(name) for name in ("vllm", "torch", "transformers")},
        "scoring": SCORING_VERSION,
    }
    return "vllm:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
