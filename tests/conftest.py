"""Shared fixtures: offline settings, the shared data and model copies, and tiny random-init models."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Tests never reach a hub; set before transformers/datasets are imported anywhere.
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_name] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA_DIR = Path(os.environ.get("EVALSUITE_DATA_DIR", SHARED / "data"))
MODELS_DIR = Path(os.environ.get("EVALSUITE_SHARED_MODELS", SHARED / "models"))
STORIES = MODELS_DIR / "stories260K" / "hf"


@pytest.fixture(scope="session", autouse=True)
def isolated_answer_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runs in tests keep their answers in a cache of this session, not the user's: a test must exercise
    the model, not find its answers from an earlier session. Converted GGUF checkpoints (slow to make)
    are linked in from the user's cache."""
    base = os.environ.get("XDG_CACHE_HOME")
    real = Path(
        os.environ.get("EVALSUITE_CACHE_DIR")
        or (Path(base) if base else Path.home() / ".cache") / "evalsuite"
    )
    (real / "gguf").mkdir(parents=True, exist_ok=True)
    folder = tmp_path_factory.mktemp("evalsuite-cache")
    (folder / "gguf").symlink_to(real / "gguf", target_is_directory=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("EVALSUITE_CACHE_DIR", str(folder))
    yield folder
    patch.undo()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "arc").is_dir():
        pytest.fail(f"shared benchmark data not found at {DATA_DIR}; set EVALSUITE_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def stories() -> Path:
    if not (STORIES / "config.json").is_file():
        pytest.fail(f"stories260K checkpoint not found at {STORIES}; set EVALSUITE_SHARED_MODELS")
    return STORIES


def _tiny_configs() -> dict[str, object]:
    from transformers import (
        LlamaConfig,
        Mamba2Config,
        MambaConfig,
        MixtralConfig,
        OlmoeConfig,
        Qwen2MoeConfig,
    )

    common = {
        "vocab_size": 512,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    attention = {"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}
    return {
        "llama": LlamaConfig(**common, **attention, intermediate_size=128),
        # torchao's CUDA int4 kernel (tinygemm) pads every layer's input width to a multiple of 1024:
        # at 64 wide an int4 model takes 3.4x the memory of bf16, so memory tests need this width.
        "llama-wide": LlamaConfig(**{**common, "hidden_size": 1024}, **attention, intermediate_size=2048),
        "mixtral": MixtralConfig(
            **common, **attention, intermediate_size=96, num_local_experts=4, num_experts_per_tok=2
        ),
        "qwen2_moe": Qwen2MoeConfig(
            **common,
            **attention,
            intermediate_size=96,
            moe_intermediate_size=48,
            shared_expert_intermediate_size=64,
            num_experts=4,
            num_experts_per_tok=2,
        ),
        "olmoe": OlmoeConfig(
            **common, **attention, intermediate_size=48, num_experts=4, num_experts_per_tok=2
        ),
        "mamba": MambaConfig(**common, state_size=8, expand=2, conv_kernel=4),
        "mamba2": Mamba2Config(
            **common,
            state_size=16,
            expand=2,
            head_dim=16,
            num_heads=8,
            n_groups=1,
            conv_kernel=4,
            chunk_size=32,
        ),
    }


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, stories: Path) -> Callable[[str], Path]:
    """Save a tiny random-init model of an architecture (with stories260K's 512-token tokenizer) once."""
    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in made:
            import torch
            from transformers import AutoModelForCausalLM

            folder = tmp_path_factory.mktemp(f"tiny-{kind}")
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(_tiny_configs()[kind])
            model.save_pretrained(folder)
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                shutil.copy(stories / name, folder / name)
            made[kind] = folder
        return made[kind]

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run only where CUDA is present; CI has none and skips them."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
