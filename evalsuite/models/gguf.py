"""GGUF files: llama.cpp's quantization levels, made once and cached, and what a file holds.

``quantization: gguf-<level>`` on a ``llamacpp`` model means "the GGUF file this model names, requantized
by llama.cpp's own quantizer (``llama_model_quantize``, the code behind ``llama-quantize``) to <level>".
The quantizer dequantizes every tensor to float32 and quantizes it again, so requantizing a Q4_1 file to
Q8_0 gives the same file as quantizing that Q4_1 file's float32 dequantization (``gguf-f32``): a ladder
made from one source is one model at several precisions. The result is written once to
``<cache>/gguf/<sha256 of the source>-<level>.gguf`` (staged, given the umask's mode, renamed into place)
and reused by every later run.

k-quants need rows whose length is a multiple of 256; llama.cpp quantizes other tensors with a fallback
type (Q4_K to Q5_0, Q6_K to Q8_0, ...). :func:`describe_file` reports the types a file really holds.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from evalsuite.errors import BackendError
from evalsuite.files import file_mode
from evalsuite.logs import quiet_logger
from evalsuite.store import Store

# llama.cpp ftype names for the levels config.GGUF_LEVELS lists
FTYPE_NAMES = {"f32": "LLAMA_FTYPE_ALL_F32"}


def ftype_of(level: str) -> int:
    """llama.cpp's ``llama_ftype`` value for a level (``q4_k_m`` -> ``LLAMA_FTYPE_MOSTLY_Q4_K_M``)."""
    import llama_cpp

    name = FTYPE_NAMES.get(level, f"LLAMA_FTYPE_MOSTLY_{level.upper()}")
    value = getattr(llama_cpp, name, None)
    if not isinstance(value, int):
        raise BackendError(f"this llama.cpp ({llama_cpp.__version__}) has no quantization level {level!r}")
    return value


def quantized_file(source: Path, level: str, digest: str, cache_dir: Path, threads: int | None) -> Path:
    """``source`` requantized to ``level`` by llama.cpp, made once into the cache; ``digest`` is the
    source's sha256."""
    target = cache_dir / "gguf" / f"{digest[:32]}-{level}.gguf"
    if target.is_file():
        return target
    import llama_cpp

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".quantize-", suffix=".gguf", dir=target.parent)
    os.close(handle)
    staging = Path(name)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_of(level)
    params.allow_requantize = True  # the source may itself be quantized: dequantized first, as above
    params.nthread = threads or 0  # 0: every core
    try:
        with quiet_logger("llama-cpp-python"):  # it routes llama.cpp's progress lines there
            status = llama_cpp.llama_model_quantize(
                str(source).encode(), str(staging).encode(), ctypes.byref(params)
            )
        if status != 0:
            raise BackendError(f"llama.cpp could not quantize {source.name} to {level} (status {status})")
        staging.chmod(file_mode())
        staging.rename(target)
    finally:
        staging.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class GGUFFacts:
    """What a GGUF file holds: its weight format as the report's models table names it."""

    file_type: str  # the dominant tensor type by weights, e.g. "Q4_K", "Q8_0", "F32"
    types: dict[str, int]  # tensor type -> weights stored in it
    bits_per_weight: float  # over every tensor: bytes * 8 / weights
    group_size: int | None  # the dominant type's block size (None for float types)
    file_bytes: int
    parameters: int


def describe_file(path: Path) -> GGUFFacts:
    """Read a GGUF file's tensor types (memory-mapped: only the headers are touched)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader

    reader = GGUFReader(path)
    weights: Counter[str] = Counter()
    stored = 0
    for tensor in reader.tensors:
        weights[tensor.tensor_type.name] += int(tensor.n_elements)
        stored += int(tensor.n_bytes)
    total = sum(weights.values())
    dominant = weights.most_common(1)[0][0] if weights else "unknown"
    block = GGML_QUANT_SIZES.get(GGMLQuantizationType[dominant], (1, 0))[0] if weights else 1
    return GGUFFacts(
        file_type=dominant,
        types=dict(weights.most_common()),
        bits_per_weight=round(stored * 8 / total, 3) if total else 0.0,
        group_size=block if block > 1 else None,
        file_bytes=path.stat().st_size,
        parameters=total,
    )


def source_digest(path: Path, store: Store | None) -> str:
    from evalsuite.models.sources import file_digest

    return file_digest(path, store)
