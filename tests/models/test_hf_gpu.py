"""The hf backend on CUDA: bf16, bitsandbytes 4-bit and a tiny MoE. Skipped where there is no GPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lm_eval.api.instance import Instance

from tests.models.test_hf import PAIRS, ll_requests, load

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_cuda_is_close_to_float32_on_cpu(
    dtype: str, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    cpu = load(tiny_model("llama"), tmp_path).loglikelihood(ll_requests(), disable_tqdm=True)
    gpu_backend = load(tiny_model("llama"), tmp_path, device="cuda", dtype=dtype)
    assert gpu_backend.describe().device.startswith("cuda") and gpu_backend.describe().dtype == dtype
    gpu = gpu_backend.loglikelihood(ll_requests(), disable_tqdm=True)
    for (a, _), (b, _) in zip(cpu, gpu, strict=True):
        assert b == pytest.approx(a, abs=0.05)
    telemetry = gpu_backend.telemetry()
    assert telemetry.memory_kind == "cuda_max_allocated" and telemetry.peak_memory_bytes > 0


def test_bitsandbytes_nf4_on_cuda(tiny_model: Callable[[str], Path], tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")  # its CUDA wheel is too large to travel to the GPU machine
    backend = load(tiny_model("llama"), tmp_path, device="cuda", dtype="bfloat16", quantization="bnb-nf4")
    scores = backend.loglikelihood(ll_requests(), disable_tqdm=True)
    assert len(scores) == len(PAIRS) and all(s < 0 for s, _ in scores)
    (text,) = backend.generate_until([Instance("generate_until", {}, ("Once", {"max_gen_toks": 4}), 0)])
    assert isinstance(text, str)


def test_moe_routing_on_cuda(tiny_model: Callable[[str], Path], tmp_path: Path) -> None:
    backend = load(tiny_model("mixtral"), tmp_path, device="cuda", dtype="bfloat16")
    backend.loglikelihood(ll_requests(), disable_tqdm=True)
    routing = backend.telemetry().routing
    assert routing is not None and routing.tokens > 0
