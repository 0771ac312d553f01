"""Backend ``llamacpp``: a GGUF file run in-process by llama.cpp (llama-cpp-python), its own kernels.

This is how quantized GGUF checkpoints run where they are shipped (llama.cpp, Ollama, LM Studio): the
``hf`` backend dequantizes a GGUF file to float32 and so evaluates llama.cpp's weight rounding but not its
arithmetic (int8-rounded activations, its matmul kernels). Compared with the same file served by
llama-cpp-python's server (backend ``openai``), nothing crosses HTTP, and scoring reads only the logits it
needs instead of a full-vocabulary softmax for every echoed token.

* ``loglikelihood``: lm-eval's tokenization (``TemplateLM``: the context and continuation encoded
  apart, a trailing space moved to the continuation, an empty context replaced by BOS/EOS), then the
  token sequences are sorted so that those sharing a prefix follow each other. llama.cpp's KV cache keeps
  the shared prefix; each sequence feeds only the tokens after the longest prefix it shares with the one
  before, and asks llama.cpp for logits only at the positions that predict continuation tokens
  (``llama_batch.logits``). Sequences longer than the context are cut on the left, as lm-eval does.
* ``loglikelihood_rolling``: lm-eval's disjoint rolling windows, scored as above.
* ``generate_until``: ``create_completion`` with the prompt's token ids, the task's stop sequences,
  ``max_gen_toks``, and llama.cpp's sampler reduced to temperature and top-p (its top-k 40 and min-p 0.05
  defaults are switched off, so sampling means what it means for ``hf``); greedy is llama.cpp's greedy
  sampler. A sampled generation's seed derives from the run seed, the request and how many identical
  requests came before it, so a resumed run draws the same text.
* ``top_logprobs`` / ``logprobs_at``: next-token distributions for the KL between a model and its variant;
  ``token_statistics``: each token's log-probability with the mean and spread of its distribution, for
  Min-K%++ contamination scores (``stats.contamination``).

Answers are cached under the GGUF file's sha256, the quantization level, llama.cpp's version and every
setting that changes an answer (``identity``); threads do not (each dot product is one thread's work).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from numpy.typing import NDArray

from evalsuite.config import LlamaCppSettings, ModelConfig
from evalsuite.errors import BackendError, ConfigError
from evalsuite.models import gguf, sources
from evalsuite.models.base import (
    BACKENDS,
    IDENTITIES,
    PREFLIGHT,
    Architecture,
    Backend,
    LoadContext,
    ModelInfo,
    Telemetry,
    sampling_extras,
)
from evalsuite.models.telemetry import Meter
from evalsuite.models.tokens import RollingByTokens, TokenRequest

SCORING_VERSION = 1  # raise when a change here alters answers beyond float noise: old cache entries retire
# llama.cpp names for the sampling settings lm-eval tasks use (base.SAMPLING_EXTRAS)
EXTRAS = {
    "top_k": "top_k",
    "min_p": "min_p",
    "repetition_penalty": "repeat_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
MOE_KEYS = ("expert_count", "expert_used_count")


class LlamaCppBackend(RollingByTokens, Backend, TemplateLM):  # type: ignore[misc]  # lm-eval's TemplateLM is untyped
    """A GGUF file loaded by llama.cpp. Build it with :func:`load`."""

    def __init__(self, config: ModelConfig, llama: Any, info: ModelInfo, seed: int) -> None:
        super().__init__()
        self.config = config
        self.llama = llama
        self.info = info
        self.seed = seed
        # llama.cpp rounds its context up (to 256 tokens); lm-eval's windows follow the configured length
        self.max_length = min(config.max_length or int(llama.n_ctx()), int(llama.n_ctx()))
        self.n_vocab = int(llama.n_vocab())
        self.meter = Meter(torch.device("cpu"))
        self._cached: list[int] = []  # the tokens llama.cpp's KV cache holds for sequence 0
        self._rows: dict[int, NDArray[np.float32]] = {}  # position -> log-probabilities computed there

    # -- tokenization (lm-eval's TemplateLM hooks) -------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return int(self.llama.token_eos())

    @property
    def prefix_token_id(self) -> int:
        bos = int(self.llama.token_bos())
        return bos if bos >= 0 else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """lm-eval's rule, as for ``hf``: an explicit flag wins, then ``add_bos_token``, then the GGUF
        file's own default; never a second BOS. Special-token text is parsed, as transformers does."""
        bos_text = self.llama.detokenize([self.prefix_token_id], special=True).decode("utf-8", "replace")
        if add_special_tokens is None:
            add_special_tokens = self.config.add_bos_token
            if bos_text and string.startswith(bos_text):
                add_special_tokens = False
        ids = list(
            self.llama.tokenize(string.encode("utf-8"), add_bos=add_special_tokens is not False, special=True)
        )
        if add_special_tokens and (not ids or ids[0] != self.prefix_token_id):
            ids.insert(0, self.prefix_token_id)  # asked for, though the file's default adds none
        return ids

    def tok_decode(self, tokens: Sequence[int], **kwargs: Any) -> str:
        return str(self.llama.detokenize(list(tokens)).decode("utf-8", "replace"))

    # -- scoring ----------------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests: list[TokenRequest], **kwargs: Any) -> list[tuple[float, bool]]:
        sequences = []
        for _, context, continuation in requests:
            if not continuation:
                raise BackendError("empty continuation: nothing to score")
            whole = (list(context) + list(continuation))[-(self.max_length + 1) :]
            inputs = whole[:-1]
            n_cont = min(len(continuation), len(inputs))
            sequences.append((inputs, list(continuation)[-n_cont:]))
        results: list[tuple[float, bool]] = [(0.0, False)] * len(sequences)
        for index in sorted(range(len(sequences)), key=lambda i: sequences[i][0]):
            inputs, targets = sequences[index]
            first = len(inputs) - len(targets)  # the position whose logits predict the first target
            rows = self._logprob_rows(inputs, range(first, len(inputs)))
            chosen = [float(row[target]) for row, target in zip(rows, targets, strict=True)]
            greedy = all(int(row.argmax()) == target for row, target in zip(rows, targets, strict=True))
            results[index] = (sum(chosen), greedy)
            # keep only the row the next answer to the same context needs: a row is a vocabulary of
            # floats, and rolling windows would otherwise keep one per position (GBs for long contexts)
            self._rows = {first: self._rows[first]}
        return results

    def _logprob_rows(self, tokens: list[int], wanted: Sequence[int]) -> list[NDArray[np.float32]]:
        """Next-token log-probabilities after ``tokens[: p + 1]`` for each position p in ``wanted``,
        feeding llama.cpp only what its KV cache does not hold yet."""
        keep = 0
        limit = min(len(self._cached), len(tokens))
        while keep < limit and self._cached[keep] == tokens[keep]:
            keep += 1
        missing = [p for p in wanted if p < keep and p not in self._rows]
        if missing:
            keep = min(missing)
        if len(tokens) - keep == 1 and keep > 0:
            keep -= 1  # never one token alone: see _chunks
        self._truncate(keep)
        if keep < len(tokens):
            self._feed(tokens[keep:], keep, {p for p in wanted if p >= keep})
        return [self._rows[p] for p in wanted]

    def _truncate(self, keep: int) -> None:
        if keep < len(self._cached):
            self.llama._ctx.kv_cache_seq_rm(0, keep, -1)
            del self._cached[keep:]
        for position in [p for p in self._rows if p >= keep]:
            del self._rows[position]

    def _feed(self, tokens: Sequence[int], start: int, outputs: set[int]) -> None:
        """Decode ``tokens`` at positions ``start``... in chunks of ``n_batch``, keeping the
        log-probabilities at the ``outputs`` positions."""
        import llama_cpp

        ctx = self.llama._ctx.ctx
        batch = self.llama._batch.batch
        step = int(self.llama.n_batch)
        with self.meter.scoring(len(tokens)):
            for offset, chunk in _chunks(tokens, step):
                flagged = []
                batch.n_tokens = len(chunk)
                for i, token in enumerate(chunk):
                    position = start + offset + i
                    batch.token[i] = token
                    batch.pos[i] = position
                    batch.seq_id[i][0] = 0
                    batch.n_seq_id[i] = 1
                    batch.logits[i] = position in outputs
                    if position in outputs:
                        flagged.append((i, position))
                status = llama_cpp.llama_decode(ctx, batch)
                if status != 0:
                    self._truncate(0)
                    raise BackendError(f"llama.cpp could not decode (llama_decode returned {status})")
                self._cached.extend(chunk)
                for i, position in flagged:
                    pointer = llama_cpp.llama_get_logits_ith(ctx, i)
                    logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float32)
                    self._rows[position] = log_softmax(logits)

    # -- generation -------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        self._truncate(0)  # create_completion keeps its own record of the KV cache
        occurrence: Counter[str] = Counter()  # identical requests in one call are distinct draws
        texts = []
        for request in requests:
            context, settings = request.args
            key = json.dumps([context, settings], sort_keys=True, default=str)
            texts.append(self._generate(str(context), dict(settings), occurrence[key]))
            occurrence[key] += 1
        self.llama.reset()
        self.llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        return texts

    def _generate(self, context: str, settings: dict[str, Any], occurrence: int) -> str:
        defaults = self.config.generation
        until = settings.pop("until", None) or [self.tok_decode([self.eot_token_id])]
        until = [until] if isinstance(until, str) else [s for s in until if s]
        max_new = int(settings.pop("max_gen_toks", defaults.max_new_tokens))
        temperature = float(settings.pop("temperature", defaults.temperature))
        if not bool(settings.pop("do_sample", temperature > 0)):
            temperature = 0.0
        top_p = float(settings.pop("top_p", defaults.top_p)) if temperature > 0 else 1.0
        options: dict[str, Any] = {"top_k": 0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0}
        options.update(
            {
                EXTRAS[name]: value
                for name, value in sampling_extras(settings, "llama.cpp cannot apply").items()
            }
        )
        budget = max(self.max_length - max_new, 1)
        prompt = self.tok_encode(context)[-budget:]
        seed = 0
        if temperature > 0:  # the draw depends on the run seed and the request, not on the order sent
            digest = hashlib.sha256(json.dumps([self.seed, context, settings, occurrence]).encode()).digest()
            seed = int.from_bytes(digest[:4], "little") >> 1
        with self.meter.generating():
            answer = self.llama.create_completion(
                prompt=prompt,
                max_tokens=max_new,
                temperature=temperature,
                top_p=top_p,
                stop=until,
                seed=seed,
                **options,
            )
        self.meter.generated_tokens += int(answer["usage"]["completion_tokens"])
        text = str(answer["choices"][0]["text"])
        for stop in until:
            text = text.split(stop)[0]
        return text

    # -- next-token distributions (TokenDistributions) -------------------------------------------
    def vocabulary_id(self) -> str:
        """The same digest ``hf`` computes from a transformers vocabulary (token text -> id, sorted), so
        a GGUF file and the checkpoint it was converted from compare."""
        model = self.llama._model
        vocab = sorted((model.token_get_text(i), i) for i in range(self.n_vocab))
        return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:32]

    def top_logprobs(
        self, texts: Sequence[str], max_tokens: int, k: int
    ) -> list[tuple[NDArray[np.int64], NDArray[np.float64]]]:
        out = []
        for rows in self._text_rows(texts, max_tokens):
            ids = np.argsort(-rows, axis=1, kind="stable")[:, : min(k, self.n_vocab)].astype(np.int64)
            out.append((ids, np.take_along_axis(rows, ids, axis=1).astype(np.float64)))
        return out

    def logprobs_at(
        self, texts: Sequence[str], max_tokens: int, ids: Sequence[NDArray[np.int64]]
    ) -> list[NDArray[np.float64]]:
        return [
            np.take_along_axis(rows, wanted, axis=1).astype(np.float64)
            for rows, wanted in zip(self._text_rows(texts, max_tokens), ids, strict=True)
        ]

    def token_statistics(self, texts: Sequence[str], max_tokens: int) -> list[NDArray[np.float64]]:
        """One text at a time, each reduced before the next is fed (one text's vocabulary-wide rows held);
        the rows are those ``logprobs_at`` reads, fed the same way."""
        out = []
        for tokens in self._text_tokens(texts, max_tokens):
            if len(tokens) < 2:
                out.append(np.zeros((0, 3)))
                continue
            rows = self._token_rows(tokens)
            out.append(logprob_statistics(rows[:-1], np.asarray(tokens[1:], dtype=np.int64)))
        return out

    def _text_tokens(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        return [self.tok_encode(text)[: min(max_tokens, self.max_length)] for text in texts]

    def _text_rows(self, texts: Sequence[str], max_tokens: int) -> list[NDArray[np.float32]]:
        return [self._token_rows(tokens) for tokens in self._text_tokens(texts, max_tokens)]

    def _token_rows(self, tokens: list[int]) -> NDArray[np.float32]:
        """(tokens, vocab) next-token log-probabilities after each prefix of ``tokens``."""
        rows = np.stack(self._logprob_rows(tokens, range(len(tokens))))
        self._rows.clear()
        return rows

    # -- description ------------------------------------------------------------------------------
    def describe(self) -> ModelInfo:
        return self.info

    def telemetry(self) -> Telemetry:
        return self.meter.snapshot()

    def close(self) -> None:
        self.llama.close()


def _chunks(tokens: Sequence[int], step: int) -> list[tuple[int, Sequence[int]]]:
    """``tokens`` cut into (offset, chunk) pieces of at most ``step`` tokens, none of one token when
    there are more. llama.cpp multiplies a one-token batch by the quantized weights with another kernel
    (matrix-vector) than a batch of several (matrix-matrix), and for 4-bit weights the two differ by up to
    0.35 nats on a token (SmolLM2 Q4_1, docs/models.md); scoring every token in batches of two or more
    gives the numbers llama.cpp's server gives for a whole prompt, whatever the prefix reuse."""
    starts = list(range(0, len(tokens), step))
    if len(starts) > 1 and len(tokens) - starts[-1] == 1:
        starts[-1] -= 1
    ends = [*starts[1:], len(tokens)]
    return [(start, tokens[start:end]) for start, end in zip(starts, ends, strict=True)]


def log_softmax(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    shifted = logits - logits.max()
    out: NDArray[np.float32] = (shifted - np.log(np.exp(shifted).sum())).astype(np.float32)
    return out


def logprob_statistics(rows: NDArray[np.float32], targets: NDArray[np.int64]) -> NDArray[np.float64]:
    """(rows, 3): each target's log-probability in its row, and the mean and standard deviation of log p
    under that row's distribution; as ``hf.logprob_statistics`` computes them (float32 products summed in
    float64, the variance about the mean, tokens without mass left out), in numpy."""
    probs = np.exp(rows)
    held = probs > 0
    with np.errstate(invalid="ignore"):  # 0 * -inf where a token has no mass; np.where drops it
        mean = np.where(held, probs * rows, 0.0).sum(axis=-1, dtype=np.float64)
        deviation = np.where(held, rows - mean.astype(np.float32)[:, None], 0.0)
    variance = (probs * np.square(deviation)).sum(axis=-1, dtype=np.float64)
    chosen = np.take_along_axis(rows, targets[:, None], axis=-1)[:, 0].astype(np.float64)
    return np.stack([chosen, mean, np.sqrt(variance)], axis=-1)


def settings_of(config: ModelConfig) -> LlamaCppSettings:
    return config.llamacpp or LlamaCppSettings()


def threads_of(config: ModelConfig) -> int:
    """``llamacpp.threads``, else half the cores (llama-cpp-python's default for generation, used for
    prompts too): llama.cpp's OpenMP threads spin at every barrier, so more threads than free cores
    slows it down many times over (measured: 28x with 2 threads on 2 busy cores, docs/models.md)."""
    return settings_of(config).threads or max(1, (os.cpu_count() or 2) // 2)


def weights_file(config: ModelConfig, context: LoadContext) -> Path:
    """The GGUF file llama.cpp runs: the named file, or its requantization to the configured level."""
    source = sources.gguf_source(config)
    assert source is not None  # ModelConfig requires gguf_file for backend llamacpp
    if not config.quantization.startswith("gguf-"):
        return source
    level = config.quantization.removeprefix("gguf-")
    digest = gguf.source_digest(source, context.store)
    cached = context.cache_dir / "gguf" / f"{digest[:32]}-{level}.gguf"
    if not cached.is_file():
        context.progress(f"quantizing {source.name} to {level.upper()} with llama.cpp (once)")
    return gguf.quantized_file(source, level, digest, context.cache_dir, threads_of(config))


def gpu_layers(config: ModelConfig) -> int:
    """Layers offloaded to the GPU: all of them on cuda, none on cpu (auto: all where the build can)."""
    if config.device == "cpu":
        return 0
    import llama_cpp

    return -1 if llama_cpp.llama_supports_gpu_offload() else 0


@PREFLIGHT.register("llamacpp")
def check(config: ModelConfig) -> None:
    """llama-cpp-python is installed, the GGUF file is there, and a GPU device is one this build uses."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(
            f"model {config.name!r}: backend 'llamacpp' needs llama-cpp-python: "
            "pip install 'evalsuite[llamacpp]' (it builds llama.cpp from source)"
        )
    source = sources.gguf_source(config)
    if source is not None and not source.is_file():
        raise ConfigError(f"model {config.name!r}: GGUF file {source} does not exist")
    if config.device.startswith("cuda") or config.device == "mps":
        import llama_cpp

        if not llama_cpp.llama_supports_gpu_offload():
            raise ConfigError(
                f"model {config.name!r} asks for device {config.device!r}, but this llama-cpp-python "
                "build runs on CPU only: use device: cpu, or install a build with GPU support "
                '(CMAKE_ARGS="-DGGML_CUDA=on" pip install llama-cpp-python)'
            )


@BACKENDS.register("llamacpp")
def load(config: ModelConfig, context: LoadContext) -> LlamaCppBackend:
    import llama_cpp

    path = weights_file(config, context)
    settings = settings_of(config)
    context.progress(f"loading {config.name}")
    try:
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=config.max_length or 0,  # 0: the length the model was trained for
            n_batch=settings.batch_tokens,
            n_ubatch=settings.batch_tokens,
            n_threads=threads_of(config),
            n_threads_batch=threads_of(config),
            n_gpu_layers=gpu_layers(config),
            seed=context.seed,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as error:
        raise BackendError(f"model {config.name!r}: llama.cpp cannot load {path}: {error}") from error
    return LlamaCppBackend(config, llama, describe_model(config, llama, path, context), context.seed)


def describe_model(config: ModelConfig, llama: Any, path: Path, context: LoadContext) -> ModelInfo:
    import llama_cpp

    metadata: dict[str, str] = dict(llama.metadata)
    model_type = metadata.get("general.architecture", "unknown")
    experts, top_k = (metadata.get(f"{model_type}.{key}") for key in MOE_KEYS)
    architecture: Architecture = "moe" if experts and top_k else "dense"
    if model_type in ("mamba", "mamba2", "rwkv6", "rwkv7"):
        architecture = "ssm"
    facts = gguf.describe_file(path)
    total = int(llama._model.n_params())
    active = total
    if architecture == "moe" and experts and top_k:
        expert_weights = sum(t.n_elements for t in _tensors(path) if "_exps." in t.name)
        active = total - expert_weights + expert_weights * int(top_k) // int(experts)
    level = config.quantization.removeprefix("gguf-") if config.quantization != "none" else "as stored"
    return ModelInfo(
        architecture=architecture,
        model_type=model_type,
        parameters=total,
        active_parameters=active,
        dtype=facts.file_type,
        quantization=config.quantization,
        weight_memory_bytes=int(llama._model.size()),
        fingerprint=identity(config, context),
        device="cuda" if gpu_layers(config) else "cpu",
        max_length=min(config.max_length or int(llama.n_ctx()), int(llama.n_ctx())),
        num_experts=int(experts) if architecture == "moe" and experts else None,
        experts_per_token=int(top_k) if architecture == "moe" and top_k else None,
        weight_format=f"GGUF {facts.file_type} ({level})",
        bits_per_weight=facts.bits_per_weight,
        group_size=facts.group_size,
        kernel=f"llama.cpp (llama-cpp-python {llama_cpp.__version__})",
    )


def _tensors(path: Path) -> list[Any]:
    from gguf import GGUFReader

    return list(GGUFReader(path).tensors)


@IDENTITIES.register("llamacpp")
def identity(config: ModelConfig, context: LoadContext) -> str:
    """The source file's sha256 (remembered by size and time), the level, llama.cpp's version and the
    settings that change answers; known without loading, so a fully cached rerun never loads llama.cpp."""
    source = sources.gguf_source(config)
    assert source is not None
    parts = {
        "backend": "llamacpp",
        "file": gguf.source_digest(source, context.store),
        "quantization": config.quantization,
        "llama_cpp": sources.version("llama-cpp-python"),
        "device": "cpu" if config.device == "cpu" else config.device,
        "max_length": config.max_length,
        "batch_tokens": settings_of(config).batch_tokens,
        "add_bos_token": config.add_bos_token,
        "generation": config.generation.model_dump(mode="json"),
        "scoring": SCORING_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
