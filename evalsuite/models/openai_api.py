"""Backend ``openai``: a model served by any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp).

* ``generate_until``: ``/completions`` with the task's prompt as is (``api.chat: none``), the prompt
  wrapped in the model's chat template by evalsuite (``local``, the template from ``path``/``package``)
  or ``/chat/completions`` with the prompt as one user message (``server``: the server applies its own
  template). Sampled generations carry a seed derived from the run seed and the request, so a rerun
  asks for the same draws.
* ``loglikelihood`` and ``loglikelihood_rolling``: ``/completions`` with ``echo: true, logprobs: 1,
  max_tokens: 1``: the server returns the log-probability of every prompt token (the token it then
  generates is ignored). The scored tokens are the last prompt tokens that spell the continuation
  (a token straddling the boundary counts with the continuation); greedy means each of them is the
  server's most likely token at its position. A server that returns no prompt log-probabilities gets
  a clear error naming what is missing.
* ``api.prompt_prefix`` is put before every prompt sent to ``/completions`` (scored ones, and
  generations with ``chat: none``): the BOS token's text for a model whose server adds none, so the
  model sees what the ``hf`` backend with ``add_bos_token: true`` gives it, and the first token of a
  rolling document has a token before it.

Requests go out ``api.concurrency`` at a time with retries (``models/http.py``). The model is named by
its base URL, served name and ``api.revision``: the answer cache cannot see the weights behind a
server, so change ``revision`` when they change.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_eval.api.instance import Instance

from evalsuite.config import ApiSettings, ModelConfig
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
from evalsuite.models.http import Client

SCORING_VERSION = 1  # raise when a change here alters answers: old cache entries retire
MISSING_LOGPROBS = (
    "the server returned no prompt log-probabilities (it needs /completions with echo and logprobs, "
    "as vLLM and llama-cpp-python offer); loglikelihood tasks cannot run on it"
)


class OpenAIBackend(Backend):
    def __init__(self, config: ModelConfig, client: Client, chat_template: Any, seed: int) -> None:
        super().__init__()
        assert config.api is not None
        self.config = config
        self.api: ApiSettings = config.api
        self.client = client
        self.tokenizer = chat_template  # a transformers tokenizer with a chat template (api.chat: local)
        self.seed = seed
        self._scored = self._generated = 0
        self._scoring_seconds = self._generation_seconds = 0.0

    # -- scoring --------------------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [(str(r.args[0]), str(r.args[1])) for r in requests]
        if any(not continuation for _, continuation in pairs):
            raise BackendError("empty continuation: nothing to score")
        answers = self._score([context + continuation for context, continuation in pairs])
        return [
            scored(answer, len(continuation))
            for answer, (_, continuation) in zip(answers, pairs, strict=True)
        ]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        texts = [str(r.args[0]) for r in requests]
        answers = self._score(texts)
        return [scored(answer, len(text))[0] for answer, text in zip(answers, texts, strict=True)]

    def _score(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        bodies = [
            {
                "model": self.api.model,
                "prompt": self.api.prompt_prefix + text,
                "max_tokens": 1,
                "temperature": 0.0,
                "echo": True,
                "logprobs": 1,
            }
            for text in texts
        ]
        started = time.perf_counter()
        answers = [first_choice(a) for a in self.client.post_all("/completions", bodies)]
        self._scoring_seconds += time.perf_counter() - started
        self._scored += sum(len(a.get("logprobs", {}).get("tokens") or ()) for a in answers)
        return answers

    # -- generation -----------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        occurrence: Counter[str] = Counter()  # identical requests in one call are distinct draws
        bodies, stops = [], []
        for request in requests:
            context, settings = request.args
            key = json.dumps([context, settings], sort_keys=True, default=str)
            body, until = self._generation_body(str(context), dict(settings), occurrence[key])
            occurrence[key] += 1
            bodies.append(body)
            stops.append(until)
        path = "/chat/completions" if self.api.chat == "server" else "/completions"
        started = time.perf_counter()
        answers = [first_choice(a) for a in self.client.post_all(path, bodies)]
        self._generation_seconds += time.perf_counter() - started
        texts = []
        for answer, until in zip(answers, stops, strict=True):
            text = (
                answer.get("text") if path == "/completions" else (answer.get("message") or {}).get("content")
            )
            if not isinstance(text, str):
                raise BackendError(f"the server's answer has no generated text: {str(answer)[:200]}")
            for stop in until:
                text = text.split(stop)[0]
            self._generated += int(answer.get("_completion_tokens") or 0)
            texts.append(text)
        return texts

    def _generation_body(
        self, context: str, settings: dict[str, Any], occurrence: int
    ) -> tuple[dict[str, Any], list[str]]:
        defaults = self.config.generation
        until = settings.pop("until", None) or []
        until = [until] if isinstance(until, str) else [s for s in until if s]
        temperature = float(settings.pop("temperature", defaults.temperature))
        if not bool(settings.pop("do_sample", temperature > 0)):
            temperature = 0.0
        body: dict[str, Any] = {
            "model": self.api.model,
            "max_tokens": int(settings.pop("max_gen_toks", defaults.max_new_tokens)),
            "temperature": temperature,
            "top_p": float(settings.pop("top_p", defaults.top_p)) if temperature > 0 else 1.0,
        }
        if until:
            body["stop"] = until
        body.update(sampling_extras(settings, "cannot be sent to the server"))
        if temperature > 0:  # the draw depends on the run seed and the request, not on the order sent
            digest = hashlib.sha256(json.dumps([self.seed, context, body, occurrence]).encode()).digest()
            body["seed"] = int.from_bytes(digest[:4], "little") >> 1
        if self.api.chat == "server":
            body["messages"] = [{"role": "user", "content": context}]
        elif self.api.chat == "local":
            messages = [{"role": "user", "content": context}]
            body["prompt"] = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            body["prompt"] = self.api.prompt_prefix + context
        return body, until

    # -- description ----------------------------------------------------------------------------
    def describe(self) -> ModelInfo:
        return ModelInfo(
            architecture="unknown",
            model_type="served",
            parameters=0,
            active_parameters=0,
            dtype="n/a",
            quantization="n/a",
            weight_memory_bytes=0,
            fingerprint=identity_parts_digest(self.config),
            device=self.api.base_url,
        )

    def telemetry(self) -> Telemetry:
        return Telemetry(
            peak_memory_bytes=0,
            memory_kind="none",
            scored_tokens=self._scored,
            scoring_seconds=self._scoring_seconds,
            generated_tokens=self._generated,
            generation_seconds=self._generation_seconds,
            retries=self.client.retries,
        )


def first_choice(answer: dict[str, Any] | BackendError) -> dict[str, Any]:
    """The first choice of a completions answer, with the answer's completion token count attached."""
    if isinstance(answer, BackendError):
        raise answer
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BackendError(f"the server's answer has no choices: {json.dumps(answer)[:200]}")
    usage = answer.get("usage") or {}
    return {**choices[0], "_completion_tokens": usage.get("completion_tokens")}


