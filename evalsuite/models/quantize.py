"""Quantized variants: "this model, quantized like so", and checkpoints that come quantized.

Two kinds of quantizer exist and both are supported:

* load-time (bitsandbytes): transformers quantizes while loading, given a ``quantization_config``;
* post-load (torchao int8 and int4 weight-only, torchao float8, torch dynamic int8): applied to the
  loaded float model.

Where each runs: bitsandbytes and torchao int8 on CPU and CUDA; torchao int4 weight-only on CUDA
(tinygemm, bfloat16) and on CPU through torchao's CPU int4 kernel (``PrototypeInt4WeightOnlyConfig``,
``aten._weight_int4pack_mm_for_cpu``); torchao float8 on CUDA GPUs with float8 tensor cores (compute
capability 8.9+) only; torch dynamic int8 on CPU only (deprecated upstream in favour of torchao).

Pre-quantized checkpoints (compressed-tensors, GPTQ, AWQ, ...) carry ``quantization_config`` in their
``config.json``; :func:`prequantized` reads it, :func:`check_prequantized` finds a missing package or
kernel before anything loads, and :func:`describe_prequantized` names the format for the records.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalsuite.config import ModelConfig, Quantization
from evalsuite.errors import BackendError, ConfigError

BNB_4BIT = {"bnb-nf4": "nf4", "bnb-fp4": "fp4"}


PACKAGES = {"bnb-int8": "bitsandbytes", "bnb-nf4": "bitsandbytes", "bnb-fp4": "bitsandbytes"}
PACKAGES |= {name: "torchao" for name in ("torchao-int8-weight-only", "torchao-int4-weight-only")}
PACKAGES |= {"torchao-float8": "torchao"}
INT4_GROUP_SIZES = (128, 64, 32)  # torchao's int4 group sizes, largest (fewest scales) first
FLOAT8_CAPABILITY = (8, 9)  # Ada / Hopper and newer: float8 tensor cores


def _device_type(config: ModelConfig) -> str:
    """The device a model will run on, as preflight can know it without loading anything."""
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(config.device).type


def check_available(config: ModelConfig) -> None:
    """The quantization's package is installed and has a kernel for the device (found before anything
    loads)."""
    package = PACKAGES.get(config.quantization)
    if package is not None and importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"model {config.name!r}: quantization {config.quantization!r} needs the package {package}, "
            "which is not installed: pip install 'evalsuite[quant]'"
        )
    device = _device_type(config)
    if config.quantization == "torch-int8-dynamic" and config.device not in ("cpu", "auto"):
        raise ConfigError("quantization 'torch-int8-dynamic' runs on CPU only; use device: cpu")
    if config.quantization == "torchao-float8":
        _check_float8(config, device)
    if config.quantization == "torchao-int4-weight-only":
        _check_int4(config, device)


def _check_float8(config: ModelConfig, device: str) -> None:
    where = f"model {config.name!r}: quantization 'torchao-float8'"
    if device != "cuda":
        raise ConfigError(
            f"{where} needs a CUDA GPU with float8 support (compute capability 8.9+: L4, L40, H100, "
            f"H200, B200); this model runs on {device}: use torchao-int8-weight-only there"
        )
    capability = torch.cuda.get_device_capability(
        torch.device(config.device if config.device != "auto" else "cuda")
    )
    if capability < FLOAT8_CAPABILITY:
        raise ConfigError(
            f"{where} needs compute capability 8.9+ (float8 tensor cores); this GPU has "
            f"{capability[0]}.{capability[1]}"
        )


def _check_int4(config: ModelConfig, device: str) -> None:
    where = f"model {config.name!r}: quantization 'torchao-int4-weight-only'"
    if device == "cuda":
        if config.dtype not in ("bfloat16", "auto"):
            raise ConfigError(
                f"{where} runs on CUDA through torchao's tinygemm kernel, which takes bfloat16 only: "
                "use dtype: bfloat16"
            )
        return
    if device == "cpu":
        if _cpu_int4_config() is None:
            raise ConfigError(
                f"{where}: torchao {_version('torchao')} has no CPU int4 kernel here "
                "(PrototypeInt4WeightOnlyConfig, aten._weight_int4pack_mm_for_cpu); it needs CUDA"
            )
        return
    raise ConfigError(f"{where} runs on CUDA and CPU only, not {device}")


def _cpu_int4_config() -> type | None:
    """torchao's CPU int4 weight-only config (torchao 0.18 keeps it under prototype), or None."""
    if not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"):
        return None
    try:
        from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig
    except ImportError:
        return None
    config: type = PrototypeInt4WeightOnlyConfig
    return config


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def load_time_kwargs(config: ModelConfig, compute_dtype: torch.dtype) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments for load-time quantizers; empty for the others."""
    if not config.quantization.startswith("bnb-"):
        return {}
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as error:
        raise BackendError(f"quantization {config.quantization!r} needs bitsandbytes: {error}") from None
    if config.quantization == "bnb-int8":
        bnb = BitsAndBytesConfig(load_in_8bit=True)
    else:
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=BNB_4BIT[config.quantization],
            bnb_4bit_compute_dtype=compute_dtype,
        )
    device = "cpu" if config.device == "cpu" else "auto" if config.device == "auto" else config.device
    return {"quantization_config": bnb, "device_map": device}


def int4_group_size(model: torch.nn.Module) -> int:
    """The largest torchao int4 group size that divides the input width of every linear layer, so that
    none is silently left in float (torchao skips a layer whose width its group size does not divide)."""
    widths = {m.in_features for m in model.modules() if isinstance(m, torch.nn.Linear)}
    for size in INT4_GROUP_SIZES:
        if all(width % size == 0 for width in widths):
            return size
    raise ConfigError(
        f"quantization 'torchao-int4-weight-only': no group size of {INT4_GROUP_SIZES} divides every "
        f"linear layer's input width ({sorted(widths)})"
    )


def apply_post_load(model: torch.nn.Module, method: Quantization, device: torch.device) -> torch.nn.Module:
    """Quantize an already loaded float model in place (torchao) or by replacement (torch dynamic)."""
    if method.startswith("torchao-"):
        try:
            from torchao.quantization import quantize_
        except ImportError as error:
            raise BackendError(f"quantization {method!r} needs torchao: {error}") from None
        quantize_(model, _torchao_config(model, method, device))
        return model
    if method == "torch-int8-dynamic":
        if device.type != "cpu":
            raise ConfigError("quantization 'torch-int8-dynamic' runs on CPU only; use device: cpu")
        quantized: torch.nn.Module = torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8
        )
        return quantized
    return model


def _torchao_config(model: torch.nn.Module, method: Quantization, device: torch.device) -> Any:
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Int4WeightOnlyConfig,
        Int8WeightOnlyConfig,
    )

    if method == "torchao-int8-weight-only":
        return Int8WeightOnlyConfig()
    if method == "torchao-float8":
        if device.type != "cuda":
            raise ConfigError("quantization 'torchao-float8' needs a CUDA GPU with float8 support")
        return Float8DynamicActivationFloat8WeightConfig()
    if method == "torchao-int4-weight-only":
        group = int4_group_size(model)
        if device.type == "cuda":  # tinygemm: bfloat16 weights packed in tiles
            return Int4WeightOnlyConfig(group_size=group, int4_packing_format="tile_packed_to_4d")
        cpu_config = _cpu_int4_config()
        if device.type != "cpu" or cpu_config is None:
            raise ConfigError(f"quantization {method!r} has no kernel for device {device.type} here")
        return cpu_config(group_size=group)
    raise ConfigError(f"unknown torchao quantization {method!r}")


def describe(model: torch.nn.Module, method: Quantization) -> str:
    """What a post-load quantization made of the model, for the records (group size where it is chosen)."""
    if method == "torchao-int4-weight-only":
        return f"{method} g{int4_group_size(model)}"
    return method


# -- checkpoints that come quantized ------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """What transformers needs to load one ``quant_method``: packages (import name, pip name) and the
    device types where a kernel exists."""

    packages: tuple[tuple[str, str], ...]
    devices: tuple[str, ...]
    note: str = ""


# transformers 5's quantizers (transformers/quantizers/quantizer_*.py): compressed-tensors decompresses on
# CPU and runs anywhere; GPTQ and AWQ go through gptqmodel (plus optimum for GPTQ); fp8 is
# transformers' own fine-grained FP8, which needs float8 hardware.
PREQUANTIZED: dict[str, Requirement] = {
    "compressed-tensors": Requirement((("compressed_tensors", "compressed-tensors"),), ("cpu", "cuda")),
    "gptq": Requirement((("optimum", "optimum"), ("gptqmodel", "gptqmodel")), ("cpu", "cuda")),
    "awq": Requirement((("gptqmodel", "gptqmodel"),), ("cpu", "cuda")),
    "bitsandbytes": Requirement((("bitsandbytes", "bitsandbytes"),), ("cpu", "cuda")),
    "torchao": Requirement((("torchao", "torchao"),), ("cpu", "cuda")),
    "hqq": Requirement((("hqq", "hqq"),), ("cpu", "cuda")),
    "quanto": Requirement((("optimum.quanto", "optimum-quanto"),), ("cpu", "cuda")),
    "fp8": Requirement((), ("cuda",), "float8 kernels (CUDA compute capability 8.9+)"),
    "fbgemm_fp8": Requirement((("fbgemm_gpu", "fbgemm-gpu"),), ("cuda",), "fbgemm's CUDA kernels"),
    "eetq": Requirement((("eetq", "eetq"),), ("cuda",), "EETQ's CUDA kernels"),
}


def prequantized(location: str, revision: str | None = None) -> dict[str, Any] | None:
    """A checkpoint's own ``quantization_config`` (from its config.json), or None when it has none or
    its config.json cannot be read without loading (a hub id not in the local cache)."""
    folder = Path(location).expanduser()
    path: Path | None = folder / "config.json" if folder.is_dir() else None
    if path is None and not folder.exists():
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        try:
            cached = try_to_load_from_cache(location, "config.json", revision=revision)
        except ValueError:  # not a hub id either: check_location and transformers say so
            return None
        path = Path(cached) if isinstance(cached, str) else None
    if path is None or not path.is_file():
        return None
    try:
        quantization = json.loads(path.read_text(encoding="utf-8")).get("quantization_config")
    except (OSError, ValueError, AttributeError):
        return None  # transformers says what is wrong when it loads
    return quantization if isinstance(quantization, dict) else None


def check_prequantized(config: ModelConfig, quantization: dict[str, Any]) -> None:
    """The packages and a kernel for a pre-quantized checkpoint, or one ConfigError line saying what is
    missing."""
    method = str(quantization.get("quant_method", "unknown"))
    what = f"model {config.name!r}: the checkpoint is quantized ({describe_prequantized(quantization)})"
    docs = "docs/models.md#pre-quantized-checkpoints-and-torchao"
    if config.quantization != "none":
        raise ConfigError(f"{what}; it cannot be quantized again: remove quantization: {config.quantization}")
    requirement = PREQUANTIZED.get(method)
    if requirement is None:
        return  # transformers knows it or says so when loading
    missing = [pip_name for module, pip_name in requirement.packages if not _importable(module)]
    if missing:
        packages = "the package " + missing[0] if len(missing) == 1 else "the packages " + ", ".join(missing)
        installed = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"{what} and needs {packages}, which {installed} not installed ({docs})")
    device = _device_type(config)
    if device not in requirement.devices:
        kernels = requirement.note or f"kernels for {', '.join(requirement.devices)}"
        raise ConfigError(f"{what}: it needs {kernels}, and has none for device {device}")
    if method == "fp8" and torch.cuda.get_device_capability() < FLOAT8_CAPABILITY:
        raise ConfigError(f"{what}: it needs {requirement.note}")


def decompress(model: torch.nn.Module) -> bool:
    """Decompress a compressed-tensors model now, if it is compressed; True if it was.

    transformers loads compressed-tensors checkpoints compressed and leaves a forward pre-hook on the
    top-level model that decompresses on the first call. evalsuite calls the decoder stack directly
    (the output layer runs only where scores are read), which would skip that hook; and the weight
    memory recorded should be what the model computes with. Decompressed weights hold the quantized
    values in the compute dtype; quantized activations (W8A8) stay quantized per token at run time."""
    if getattr(model, "ct_decompress_hook", None) is None:
        return False
    compressor = getattr(getattr(model, "hf_quantizer", None), "compressor", None)
    if compressor is None:
        raise BackendError("a compressed-tensors model without its compressor: cannot decompress it")
    compressor.decompress_model(model)
    return True


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def describe_prequantized(quantization: dict[str, Any]) -> str:
    """Name a checkpoint's quantization: "compressed-tensors W4A16 g128", "gptq 4-bit g128", ..."""
    method = str(quantization.get("quant_method", "unknown"))
    if method == "compressed-tensors":
        groups = quantization.get("config_groups") or {}
        schemes = [_compressed_scheme(group) for group in groups.values() if isinstance(group, dict)]
        return " + ".join([f"{method} {s}" for s in dict.fromkeys(schemes)] or [method])
    bits = quantization.get("bits") or quantization.get("w_bit")
    group = quantization.get("group_size") or quantization.get("q_group_size")
    parts = [method]
    if bits:
        parts.append(f"{bits}-bit")
    if isinstance(group, int) and group > 0:
        parts.append(f"g{group}")
    if quantization.get("desc_act"):
        parts.append("act-order")
    return " ".join(parts)


