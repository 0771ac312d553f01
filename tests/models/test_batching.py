"""Continuous batching with shared prefixes (``evalsuite/models/batching.py``), against transformers'
``generate()`` run on each prompt alone and against lm-eval's own ``hf`` model, on stories260K."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from lm_eval.api.instance import Instance

from evalsuite.models import batching, kvcache
from evalsuite.models.batching import Generator, Request, Sampling, sample, shared_prefixes
from tests.models.test_hf import load

STORY = "Once upon a time, there was a little girl named Lily. She"
PROMPTS = [
    STORY + " loved to play",
    STORY + " had a big red ball. One day",
    STORY + " went to the park with her mom and",
    "Tom was a big dog",  # shares nothing
    STORY,
]


def alone(model: Any, tokens: list[int], max_new: int, eos: int = 2) -> list[int]:
    """Greedy tokens from transformers' generate() on the prompt alone, stopping at ``eos``."""
    out = model.generate(
        input_ids=torch.tensor([tokens]),
        attention_mask=torch.ones((1, len(tokens)), dtype=torch.long),
        max_new_tokens=max_new,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=0,
    )
    generated = [int(t) for t in out[0, len(tokens) :]]
    return generated[: generated.index(eos) + 1] if eos in generated else generated


@pytest.fixture(scope="module")
def stories_backend(stories: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load(stories, tmp_path_factory.mktemp("batching"), batch_size=2)


def encoded(backend: Any) -> list[list[int]]:
    return [backend.tok_encode(p) for p in PROMPTS]


@pytest.mark.parametrize("rows", [1, 2, 5])
@pytest.mark.parametrize("share", [True, False])
def test_greedy_tokens_equal_generate_alone(stories_backend: Any, rows: int, share: bool) -> None:
    model, prompts = stories_backend.model, encoded(stories_backend)
    period = stories_backend.tokenizer.convert_tokens_to_ids(".")  # an end token the rows reach
    expected = [alone(model, p, 24, eos=period) for p in prompts]
    assert len({len(e) for e in expected}) > 1  # rows leave the batch at different steps
    generator = Generator(model, stories_backend.tokenizer.decode, {period}, rows=rows, share_prefix=share)
    assert generator.run([Request(p, 24, []) for p in prompts]) == expected


def test_rows_join_and_leave_a_cache_that_keeps_running_out_of_room(
    stories_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one spare column the batch's buffers are copied at almost every step and whenever a longer
    prompt joins rows that have decoded fewer positions than it has: answers stay generate()'s."""
    monkeypatch.setattr(batching, "room", lambda width: 1)
    model, prompts = stories_backend.model, encoded(stories_backend)
    prompts = [prompts[3], *prompts[:3], prompts[4]]  # a short prompt first: later ones are longer
    period = stories_backend.tokenizer.convert_tokens_to_ids(".")
    expected = [alone(model, p, 24, eos=period) for p in prompts]
    generator = Generator(model, stories_backend.tokenizer.decode, {period}, rows=2, share_prefix=False)
    assert generator.run([Request(p, 24, []) for p in prompts]) == expected


def test_a_decode_step_writes_into_the_cache_it_was_given(stories_backend: Any) -> None:
    """Appending a token must not copy the cache (``DynamicCache`` concatenates: a copy of every
    layer's keys and values at every token): every decode step sees keys in the same storage."""
    model, prompts = stories_backend.model, encoded(stories_backend)
    storages: list[int] = []

    def seen(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        cache = kwargs.get(kvcache.cache_argument(model))
        if kwargs["input_ids"].shape[1] == 1 and cache is not None:
            storages.append(cache.layers[0].keys.untyped_storage().data_ptr())

    hook = model.register_forward_pre_hook(seen, with_kwargs=True)
    try:
        Generator(model, stories_backend.tokenizer.decode, set(), rows=5).run(
            [Request(p, 20, []) for p in prompts]
        )
    finally:
        hook.remove()
    assert len(storages) == 19 and len(set(storages)) == 1


def test_rows_stop_at_the_first_token_that_completes_a_stop_string(stories_backend: Any) -> None:
    model, prompts, decode = stories_backend.model, encoded(stories_backend), stories_backend.tokenizer.decode
    stops = [" the", "."]
    expected = []
    for p in prompts:
        tokens = alone(model, p, 40)
        cut = next(k for k in range(1, len(tokens) + 1) if any(s in decode(tokens[:k]) for s in stops))
        expected.append(tokens[:cut])
    assert len({len(e) for e in expected}) > 1  # rows leave the batch at different steps
    got = Generator(model, decode, {2}, rows=2).run([Request(p, 40, stops) for p in prompts])
    assert got == expected


LONGER = STORY + " lived in a small house with her mom, her dad and her dog Max. Every day she"


def test_a_shared_prefix_is_computed_once(stories_backend: Any) -> None:
    ends = (" loved to play", " had a big red ball. One day", " went to the park with her mom and")
    prompts = [stories_backend.tok_encode(LONGER + end) for end in ends]
    common = next(i for i, column in enumerate(zip(*prompts, strict=False)) if len(set(column)) > 1)
    assert (len(prompts) - 1) * common >= kvcache.PASS_COST
    generator = Generator(stories_backend.model, stories_backend.tokenizer.decode, {2}, rows=3)
    generator.run([Request(p, 1, []) for p in prompts])
    assert generator.prefill_tokens == common + sum(len(p) - common for p in prompts)
    unshared = Generator(stories_backend.model, stories_backend.tokenizer.decode, {2}, 3, share_prefix=False)
    unshared.run([Request(p, 1, []) for p in prompts])
    assert unshared.prefill_tokens == sum(len(p) for p in prompts)


def test_waiting_prompts_are_prefilled_together_without_autograd(stories_backend: Any) -> None:
    """One forward pass prefills every prompt admitted at once (not one pass per prompt: on CPU a pass
    costs a read of every weight, and torchao's int8 layers dequantize every weight in every pass), and
    no pass records an autograd graph (which would keep every pass's activations, and torchao's
    dequantized weights, alive until the call ends)."""
    model, prompts = stories_backend.model, encoded(stories_backend)
    passes = []
    hook = model.register_forward_hook(
        lambda module, args, kwargs, out: passes.append(
            (kwargs["input_ids"].shape, out.logits.requires_grad)
        ),
        with_kwargs=True,
    )
    try:
        Generator(model, stories_backend.tokenizer.decode, set(), rows=5, share_prefix=False).run(
            [Request(p, 3, []) for p in prompts]
        )
    finally:
        hook.remove()
    longest = max(map(len, prompts))
    assert passes == [((5, longest), False), ((5, 1), False), ((5, 1), False)]


def test_shared_prefixes_are_the_longest_each_prompt_shares_where_they_save_a_pass() -> None:
    assert kvcache.PASS_COST == 64  # the lengths below are chosen around it
    prompts = [[1] * 40 + [2], [1] * 40 + [3], [1] * 5 + [4], [1] * 40, [5] * 30]
    # three prompts start with forty 1s: computed once, that saves 80 tokens. The fourth prompt is the
    # others' prefix: its last token's logits are its own, so 39 of its 40
    assert shared_prefixes(prompts) == {0: 40, 1: 40, 3: 39}
    assert shared_prefixes([[1] * 40 + [2], [1] * 40 + [3]]) == {}  # saves 40 tokens: not worth a pass
    assert shared_prefixes([[1] * 64 + [2], [1] * 64 + [3]]) == {0: 64, 1: 64}
    # the 52 tokens two prompts share do not pay; the 32 that all three share do
    split = [[1] * 32 + [2] * 20 + [3], [1] * 32 + [2] * 20 + [4], [1] * 32 + [5]]
    assert shared_prefixes(split) == {0: 32, 1: 32, 2: 32}
    assert shared_prefixes([*split, [1] * 32 + [2] * 20 + [6]]) == {0: 52, 1: 52, 3: 52, 2: 32}


def test_generations_match_lm_evals_hf_model(stories: Path, stories_backend: Any) -> None:
    from lm_eval.models.huggingface import HFLM

    settings = {"until": [".", "\n"], "max_gen_toks": 32, "do_sample": False}
    requests = [Instance("generate_until", {}, (p, dict(settings)), i) for i, p in enumerate(PROMPTS)]
    theirs = HFLM(pretrained=str(stories), dtype="float32", batch_size=2, device="cpu")
    expected = theirs.generate_until(requests, disable_tqdm=True)
    assert stories_backend.generate_until(requests) == expected
    assert len(set(expected)) == len(PROMPTS)


def sampled(prompts: list[str]) -> list[Instance]:
    settings = {"until": ["\n"], "max_gen_toks": 20, "do_sample": True, "temperature": 1.0}
    return [Instance("generate_until", {}, (p, dict(settings)), i) for i, p in enumerate(prompts)]


def test_a_sample_does_not_depend_on_its_batch(stories: Path, tmp_path: Path) -> None:
    one = load(stories, tmp_path, batch_size=1).generate_until(sampled(PROMPTS[:1]))
    many = load(stories, tmp_path, batch_size=3).generate_until(sampled(PROMPTS))
    assert many[0] == one[0]
    again = load(stories, tmp_path, batch_size=3).generate_until(sampled(PROMPTS))
    assert again == many  # seeded: a rerun (or a resumed run) draws the same text


def test_repeats_of_a_request_are_distinct_draws(stories: Path, tmp_path: Path) -> None:
    backend = load(stories, tmp_path, batch_size=2)
    first, second = backend.generate_until(sampled([PROMPTS[0], PROMPTS[0]]))
    assert first != second


def test_another_run_seed_draws_other_samples(stories: Path, tmp_path: Path) -> None:
    from evalsuite.config import ModelConfig
    from evalsuite.models import BACKENDS, LoadContext

    config = ModelConfig.model_validate({"name": "m", "path": str(stories)})
    texts = [
        BACKENDS.get("hf")(config, LoadContext(tmp_path, seed=seed)).generate_until(sampled(PROMPTS))
        for seed in (0, 1)
    ]
    assert texts[0] != texts[1]


def counts(draw: Callable[[torch.Generator], int], n: int = 400) -> dict[int, int]:
    generator = torch.Generator().manual_seed(0)
    seen: dict[int, int] = {}
    for _ in range(n):
        token = draw(generator)
        seen[token] = seen.get(token, 0) + 1
    return seen


def test_nucleus_keeps_the_fewest_tokens_that_reach_top_p() -> None:
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    assert set(counts(lambda g: sample(logits, Sampling(1.0, top_p=0.7), g))) == {0, 1}
    assert set(counts(lambda g: sample(logits, Sampling(1.0, top_p=0.5), g))) == {0}
    assert set(counts(lambda g: sample(logits, Sampling(1.0, top_p=0.81), g))) == {0, 1, 2}
    assert set(counts(lambda g: sample(logits, Sampling(1.0), g))) == {0, 1, 2, 3}


def test_top_k_and_temperature() -> None:
    logits = torch.tensor([0.4, 0.3, 0.2, 0.1]).log()
    assert set(counts(lambda g: sample(logits, Sampling(1.0, top_k=2), g))) == {0, 1}
    cold = counts(lambda g: sample(logits, Sampling(0.05), g))
    assert cold.get(0, 0) >= 395  # at temperature 0.05, 0.4 against 0.3 is a 300:1 choice


def test_settings_only_generate_knows_go_through_generate(stories_backend: Any) -> None:
    plain = stories_backend._plan("Once", {"until": ["."], "max_gen_toks": 5, "do_sample": False})
    assert isinstance(plain, Request) and plain.sampling is None and plain.max_new == 5
    assert stories_backend._plan("Once", {"until": ["."], "repetition_penalty": 1.3}) is None
    requests = [
        Instance("generate_until", {}, ("Once upon a time", {"until": ["."], "repetition_penalty": 1.3}), 0)
    ]
    (text,) = stories_backend.generate_until(requests)
    tokens = stories_backend.tok_encode("Once upon a time")
    out = stories_backend.model.generate(
        input_ids=torch.tensor([tokens]),
        max_new_tokens=256,
        do_sample=False,
        repetition_penalty=1.3,
        pad_token_id=0,
    )
    reference = stories_backend.tokenizer.decode(out[0, len(tokens) :], skip_special_tokens=True).split(".")[
        0
    ]
    assert text == reference


def test_sliding_window_models_use_generate(tmp_path: Path) -> None:
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        sliding_window=4,
    )
    assert not kvcache.supports(MistralForCausalLM(config))


def test_dense_and_moe_caches_are_supported(tiny_model: Callable[[str], Path], tmp_path: Path) -> None:
    for kind in ("llama", "mixtral", "olmoe"):
        assert kvcache.supports(load(tiny_model(kind), tmp_path).model), kind
    assert not kvcache.supports(load(tiny_model("mamba"), tmp_path).model)


def test_out_of_memory_on_gpu_halves_the_rows_and_starts_over(
    stories_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [
        Instance("generate_until", {}, (p, {"until": ["."], "max_gen_toks": 8}), i)
        for i, p in enumerate(PROMPTS)
    ]
    expected = stories_backend.generate_until(requests)
    real_run, tried = Generator.run, []

    def run(self: Generator, todo: list[Request]) -> list[list[int]]:
        tried.append(self.rows)
        if self.rows > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_run(self, todo)

    monkeypatch.setattr(Generator, "run", run)
    monkeypatch.setattr(stories_backend, "torch_device", torch.device("cuda"))  # only the back-off reads it
    monkeypatch.setattr(stories_backend, "batch_rows", 4)
    assert stories_backend.generate_until(requests) == expected
    assert tried == [4, 2, 1] and stories_backend.batch_rows == 1
