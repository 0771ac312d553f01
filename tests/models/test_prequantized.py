"""Pre-quantized checkpoints through backend hf: compressed-tensors checkpoints made by llm-compressor
(tests/models/quantized_fixtures.py, built by ``tox -e fixtures``) load, score and stay close to their
base; checkpoints whose package or kernel is missing are refused in one line before anything loads."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from lm_eval.api.instance import Instance

from evalsuite.cli import main
from evalsuite.config import ModelConfig
from evalsuite.errors import ConfigError
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.models.base import IDENTITIES
from evalsuite.models.hf import HFBackend, preflight
from evalsuite.models.quantize import describe_prequantized
from tests.models import quantized_fixtures

# resolved at import, before conftest's isolated_answer_cache points EVALSUITE_CACHE_DIR at a temporary one
FIXTURES = quantized_fixtures.folder()
REQUIRED = os.environ.get("EVALSUITE_REQUIRE_FIXTURES") == "1"  # CI: a missing set fails, never skips
NAMES = {
    "w4a16": "compressed-tensors W4A16 g{group}",
    "w8a8-int8": "compressed-tensors W8A8-int8 dynamic",
    "fp8-dynamic": "compressed-tensors W8A8-fp8 dynamic",
}
PAIRS = [
    ("Once upon a time", " there was a little girl"),
    ("The cat", " sat on the mat."),
    ("Lily liked to play", " outside"),
]


@pytest.fixture(scope="module")
def fixtures() -> Path:
    if not (FIXTURES / "manifest.json").is_file():
        message = f"no pre-quantized fixtures at {FIXTURES}: run `tox -e fixtures` first"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return FIXTURES


def load(path: Path, tmp_path: Path, **settings: object) -> HFBackend:
    config = ModelConfig.model_validate({"name": "m", "path": str(path), **settings})
    preflight(config)
    backend = BACKENDS.get("hf")(config, LoadContext(tmp_path, seed=0))
    assert isinstance(backend, HFBackend)
    return backend


def identity(path: Path, tmp_path: Path) -> str:
    config = ModelConfig.model_validate({"name": "m", "path": str(path)})
    return IDENTITIES.get("hf")(config, LoadContext(tmp_path, seed=0))


def ll_requests() -> list[Instance]:
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(PAIRS)]


# -- the checkpoints llm-compressor made -----------------------------------------------------------------


@pytest.mark.parametrize("scheme", quantized_fixtures.SCHEMES)
def test_compressed_tensors_checkpoint_loads_scores_and_names_itself(
    scheme: str, fixtures: Path, tmp_path: Path
) -> None:
    base = load(fixtures / "tiny" / "base", tmp_path)
    variant = load(fixtures / "tiny" / scheme, tmp_path)
    info = variant.describe()
    assert info.quantization == NAMES[scheme].format(group=quantized_fixtures.GROUP_SIZE["tiny"])
    # the weights it stands for, not its packed int32 words or its scales
    assert info.parameters == base.describe().parameters
    assert info.weight_format == info.quantization
    assert info.group_size == (quantized_fixtures.GROUP_SIZE["tiny"] if scheme == "w4a16" else None)
    assert info.kernel is not None and "decompressed to float32" in info.kernel
    assert ("activations quantized per token" in info.kernel) == (scheme != "w4a16")
    # the checkpoint's bits per weight: the linear layers' weights at 4 or 8 bits, embeddings, head and
    # norms in float32, plus scales and the file header (under half a bit a weight here)
    embeddings, norms = 2 * 512 * 256, 5 * 256
    linear = 2 * (256 * 256 + 2 * 256 * 128 + 256 * 256 + 3 * 256 * 512)
    bits = 4 if scheme == "w4a16" else 8
    expected = (32 * (embeddings + norms) + bits * linear) / (embeddings + norms + linear)
    assert info.bits_per_weight is not None
    assert expected < info.bits_per_weight < expected + 0.5
    assert info.fingerprint != base.describe().fingerprint
    # summed over a few tokens of a random-init model; fp8 (e4m3: 3 mantissa bits, a relative step of 1/16)
    # rounds activations more coarsely than per-token int8 (1/127 of each token's largest value)
    tolerance = {"w4a16": 0.5, "fp8-dynamic": 0.3, "w8a8-int8": 0.1}[scheme]
    for (a, _), (b, _) in zip(
        base.loglikelihood(ll_requests(), disable_tqdm=True),
        variant.loglikelihood(ll_requests(), disable_tqdm=True),
        strict=True,
    ):
        assert math.isfinite(b) and b < 0
        assert b == pytest.approx(a, abs=tolerance)


@pytest.mark.gpu
@pytest.mark.parametrize("scheme", quantized_fixtures.SCHEMES)
def test_compressed_tensors_checkpoint_runs_on_cuda(scheme: str, fixtures: Path, tmp_path: Path) -> None:
    settings = {"device": "cuda", "dtype": "bfloat16"}
    base = load(fixtures / "tiny" / "base", tmp_path, **settings)
    variant = load(fixtures / "tiny" / scheme, tmp_path, **settings)
    assert variant.describe().device.startswith("cuda")
    assert variant.describe().kernel is not None and "decompressed to bfloat16" in variant.describe().kernel
    for (a, _), (b, _) in zip(
        base.loglikelihood(ll_requests(), disable_tqdm=True),
        variant.loglikelihood(ll_requests(), disable_tqdm=True),
        strict=True,
    ):
        assert b == pytest.approx(a, abs=0.5)


def test_weight_memory_is_what_the_model_computes_with(fixtures: Path, tmp_path: Path) -> None:
    """transformers runs compressed-tensors checkpoints decompressed (quantized values in float32): the
    record says so instead of claiming the checkpoint's 4 or 8 bits. Above the base by the scales only:
    per group of 128 (W4A16) or per output channel (8-bit), one float32 each."""
    memory = {
        scheme: load(fixtures / "tiny" / scheme, tmp_path).describe().weight_memory_bytes
        for scheme in ("base", *quantized_fixtures.SCHEMES)
    }
    # the tiny model's linear layers: 2 layers x (4 attention projections of 256 x {256, 128, 128, 256}
    # weights, 3 MLP ones of 256 x 512), i.e. 2 x (768 + 1536) = 4608 output channels in all
    channels = 2 * (256 + 128 + 128 + 256 + 512 + 512 + 256)
    groups = 2 * (256 + 128 + 128 + 256 + 512 + 512) * (256 // 128) + 2 * 256 * (512 // 128)
    assert memory["w8a8-int8"] - memory["base"] == channels * 4
    assert memory["fp8-dynamic"] - memory["base"] == channels * 4
    # W4A16 may also keep each packed weight's original shape (two int64 per linear layer, 14 of them):
    # transformers 5 does, 4.56 keeps some
    assert groups * 4 <= memory["w4a16"] - memory["base"] <= groups * 4 + 14 * 2 * 8


def test_answer_cache_identity_follows_the_checkpoint(fixtures: Path, tmp_path: Path) -> None:
    identities = {
        scheme: identity(fixtures / "tiny" / scheme, tmp_path)
        for scheme in ("base", *quantized_fixtures.SCHEMES)
    }
    assert len(set(identities.values())) == len(identities)


# Per-token KL(base || variant) over the full vocabulary, on text neither calibration nor tuning saw
# (WikiText-2 test; the fixtures were calibrated on its validation split). Measured on SmolLM2-135M with
# the fixture set of constraints-fixtures.txt, at this test's 8 paragraphs x 96 tokens: W4A16 g64 0.30,
# FP8 0.039, W8A8-int8 0.021 nats (docs/models.md has 16 x 128). The bounds leave about 2x room for
# other CPUs' float rounding and are ordered as the formats are: an 8-bit grid is 16 times finer than a
# 4-bit one, so an 8-bit checkpoint must be several times closer to its base than the 4-bit one (KL grows
# with the square of small logit errors), and none may be as far off as a broken load (misread scales or
# packing give KL of several nats).
KL_BOUND = {"w4a16": 0.6, "w8a8-int8": 0.06, "fp8-dynamic": 0.08}
PASSAGES, TOKENS = 8, 96


def _next_token_logprobs(backend: HFBackend, texts: list[str]) -> torch.Tensor:
    return torch.cat(backend._next_token_logprobs(texts, TOKENS))


def test_smollm2_checkpoints_stay_close_to_their_base(fixtures: Path, tmp_path: Path) -> None:
    texts = quantized_fixtures.wikitext_passages("test", PASSAGES)
    base = load(fixtures / "smollm2" / "base", tmp_path)
    reference = _next_token_logprobs(base, texts)
    base.close()
    kl: dict[str, float] = {}
    for scheme in quantized_fixtures.SCHEMES:
        variant = load(fixtures / "smollm2" / scheme, tmp_path)
        assert variant.describe().quantization == NAMES[scheme].format(group=64)
        logprobs = _next_token_logprobs(variant, texts)
        assert logprobs.shape == reference.shape and reference.shape[0] > PASSAGES * TOKENS // 2
        kl[scheme] = float((reference.exp() * (reference - logprobs)).sum(-1).mean())
        variant.close()
    for scheme, bound in KL_BOUND.items():
        assert 0 < kl[scheme] < bound, kl
    assert kl["w8a8-int8"] < kl["w4a16"] / 4 and kl["fp8-dynamic"] < kl["w4a16"] / 4, kl


# -- what cannot load is refused before anything loads ---------------------------------------------------


def write_checkpoint(folder: Path, quantization: dict[str, Any]) -> Path:
    """A checkpoint folder with only a config.json naming its quantization: no weights at all, so any
    attempt to load it would fail differently."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    (folder / "config.json").write_text(
        json.dumps({**config, "quantization_config": quantization}), encoding="utf-8"
    )
    return folder


GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}


@pytest.mark.parametrize(
    ("quantization", "message"),
    [
        (GPTQ, "quantized (gptq 4-bit g128) and needs the packages optimum, gptqmodel, which are not"),
        (AWQ, "quantized (awq 4-bit g128) and needs the package gptqmodel, which is not installed"),
        ({"quant_method": "fp8"}, "quantized (fp8): it needs float8 kernels (CUDA compute capability 8.9+)"),
    ],
)
def test_missing_package_or_kernel_is_one_line_and_exit_2(
    quantization: dict[str, Any], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in ("gptqmodel", "optimum"):
        try:
            __import__(module)
            pytest.skip(f"{module} is installed here")
        except ImportError:
            pass
    checkpoint = write_checkpoint(tmp_path / "ckpt", quantization)
    config = tmp_path / "model.yaml"
    config.write_text(
        f"models:\n  - {{name: q, path: {checkpoint}}}\ntasks:\n  - quickstart_mc\n", encoding="utf-8"
    )
    out, cache = tmp_path / "out", tmp_path / "cache"
    code = main(["run", str(config), "--output-dir", str(out), "--cache-dir", str(cache)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1, captured.err
    assert message in captured.err
    assert not out.exists() or not any(out.iterdir())


def test_missing_compressed_tensors_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from evalsuite.models import quantize

    monkeypatch.setattr(quantize, "_importable", lambda module: module != "compressed_tensors")
    stored = {"quant_method": "compressed-tensors", "config_groups": {}}
    config = ModelConfig.model_validate({"name": "m", "path": str(write_checkpoint(tmp_path, stored))})
    with pytest.raises(ConfigError, match="needs the package compressed-tensors, which is not installed"):
        preflight(config)


def test_a_quantized_checkpoint_is_not_quantized_again(tmp_path: Path) -> None:
    stored = {"quant_method": "compressed-tensors", "config_groups": {}}
    settings = {"name": "m", "path": str(write_checkpoint(tmp_path, stored))}
    config = ModelConfig.model_validate({**settings, "quantization": "torchao-int8-weight-only"})
    with pytest.raises(ConfigError, match="cannot be quantized again: remove quantization"):
        preflight(config)


@pytest.mark.parametrize(
    ("stored", "name"),
    [
        (GPTQ, "gptq 4-bit g128"),
        ({**GPTQ, "desc_act": True, "group_size": -1}, "gptq 4-bit act-order"),
        (AWQ, "awq 4-bit g128"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "bitsandbytes"),
    ],
)
def test_checkpoint_quantization_is_named(stored: dict[str, Any], name: str) -> None:
    assert describe_prequantized(stored) == name


def test_identity_changes_with_the_quantization_config_alone(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    """Same weights, config.json differing only in quantization_config: different answers, different
    cache identity."""
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model("llama"), plain)
    marked = tmp_path / "marked"
    shutil.copytree(plain, marked)
    config = json.loads((marked / "config.json").read_text(encoding="utf-8"))
    config["quantization_config"] = {"quant_method": "compressed-tensors", "config_groups": {}}
    (marked / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert identity(plain, tmp_path) != identity(marked, tmp_path)
    assert identity(plain, tmp_path) == identity(plain, tmp_path)


def test_a_hub_checkpoint_is_read_from_the_local_hub_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A hub id offline: its config.json comes from the hub cache, so a GPTQ model there is refused too."""
    import huggingface_hub.constants

    from evalsuite.models.quantize import prequantized

    repo = tmp_path / "models--org--gptq-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40, encoding="utf-8")
    write_checkpoint(repo / "snapshots" / ("0" * 40), GPTQ)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert prequantized("org/gptq-model") == GPTQ
    assert prequantized("org/not-cached") is None


def test_the_fixture_set_is_keyed_by_the_tools_versions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A new llm-compressor (or compressed-tensors, transformers, torch) makes a new set, never reuses one."""
    pins = quantized_fixtures.CONSTRAINTS.read_text(encoding="utf-8")
    key = quantized_fixtures.key()
    bumped = tmp_path / "constraints-fixtures.txt"
    bumped.write_text(pins.replace("llmcompressor==0.14.0.1", "llmcompressor==0.14.1"), encoding="utf-8")
    monkeypatch.setattr(quantized_fixtures, "CONSTRAINTS", bumped)
    assert quantized_fixtures.pinned_versions()["llmcompressor"] == "0.14.1"
    assert quantized_fixtures.key() != key
    bumped.write_text(pins.replace("llmcompressor==0.14.0.1\n", ""), encoding="utf-8")
    with pytest.raises(RuntimeError, match="pins no version of llmcompressor"):
        quantized_fixtures.key()
