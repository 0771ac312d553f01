"""``torch.compile`` and thread settings on the two passes the engine spends its time in (issue 19, item 4).

    python benchmarks/compile_threads.py            # SmolLM2-135M float32 on CPU: a few minutes

Two passes, each at one fixed shape (compilation's best case: no recompiles for new shapes), timed as
the median of ``--repeats`` runs after two warm-up runs:

* a scoring pass: ``--rows`` rows of ``--width`` tokens, causal, the decoder only (the engine's
  ``_score_packed`` runs the decoder and the output layer at the scored positions only);
* a decode step: ``--rows`` rows, one new token each, after ``--length`` cached positions (transformers'
  ``StaticCache``, the cache ``torch.compile`` is made for, with room for every timed step; the engine
  writes its own cache in place).

Each is timed eager and compiled (``torch.compile``, inductor, ``dynamic=False``), with the compile time
reported apart, at every thread count in ``--threads``. What pays in this best case is worth building
into the engine; what does not pay here cannot pay with the engine's varying shapes either.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout: the benchmarks package beside evalsuite
    sys.path.insert(1, str(ROOT))


def main() -> None:
    from benchmarks.engine_vs_lmeval import float32_model, script_parser

    parser = script_parser(__doc__)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--width", type=int, default=512, help="tokens per row of the scoring pass")
    parser.add_argument("--length", type=int, default=1024, help="cached positions before a decode step")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", default="1,2", help="torch intra-op thread counts to try")
    parser.add_argument("--out", type=Path, help="write the measurements as JSON here too")
    args = parser.parse_args()

    import torch

    model = float32_model(args.cache_dir)
    results: list[dict[str, Any]] = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for compiled in (False, True):
            torch._dynamo.reset()
            for name, make in (("scoring pass", scoring_pass), ("decode step", decode_step)):
                run = make(model, args, compiled)
                first = timed(run)  # the first run compiles, if compiling
                timed(run)
                median = statistics.median(timed(run) for _ in range(args.repeats))
                row = {
                    "pass": name,
                    "threads": threads,
                    "compiled": compiled,
                    "ms": round(median * 1000, 1),
                    "first_run_s": round(first, 1),
                }
                results.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def scoring_pass(model: Any, args: argparse.Namespace, compiled: bool) -> Callable[[], Any]:
    import torch

    decoder = model.get_decoder()
    forward = torch.compile(decoder, dynamic=False) if compiled else decoder
    ids = torch.randint(100, 1000, (args.rows, args.width), generator=torch.Generator().manual_seed(0))

    @torch.inference_mode()
    def run() -> Any:
        return forward(input_ids=ids, use_cache=False).last_hidden_state

    return run


def decode_step(model: Any, args: argparse.Namespace, compiled: bool) -> Callable[[], Any]:
    import torch
    from transformers import StaticCache

    from evalsuite.models.kvcache import cache_argument

    name = cache_argument(model)
    cache = StaticCache(config=model.config, max_cache_len=args.length + args.repeats + 3)
    ids = torch.randint(100, 1000, (args.rows, args.length), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        model(input_ids=ids, use_cache=True, logits_to_keep=1, **{name: cache})  # fill the cache
    forward = torch.compile(model, dynamic=False) if compiled else model
    token = torch.full((args.rows, 1), 500)
    step = [args.length]

    @torch.inference_mode()
    def run() -> Any:  # the cache keeps its shape: one more position written each step
        position = step[0]
        step[0] += 1
        return forward(
            input_ids=token,
            position_ids=torch.full((args.rows, 1), position),
            cache_position=torch.tensor([position]),
            use_cache=True,
            logits_to_keep=1,
            **{name: cache},
        ).logits

    return run


if __name__ == "__main__":
    main()
