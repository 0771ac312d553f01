"""Quantized variants: "this model, quantized like so".

Two kinds of quantizer exist and both are supported:

* load-time (bitsandbytes): transformers quantizes while loading, given a ``quantization_config``;
* post-load (torchao int8 weight-only, torch dynamic int8): applied to the loaded float model.

Both run on CPU (bitsandbytes >= 0.45 has CPU kernels) and on CUDA, except torch dynamic int8, which
is CPU-only by construction.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from evalsuite.config import ModelConfig, Quantization
from evalsuite.errors import BackendError, ConfigError

BNB_4BIT = {"bnb-nf4": "nf4", "bnb-fp4": "fp4"}


PACKAGES = {"bnb-int8": "bitsandbytes", "bnb-nf4": "bitsandbytes", "bnb-fp4": "bitsandbytes"}
PACKAGES |= {"torchao-int8-weight-only": "torchao"}


def check_available(config: ModelConfig) -> None:
    """The quantization's package is installed and its device is right (found before anything loads)."""
    package = PACKAGES.get(config.quantization)
    if package is not None and importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"model {config.name!r}: quantization {config.quantization!r} needs the package {package}, "
            "which is not installed: pip install 'evalsuite[quant]'"
        )
    if config.quantization == "torch-int8-dynamic" and config.device not in ("cpu", "auto"):
        raise ConfigError("quantization 'torch-int8-dynamic' runs on CPU only; use device: cpu")


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


def apply_post_load(model: torch.nn.Module, method: Quantization, device: torch.device) -> torch.nn.Module:
    """Quantize an already loaded float model in place (torchao) or by replacement (torch dynamic)."""
    if method == "torchao-int8-weight-only":
        try:
            from torchao.quantization import Int8WeightOnlyConfig, quantize_
        except ImportError as error:
            raise BackendError(f"quantization {method!r} needs torchao: {error}") from None
        quantize_(model, Int8WeightOnlyConfig())
        return model
    if method == "torch-int8-dynamic":
        if device.type != "cpu":
            raise ConfigError("quantization 'torch-int8-dynamic' runs on CPU only; use device: cpu")
        quantized: torch.nn.Module = torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8
        )
        return quantized
    return model


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
    """Size of a tensor's data, looking inside tensor subclasses (torchao) that wrap int8 storage."""
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None and type(tensor) is not torch.nn.Parameter:
        names, _ = flatten()
        return sum(_storage_bytes(getattr(tensor, name)) for name in names)
    data = tensor.data if isinstance(tensor, torch.nn.Parameter) else tensor
    if data is not tensor and hasattr(data, "__tensor_flatten__"):
        return _storage_bytes(data)
    return tensor.numel() * tensor.element_size()
