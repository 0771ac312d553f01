"""How far each quantized SmolLM2-135M is from its float32 base, through backend hf (docs/models.md).

Per-token KL(base || variant) over the full vocabulary at every position of the first ``--tokens`` tokens
of ``--passages`` WikiText-2 test paragraphs (60+ words; the fixtures were calibrated on the validation
split), with the share of positions whose most likely next token changes. Variants: the compressed-tensors
checkpoints llm-compressor made (``tox -e fixtures``; tests/models/quantized_fixtures.py) and evalsuite's
on-the-fly torchao quantizations of the same base.

    OMP_NUM_THREADS=1 taskset -c 1 .tox/tests/bin/python benchmarks/prequantized_kl.py \
        --passages 16 --tokens 128
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalsuite.config import ModelConfig
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.models.hf import HFBackend
from tests.models import quantized_fixtures


def load(path: Path, cache: Path, **settings: object) -> HFBackend:
    config = ModelConfig.model_validate({"name": "m", "path": str(path), **settings})
    backend = BACKENDS.get("hf")(config, LoadContext(cache, seed=0))
    assert isinstance(backend, HFBackend)
    return backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--skip-int4", action="store_true", help="torchao int4 is slow on CPU")
    args = parser.parse_args()
    root = quantized_fixtures.folder()
    if not (root / "manifest.json").is_file():
        raise SystemExit(f"no fixtures at {root}: run tox -e fixtures")
    texts = quantized_fixtures.wikitext_passages("test", args.passages)
    cache = Path(tempfile.mkdtemp(prefix="kl-"))
    smollm2 = root / "smollm2"
    base = load(smollm2 / "base", cache)
    reference = torch.cat(base._next_token_logprobs(texts, args.tokens))
    base_memory = base.describe().weight_memory_bytes
    base.close()
    variants: list[tuple[str, Path, dict[str, object]]] = [
        (scheme, smollm2 / scheme, {}) for scheme in quantized_fixtures.SCHEMES
    ]
    variants += [
        ("torchao-int8-weight-only", smollm2 / "base", {"quantization": "torchao-int8-weight-only"}),
        ("bfloat16 (reference for int4)", smollm2 / "base", {"dtype": "bfloat16"}),
    ]
    if not args.skip_int4:
        settings = {"quantization": "torchao-int4-weight-only", "dtype": "bfloat16"}
        variants.append(("torchao-int4-weight-only, bfloat16", smollm2 / "base", settings))
    print(f"base float32: weight memory {base_memory / 1e6:.0f} MB; {reference.shape[0]} positions")
    columns = "variant | quantization | bits/weight (stored) | weight memory | mean KL | p99 KL | max KL"
    print(f"| {columns} | top-1 changed | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, path, settings in variants:
        started = time.perf_counter()
        variant = load(path, cache, **settings)
        logprobs = torch.cat(variant._next_token_logprobs(texts, args.tokens)).float()
        kl = (reference.exp() * (reference - logprobs)).sum(-1)
        changed = (reference.argmax(-1) != logprobs.argmax(-1)).float().mean()
        info = variant.describe()
        variant.close()
        bits = f"{info.bits_per_weight:.2f}" if info.bits_per_weight else "-"
        print(
            f"| {label} | {info.quantization} | {bits} | {info.weight_memory_bytes / 1e6:.0f} MB "
            f"| {kl.mean():.4f} | {kl.quantile(0.99):.3f} | {kl.max():.3f} | {changed:.3f} "
            f"| {time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
