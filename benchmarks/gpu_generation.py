"""Generation on a lent GPU: evalsuite's continuous batching against lm-eval's ``generate_until``.

    python benchmarks/gpu_generation.py --out gpu_generation.json        # CUDA, bf16, Llama-1B shape
    python benchmarks/gpu_generation.py --tiny --device cpu --dtype float32 --out tiny.json   # CI, seconds

Nothing is downloaded: the model is the random-initialised Llama 3.2 1B shape of ``gpu_check.py`` and the
tokenizer a byte-level BPE trained on the synthetic prompts. Every prompt is few-shot: the same
``--shots`` solved examples, then its own question, so a shared prefix exists as in GSM8K with fixed
examples. A random model does not stop on its own, so each question gets its own length budget (the
``max_gen_toks`` of 1 to 4 groups, as tasks with different settings would send): lm-eval batches each
group apart, evalsuite's rows leave as they finish. Both sides get the same instances and the same model
object; reported: wall time of each (alternating, best of ``--repeats``), tokens the decoder computed
(a forward hook, padding included), generated tokens, and identical generations. Identity is checked
in float32 only (``checks``); in bf16, random weights leave many near-ties and it is reported.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing evalsuite
    sys.path.insert(1, str(ROOT))

from benchmarks import gpu_check  # noqa: E402  # models, tokenizer and backend built the same way
from benchmarks.engine_vs_lmeval import count_tokens  # noqa: E402

SIZES = {
    "full": {"questions": 256, "shots": 8, "context_words": 60, "batch_size": 64, "max_new": 128},
    "tiny": {"questions": 10, "shots": 2, "context_words": 8, "batch_size": 4, "max_new": 12},
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    with torch.no_grad():
        report = run(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "differing"}, indent=2))
    failed = [name for name, ok in report["checks"].items() if not ok]
    return 1 if failed and not args.no_fail else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="tiny model and prompt set (CPU, seconds)")
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (default)")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each side; the best counts")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a check fails")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    return parser.parse_args(argv)


def prompts(rng: random.Random, size: dict[str, int]) -> tuple[list[str], list[str]]:
    """(shared few-shot prefix + question, one per question; every text, for the tokenizer)."""
    docs = gpu_check.synthetic_documents(rng, size["questions"] + size["shots"], size["context_words"])
    shots = "".join(d["context"] + d["choices"][0] + "\n\n" for d in docs[: size["shots"]])
    questions = [shots + d["context"] for d in docs[size["shots"] :]]
    return questions, [shots, *questions]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from evalsuite.engine import Engine

    size = SIZES["tiny" if args.tiny else "full"]
    shape = gpu_check.TINY["llama-1b"] if args.tiny else gpu_check.FULL["llama-1b"]
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    dtype = getattr(torch, args.dtype)
    rng = random.Random(args.seed)
    questions, texts = prompts(rng, size)
    tokenizer = gpu_check.train_tokenizer(
        [{"context": t, "choices": []} for t in texts], 4000 if not args.tiny else 400
    )
    max_length = 4096
    model = gpu_check.build_model(shape, max_length, device, dtype, args.seed)
    budgets = [size["max_new"] // (1 + i % 4) for i in range(len(questions))]  # four groups of lengths
    instances = [
        Instance(
            "generate_until", {}, (q, {"until": ["Question:"], "max_gen_toks": b, "do_sample": False}), i
        )
        for i, (q, b) in enumerate(zip(questions, budgets, strict=True))
    ]
    theirs = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=size["batch_size"], max_length=max_length)
    ours = gpu_check.make_backend(model, tokenizer, max_length, batch_size=size["batch_size"])
    times: dict[str, list[float]] = {"lm_eval": [], "evalsuite": []}
    tokens: dict[str, int] = {}
    answers: dict[str, list[str]] = {}
    theirs.generate_until(instances[:2], disable_tqdm=True)  # one-off costs, not measured
    Engine(ours).run(instances[:2])
    for _ in range(args.repeats):
        for side, work in (
            ("lm_eval", lambda: theirs.generate_until(instances, disable_tqdm=True)),
            ("evalsuite", lambda: [o[0].value for o in Engine(ours).run(instances)]),
        ):
            with count_tokens(model) as counted:
                gpu_check.synchronize(device)
                start = time.perf_counter()
                answers[side] = work()
                gpu_check.synchronize(device)
                times[side].append(round(time.perf_counter() - start, 3))
            tokens[side] = counted[0]
    identical = sum(a == b for a, b in zip(answers["lm_eval"], answers["evalsuite"], strict=True))
    best = {side: min(values) for side, values in times.items()}
    report: dict[str, Any] = {
        "environment": gpu_check.environment(device),
        "settings": {"device": str(device), "dtype": args.dtype, "preset": "tiny" if args.tiny else "full",
                     "prompt_tokens": [len(tokenizer(q).input_ids) for q in questions[:3]], **size},
        "seconds": times,
        "speedup": round(best["lm_eval"] / best["evalsuite"], 2),
        "model_tokens": tokens,
        "generated_tokens": {
            side: sum(len(tokenizer(a).input_ids) for a in generated) for side, generated in answers.items()
        },
        "identical": f"{identical}/{len(instances)}",
        "differing": [
            {"index": i, "lm_eval": a[:120], "evalsuite": b[:120]}
            for i, (a, b) in enumerate(zip(answers["lm_eval"], answers["evalsuite"], strict=True))
            if a != b
        ][:10],
    }  # fmt: skip
    report["checks"] = (
        {"identical_in_float32": identical == len(instances)} if args.dtype == "float32" else {}
    )
    return report


if __name__ == "__main__":
    sys.exit(main())