def scored(choice: dict[str, Any], length: int) -> tuple[float, bool]:
    """Log-probability of the last ``length`` characters of the echoed prompt, and whether every token
    covering them was the most likely one."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("token_logprobs"), list):
        raise BackendError(MISSING_LOGPROBS)
    tokens = logprobs.get("tokens") or []
    values = logprobs["token_logprobs"]
    tops = logprobs.get("top_logprobs") or [None] * len(values)
    generated = choice.get("_completion_tokens")
    if not isinstance(generated, int) or len(tokens) != len(values) or generated > len(tokens):
        raise BackendError("the server's log-probabilities are incomplete (no usage.completion_tokens)")
    covered, total, greedy = 0, 0.0, True
    for index in range(len(tokens) - generated - 1, -1, -1):
        if covered >= length:
            break
        value = values[index]
        if value is None:
            raise BackendError(
                f"the server returned no log-probability for prompt token {index} ({tokens[index]!r}) "
                "of the scored text: set api.prompt_prefix (e.g. the model's BOS token text) so that "
                "every scored token has one before it (llama-cpp-python never scores the first token "
                "it echoes, so it cannot serve loglikelihood_rolling)"
            )
        total += float(value)
        top = tops[index]
        if isinstance(top, dict) and top and float(value) < max(float(v) for v in top.values()) - 1e-6:
            greedy = False
        covered += len(tokens[index])
    if covered < length:
        raise BackendError(
            f"the server echoed fewer prompt characters ({covered}) than were scored ({length})"
        )
    return total, greedy


def identity_parts_digest(config: ModelConfig) -> str:
    """What names a served model's answers: where it is served and how evalsuite asks. Never the key."""
    api = config.api
    assert api is not None
    parts = {
        "base_url": api.base_url.rstrip("/"),
        "model": api.model,
        "revision": api.revision,
        "chat": api.chat,
        "chat_template": [config.path, config.package, config.gguf_file] if api.chat == "local" else None,
        "prompt_prefix": api.prompt_prefix,
        "generation": config.generation.model_dump(mode="json"),
        "scoring": SCORING_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


@IDENTITIES.register("openai")
def identity(config: ModelConfig, context: LoadContext) -> str:
    return "openai:" + identity_parts_digest(config)


def api_key(config: ModelConfig, context: LoadContext) -> str | None:
    api = config.api
    assert api is not None
    if api.key_env is None:
        return None
    key = context.secrets.get(api.key_env)
    if not key:
        raise ConfigError(
            f"model {config.name!r}: environment variable {api.key_env} (api.key_env) is not set"
        )
    return key


def load_chat_template(config: ModelConfig) -> Any:
    """The tokenizer whose chat template wraps prompts (``api.chat: local``), without the weights."""
    from transformers import AutoTokenizer

    gguf = sources.gguf_source(config)
    try:
        if gguf is not None:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(Path(config.path or "")), revision=config.revision)
    except (OSError, ValueError) as error:
        raise BackendError(
            f"model {config.name!r}: cannot load the tokenizer for api.chat local: {error}"
        ) from error
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"model {config.name!r}: the tokenizer has no chat template (api.chat: local)")
    return tokenizer


@PREFLIGHT.register("openai")
def preflight(config: ModelConfig) -> None:
    """A served model needs no weights; where ``path`` or ``package`` names its chat template's tokenizer,
    that must be found."""
    if config.path is not None or config.package is not None:
        sources.check_location(config)


@BACKENDS.register("openai")
def load(config: ModelConfig, context: LoadContext) -> OpenAIBackend:
    assert config.api is not None
    template = load_chat_template(config) if config.api.chat == "local" else None
    return OpenAIBackend(config, Client(config.api, api_key(config, context)), template, context.seed)