def _compressed_scheme(group: dict[str, Any]) -> str:
    """W{bits}A{bits}[-type][ g{group}][ dynamic] for one compressed-tensors config group."""
    weights = group.get("weights") or {}
    inputs = group.get("input_activations") or {}
    weight_bits = weights.get("num_bits", "?")
    if not inputs:
        name = f"W{weight_bits}A16"
        if weights.get("type") == "float":
            name += "-fp"
    else:
        kind = "fp" if inputs.get("type") == "float" else "int"
        name = f"W{weight_bits}A{inputs.get('num_bits', '?')}-{kind}{inputs.get('num_bits', '')}"
    if weights.get("strategy") == "group" and weights.get("group_size"):
        name += f" g{weights['group_size']}"
    if inputs.get("dynamic") is True:
        name += " dynamic"
    return name


def prequantized_group_size(quantization: dict[str, Any]) -> int | None:
    """The weight group size of a pre-quantized checkpoint (its first config group's), if grouped."""
    if quantization.get("quant_method") == "compressed-tensors":
        for group in (quantization.get("config_groups") or {}).values():
            weights = (group or {}).get("weights") or {}
            if weights.get("strategy") == "group" and isinstance(weights.get("group_size"), int):
                return int(weights["group_size"])
        return None
    group = quantization.get("group_size") or quantization.get("q_group_size")
    return group if isinstance(group, int) and group > 0 else None


