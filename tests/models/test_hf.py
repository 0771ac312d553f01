"""The hf backend on tiny random-init dense, MoE and SSM models, and on quantized variants."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from lm_eval.api.instance import Instance

from evalsuite.config import ModelConfig, Quantization
from evalsuite.errors import BackendError, ConfigError
from evalsuite.models import BACKENDS, LoadContext, hf, llamacpp
from evalsuite.models.base import TokenDistributions
from evalsuite.models.hf import HFBackend

PAIRS = [
    ("Once upon a time", " there was a little girl"),
    ("The cat", " sat on the mat."),
    ("Lily liked to play", " outside"),
    ("A", " very long continuation that has many more tokens than the others in this batch"),
    ("She said ", "hello"),  # trailing space moves to the continuation, as in lm-eval
]
TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " * 4


def load(path: Path, tmp_path: Path, **settings: object) -> HFBackend:
    config = ModelConfig.model_validate({"name": "m", "path": str(path), **settings})
    backend = BACKENDS.get("hf")(config, LoadContext(tmp_path, seed=0))
    assert isinstance(backend, HFBackend)
    return backend


def ll_requests() -> list[Instance]:
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(PAIRS)]


def generation_requests(max_tokens: int = 6) -> list[Instance]:
    contexts = ["Once upon a time", "The dog ran to the", "Lily"]
    settings = {"until": ["\n"], "max_gen_toks": max_tokens, "do_sample": False}
    return [Instance("generate_until", {}, (c, dict(settings)), i) for i, c in enumerate(contexts)]


@pytest.mark.parametrize(
    ("kind", "architecture"),
    [
        ("llama", "dense"),
        ("mixtral", "moe"),
        ("qwen2_moe", "moe"),
        ("olmoe", "moe"),
        ("mamba", "ssm"),
        ("mamba2", "ssm"),
    ],
)
def test_every_architecture_answers_all_three_request_types(
    kind: str, architecture: str, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    backend = load(tiny_model(kind), tmp_path, batch_size=2)
    info = backend.describe()
    assert info.architecture == architecture
    assert info.parameters > 0 and info.weight_memory_bytes > 0 and len(info.fingerprint) == 32
    scores = backend.loglikelihood(ll_requests(), disable_tqdm=True)
    assert len(scores) == len(PAIRS) and all(s < 0 and math.isfinite(s) for s, _ in scores)
    (rolling,) = backend.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (TEXT,), 0)])
    assert rolling < 0 and math.isfinite(rolling)
    texts = backend.generate_until(generation_requests())
    assert len(texts) == 3 and all(isinstance(t, str) and "\n" not in t for t in texts)
    telemetry = backend.telemetry()
    assert telemetry.scored_tokens > 0 and telemetry.tokens_per_second > 0
    assert telemetry.generated_tokens > 0 and telemetry.peak_memory_bytes > 0


@pytest.mark.parametrize("kind", ["llama", "mixtral", "mamba", "mamba2"])
def test_batching_and_padding_do_not_change_scores(
    kind: str, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    one = load(tiny_model(kind), tmp_path, batch_size=1).loglikelihood(ll_requests(), disable_tqdm=True)
    many = load(tiny_model(kind), tmp_path, batch_size=5).loglikelihood(ll_requests(), disable_tqdm=True)
    for (a, greedy_a), (b, greedy_b) in zip(one, many, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
        assert greedy_a == greedy_b


def test_batched_generation_equals_one_at_a_time(tiny_model: Callable[[str], Path], tmp_path: Path) -> None:
    single = load(tiny_model("llama"), tmp_path, batch_size=1).generate_until(generation_requests(8))
    batched = load(tiny_model("llama"), tmp_path, batch_size=3).generate_until(generation_requests(8))
    assert batched == single


def test_rolling_loglikelihood_scores_every_token_once(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    request = [Instance("loglikelihood_rolling", {}, (TEXT,), 0)]
    wide = load(tiny_model("llama"), tmp_path)  # 512 tokens: one window
    tokens = wide.tok_encode(TEXT)
    assert 16 < len(tokens) < 512
    ((one_pass, _),) = wide._loglikelihood_tokens([(None, [wide.prefix_token_id], tokens)])
    (rolling,) = wide.loglikelihood_rolling(request)
    assert rolling == pytest.approx(one_pass, abs=1e-4)
    narrow = load(tiny_model("llama"), tmp_path, max_length=16)  # several disjoint windows
    (windowed,) = narrow.loglikelihood_rolling(request)
    assert math.isfinite(windowed) and windowed != pytest.approx(one_pass, abs=1e-3)


def test_moe_reports_active_parameters_and_routing(tiny_model: Callable[[str], Path], tmp_path: Path) -> None:
    backend = load(tiny_model("mixtral"), tmp_path, batch_size=3)
    info = backend.describe()
    assert info.num_experts == 4 and info.experts_per_token == 2
    assert info.active_parameters < info.parameters
    backend.loglikelihood(ll_requests(), disable_tqdm=True)
    routing = backend.telemetry().routing
    assert routing is not None
    assert len(routing.expert_load) == 2  # layers
    for row in routing.expert_load:
        assert len(row) == 4 and sum(row) == pytest.approx(1.0, abs=1e-5)
    assert all(0 < h <= math.log(4) + 1e-6 for h in routing.routing_entropy)
    assert all(0 < h <= math.log(4) + 1e-6 for h in routing.load_entropy)
    # only real tokens are routed: right padding of the shorter rows is excluded
    assert routing.tokens == backend.telemetry().scored_tokens


def test_token_statistics_are_those_of_the_models_own_forward_pass(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    """Min-K%++'s inputs against log-softmax of the model's logits for each text fed alone, in float64,
    with sigma written the authors' way (E[(log p)^2] - mu^2): two texts of different lengths share a
    right-padded batch, and ``max_tokens`` cuts the longer one without changing the rows it keeps."""
    backend = load(tiny_model("llama"), tmp_path, batch_size=2)
    assert isinstance(backend, TokenDistributions)
    texts, max_tokens = [TEXT, "The cat sat."], 20
    got = backend.token_statistics(texts, max_tokens)
    for text, statistics in zip(texts, got, strict=True):
        ids = backend.tok_encode(text)[:max_tokens]
        with torch.inference_mode():
            logits = backend.model(torch.tensor([ids])).logits[0, :-1].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        probs = logprobs.exp()
        chosen = logprobs.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
        mu = (probs * logprobs).sum(-1)
        sigma = ((probs * logprobs.square()).sum(-1) - mu.square()).sqrt()
        assert statistics.shape == (len(ids) - 1, 3) and statistics.dtype == np.float64
        np.testing.assert_allclose(statistics, torch.stack([chosen, mu, sigma], dim=-1).numpy(), atol=1e-4)
    assert got[0].shape == (max_tokens - 1, 3)  # TEXT is longer: cut
    assert 2 < got[1].shape[0] < got[0].shape[0]  # the short text: padded in the batch
    (longer,) = backend.token_statistics(texts[:1], 2 * max_tokens)
    assert longer.shape == (2 * max_tokens - 1, 3)
    np.testing.assert_allclose(longer[: max_tokens - 1], got[0], atol=1e-5)
    (one_token,) = backend.token_statistics([TEXT], 1)
    assert one_token.shape == (0, 3)


def test_token_statistics_survive_masked_tokens_and_flat_distributions() -> None:
    """Both backends' reductions on rows a model can give: a vocabulary part masked to -inf (no NaN from
    0 * -inf), a nearly flat distribution (sigma 0.001, where E[(log p)^2] - mu^2 in float32 comes out
    negative) and a peaked one; against the same statistics in float64."""
    rng = np.random.default_rng(0)
    logits = np.stack([rng.normal(size=4096), 1e-3 * rng.normal(size=4096), 30.0 * rng.normal(size=4096)])
    logits[0, 1000:] = -np.inf
    exact = logits - logits.max(axis=1, keepdims=True)
    exact -= np.log(np.exp(exact).sum(axis=1, keepdims=True))
    probs, finite = np.exp(exact), np.where(np.isfinite(exact), exact, 0.0)
    mu = (probs * finite).sum(axis=1)
    sigma = np.sqrt((probs * np.square(finite - mu[:, None])).sum(axis=1))
    targets = np.array([3, 5, int(exact[2].argmax())])
    expected = np.stack([exact[np.arange(3), targets], mu, sigma], axis=1)
    rows = exact.astype(np.float32)
    from_torch = hf.logprob_statistics(torch.from_numpy(rows), torch.from_numpy(targets))
    from_numpy = llamacpp.logprob_statistics(rows, targets)
    for got in (from_torch, from_numpy):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "quantization",
    [
        "torch-int8-dynamic",
        "torchao-int8-weight-only",
        "torchao-int4-weight-only",
        "bnb-int8",
        "bnb-nf4",
        "bnb-fp4",
    ],
)
def test_quantized_variants_are_smaller_and_close(
    quantization: Quantization, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    base = load(tiny_model("llama"), tmp_path)
    variant = load(tiny_model("llama"), tmp_path, quantization=quantization)
    # torchao int4 names the group size it chose: 64, the largest of 128/64/32 dividing the widths 64 and 128
    named = "torchao-int4-weight-only g64" if quantization == "torchao-int4-weight-only" else quantization
    assert variant.describe().quantization == named
    assert variant.describe().weight_format == quantization
    assert variant.describe().bits_per_weight is not None and variant.describe().bits_per_weight < 32
    if quantization == "torchao-int4-weight-only":
        assert variant.describe().group_size == 64
        assert "int4 CPU kernel" in str(variant.describe().kernel)
    assert variant.describe().weight_memory_bytes < base.describe().weight_memory_bytes
    assert variant.describe().parameters == base.describe().parameters
    assert variant.describe().fingerprint != base.describe().fingerprint
    tolerance = 0.5 if "4" in quantization else 0.1
    for (a, _), (b, _) in zip(
        base.loglikelihood(ll_requests(), disable_tqdm=True),
        variant.loglikelihood(ll_requests(), disable_tqdm=True),
        strict=True,
    ):
        assert b == pytest.approx(a, abs=tolerance)


def test_real_checkpoint_generates_the_known_story(stories: Path, tmp_path: Path) -> None:
    backend = load(stories, tmp_path)
    settings = {"until": ["."], "max_gen_toks": 40}
    (text,) = backend.generate_until([Instance("generate_until", {}, ("Once upon a time", settings), 0)])
    assert text == ", there was a little girl named Lily"


def test_unloadable_model_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BackendError, match="cannot load"):
        load(tmp_path, tmp_path)


def test_cuda_request_without_cuda_is_a_clear_error(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BackendError, match=r"asks for device 'cuda', but torch .* sees no CUDA device"):
        load(tiny_model("llama"), tmp_path, device="cuda")


def test_dynamic_int8_refuses_gpu(tiny_model: Callable[[str], Path], tmp_path: Path) -> None:
    import torch

    from evalsuite.models.quantize import apply_post_load

    with pytest.raises(ConfigError, match="CPU only"):
        apply_post_load(torch.nn.Linear(2, 2), "torch-int8-dynamic", torch.device("cuda"))


def test_int4_weights_are_stored_two_per_byte(tmp_path: Path) -> None:
    """A 128 x 256 linear layer in torchao int4 with groups of 128: 128 * 256 / 2 bytes of packed weights
    and, per group and output row, a float32 scale and zero point (2 groups x 128 rows x 2 x 4 bytes)."""
    import torch

    from evalsuite.models.quantize import apply_post_load, weight_memory_bytes

    model = torch.nn.Sequential(torch.nn.Linear(256, 128, bias=False))
    assert weight_memory_bytes(model) == 128 * 256 * 4
    apply_post_load(model, "torchao-int4-weight-only", torch.device("cpu"))
    assert weight_memory_bytes(model) == 128 * 256 // 2 + 2 * 128 * 2 * 4


@pytest.mark.parametrize(
    ("widths", "group"), [((576, 1536), 64), ((256, 512), 128), ((96, 64), 32), ((64, 128), 64)]
)
def test_int4_group_size_divides_every_layer(widths: tuple[int, int], group: int) -> None:
    import torch

    from evalsuite.models.quantize import int4_group_size

    model = torch.nn.Sequential(torch.nn.Linear(widths[0], 8), torch.nn.Linear(widths[1], 8))
    assert int4_group_size(model) == group


def test_int4_without_a_group_size_that_fits_is_a_config_error() -> None:
    import torch

    from evalsuite.models.quantize import int4_group_size

    with pytest.raises(ConfigError, match=r"no group size of \(128, 64, 32\) divides .*\[100\]"):
        int4_group_size(torch.nn.Sequential(torch.nn.Linear(100, 8)))


def test_float8_on_cpu_is_refused_before_loading(tmp_path: Path) -> None:
    from evalsuite.models.hf import preflight

    config = ModelConfig.model_validate(
        {"name": "m", "path": str(tmp_path / "missing"), "quantization": "torchao-float8"}
    )
    # the folder does not exist either: the quantization is checked first, and nothing is loaded
    with pytest.raises(ConfigError, match=r"'torchao-float8' needs a CUDA GPU with float8 support"):
        preflight(config)


def test_int4_on_cuda_needs_bfloat16(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    from evalsuite.models.quantize import check_available

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    config = ModelConfig.model_validate(
        {"name": "m", "path": str(tmp_path), "quantization": "torchao-int4-weight-only", "device": "cuda"}
    )
    with pytest.raises(ConfigError, match="tinygemm kernel, which takes bfloat16 only"):
        check_available(config)
    check_available(config.model_copy(update={"dtype": "bfloat16"}))


def test_int4_on_cpu_without_torchaos_cpu_kernel_needs_cuda(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from evalsuite.models import quantize

    monkeypatch.setattr(quantize, "_cpu_int4_config", lambda: None)
    config = ModelConfig.model_validate(
        {"name": "m", "path": str(tmp_path), "quantization": "torchao-int4-weight-only"}
    )
    with pytest.raises(ConfigError, match=r"has no CPU int4 kernel here .* it needs CUDA"):
        quantize.check_available(config)


@pytest.mark.gpu
@pytest.mark.parametrize("quantization", ["torchao-int4-weight-only", "torchao-float8"])
def test_torchao_gpu_quantizers_are_smaller_and_close(
    quantization: Quantization, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    import torch

    if quantization == "torchao-float8" and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("float8 needs compute capability 8.9+")
    settings = {"device": "cuda", "dtype": "bfloat16"}
    base = load(tiny_model("llama-wide"), tmp_path, **settings)
    variant = load(tiny_model("llama-wide"), tmp_path, quantization=quantization, **settings)
    assert variant.describe().weight_memory_bytes < base.describe().weight_memory_bytes
    # Per continuation token. Measured on an H200 (2026-12-04): at most 0.10 (int4, groups of 64) and
    # 0.03 (float8) nats per token on this model; the bounds leave twice that.
    tolerance = 0.2 if "int4" in quantization else 0.06
    for pair, (a, _), (b, _) in zip(
        PAIRS,
        base.loglikelihood(ll_requests(), disable_tqdm=True),
        variant.loglikelihood(ll_requests(), disable_tqdm=True),
        strict=True,
    ):
        tokens = len(variant._encode_pair(*pair)[1])
        assert abs(b - a) / tokens <= tolerance, (pair, a, b, tokens)
