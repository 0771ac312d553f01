"""Summarise a quantization ladder run (benchmarks/gguf_ladder.yaml) as the table docs/models.md shows.

    python benchmarks/gguf_ladder.py reports/gguf-ladder
    python benchmarks/gguf_ladder.py reports/gguf-ladder --speed --text ../shared/data/wikitext2/test.txt

One row per model: storage (dominant tensor type, bits per weight, weight bytes), per task the change in
accuracy against the baseline with its interval, the flips (items right only under the baseline / only
under the variant) and the paired test's adjusted p-value, next-token KL against the baseline (mean and
99th percentile), WikiText-2 word perplexity and its ratio to the baseline, and scoring speed as the run
measured it (a rerun that found its answers cached measured none).

``--speed`` measures it again for each ``llamacpp`` model of the run, on a quiet machine: its scoring path
(``_logprob_rows``) over ``--tokens`` tokens of ``--text`` in chunks of 512, logits at every position of the
second half (as perplexity needs), best of two; prompt tokens per second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalsuite.records import Comparison, Results  # noqa: E402

PERPLEXITY = "word_perplexity"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--speed", action="store_true", help="measure each llamacpp model's scoring speed")
    parser.add_argument("--text", type=Path, help="with --speed: the text to score")
    parser.add_argument("--tokens", type=int, default=4096)
    args = parser.parse_args()
    print(table(args.run_dir))
    if args.speed:
        print(json.dumps(speed(args.run_dir, args.text.read_text(encoding="utf-8"), args.tokens), indent=2))


def speed(run_dir: Path, text: str, tokens: int) -> dict[str, float]:
    """Prompt tokens per second of each llamacpp model of the run, through the backend's scoring path."""
    import time

    from evalsuite.config import parse_config
    from evalsuite.models import llamacpp
    from evalsuite.models.base import LoadContext

    manifest = json.loads((run_dir / "manifest.json").read_text())
    config = parse_config(manifest["config"], str(run_dir / "manifest.json"))
    context = LoadContext(config.run.cache_dir or Path.home() / ".cache" / "evalsuite", seed=0)
    out = {}
    for model in config.models:
        if model.backend != "llamacpp":
            continue
        backend = llamacpp.load(model, context)
        try:
            ids = list(backend.llama.tokenize(text.encode(), add_bos=True, special=False))[:tokens]
            best = float("inf")
            for _ in range(2):
                backend._truncate(0)
                started = time.perf_counter()
                for start in range(0, len(ids), 512):
                    chunk = ids[start : start + 512]
                    backend._logprob_rows(chunk, range(len(chunk) // 2, len(chunk)))
                    backend._truncate(0)
                best = min(best, time.perf_counter() - started)
            out[model.name] = round(len(ids) / best, 1)
        finally:
            backend.close()
    return out


def table(run_dir: Path) -> str:
    results = Results.model_validate_json((run_dir / "results.json").read_text())
    manifest: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())
    models: dict[str, Any] = manifest["models"]
    accuracy_tasks = sorted({c.task for c in results.comparisons if c.metric != PERPLEXITY})
    perplexity = {r.model: r.metrics[PERPLEXITY].value for r in results.results if PERPLEXITY in r.metrics}
    by_pair: dict[tuple[str, str], Comparison] = {(c.variant, c.task): c for c in results.comparisons}
    baselines = {c.variant: c.baseline for c in results.comparisons}
    header = ["model", "format · bits/weight", "weights"]
    for task in accuracy_tasks:
        header.append(f"{task}: accuracy · Δ [95% CI] · flips b/c · p (Holm)")
    header += ["token KL mean · p99", "WikiText-2 word ppl (ratio)", "tokens/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in models.items():
        info, telemetry = entry["info"], entry["telemetry"]
        row = [
            name,
            f"{info.get('dtype')} · {info.get('bits_per_weight') or '—'}",
            f"{info['weight_memory_bytes'] / 1e6:.0f} MB",
        ]
        for task in accuracy_tasks:
            c = by_pair.get((name, task))
            value = next(
                (
                    r.metrics[r.primary_metric or ""].value
                    for r in results.results
                    if r.model == name and r.task == task
                ),
                None,
            )
            cell = f"{value:.3f}" if value is not None else "—"
            if c is not None:
                flips = f"{c.discordant.baseline_only}/{c.discordant.variant_only}" if c.discordant else "—"
                cell += (
                    f" · {c.difference:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}] · {flips} · "
                    f"{c.p_adjusted if c.p_adjusted is not None else c.p_value:.2g}"
                )
            row.append(cell)
        shift = next((c.shift for c in results.comparisons if c.variant == name and c.shift), None)
        if shift is not None and shift.token_kl is not None:
            row.append(f"{shift.token_kl:.4f} · {shift.token_kl_p99 or float('nan'):.3f}")
        else:
            row.append("—")
        ppl = perplexity.get(name)
        base_ppl = perplexity.get(baselines.get(name, ""))
        ratio = f" ({ppl / base_ppl:.4f})" if ppl and base_ppl else ""
        row.append(f"{ppl:.2f}{ratio}" if ppl else "—")
        speed = (
            telemetry["scored_tokens"] / telemetry["scoring_seconds"] if telemetry["scoring_seconds"] else 0
        )
        row.append(f"{speed:,.0f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