@dataclass(frozen=True)
class Storage:
    """How the weights are stored and run, for the report's models table (ModelInfo's fields)."""

    weight_format: str | None
    bits_per_weight: float | None  # bytes * 8 / weights, over every tensor
    group_size: int | None
    kernel: str | None


def storage(
    model: torch.nn.Module,
    method: Quantization,
    stored: dict[str, Any] | None,
    location: str,
    parameters: int,
    device: torch.device,
) -> Storage:
    """Format, bits per weight, group size and kernel of a loaded model. A pre-quantized checkpoint's bits
    are its files' (what it takes on disk and in a serving engine); the hf backend runs it decompressed,
    which its kernel says and its weight memory shows."""
    if stored is not None:
        method_name = str(stored.get("quant_method"))
        files = [p for p in Path(location).glob("*.safetensors")] if Path(location).is_dir() else []
        bits = (
            round(sum(p.stat().st_size for p in files) * 8 / parameters, 3) if files and parameters else None
        )
        kernel = f"transformers {_version('transformers')}"
        if method_name == "compressed-tensors":
            dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
            kernel = f"compressed-tensors {_version('compressed-tensors')}, decompressed to {dtype}"
            if any(isinstance(g, dict) and g.get("input_activations") for g in _groups(stored)):
                kernel += ", activations quantized per token"
        return Storage(describe_prequantized(stored), bits, prequantized_group_size(stored), kernel)
    if method == "none":
        return Storage(None, None, None, None)
    bits = round(weight_memory_bytes(model) * 8 / parameters, 3) if parameters else None
    if method.startswith("torchao-"):
        if method == "torchao-int4-weight-only":
            layout = "tinygemm int4 (CUDA)" if device.type == "cuda" else "int4 CPU kernel (Int4OpaqueTensor)"
            return Storage(method, bits, int4_group_size(model), f"torchao {_version('torchao')} {layout}")
        return Storage(method, bits, None, f"torchao {_version('torchao')}")
    if method.startswith("bnb-"):
        return Storage(
            method, bits, 64 if method != "bnb-int8" else None, f"bitsandbytes {_version('bitsandbytes')}"
        )
    return Storage(method, bits, None, f"torch {torch.__version__} dynamic int8")


def _groups(stored: dict[str, Any]) -> list[Any]:
    groups = stored.get("config_groups") or {}
    return list(groups.values()) if isinstance(groups, dict) else []


def weight_memory_bytes(model: torch.nn.Module) -> int:
    """Bytes held by parameters and buffers, counting quantized storage at its real size."""
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        total += _storage_bytes(tensor)
    # torch dynamic int8 keeps packed weights outside parameters()
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            total += weight.numel() * weight.element_size()
            total += bias.numel() * bias.element_size() if bias is not None else 0
    return total


def _storage_bytes(tensor: torch.Tensor) -> int:
    """Size of a tensor's data, looking inside tensor subclasses (torchao) that wrap int8 or packed int4
    storage (two 4-bit values a byte: the packed tensor's own size is the real one)."""
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None and type(tensor) is not torch.nn.Parameter:
        names, _ = flatten()
        return sum(_storage_bytes(getattr(tensor, name)) for name in names)
    data = tensor.data if isinstance(tensor, torch.nn.Parameter) else tensor
    if data is not tensor and hasattr(data, "__tensor_flatten__"):
        return _storage_bytes(data)
    return tensor.numel() * tensor.element_size()
