"""One decode step on a batch of long prompts: transformers' ``DynamicCache`` against its ``StaticCache``.

    python benchmarks/decode_step.py --data-dir ../shared/data     # SmolLM2-135M float32, 8 rows x 1,100

``DynamicCache`` concatenates every layer's keys and values at every token (a copy of the whole cache);
``StaticCache`` writes into a buffer allocated once. Both are timed over ``--steps`` greedy steps after the
same prompt, alternating, ``--rounds`` times each (issue 19, item 4: which cache pays on CPU).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout: the benchmarks package beside evalsuite
    sys.path.insert(1, str(ROOT))


def main() -> None:
    from benchmarks.engine_vs_lmeval import float32_model, script_parser

    parser = script_parser(__doc__)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--length", type=int, default=1100, help="prompt tokens per row")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import DynamicCache, StaticCache

    from evalsuite.models.kvcache import cache_argument

    torch.set_grad_enabled(False)
    model = float32_model(args.cache_dir)
    name = cache_argument(model)
    ids = torch.randint(100, 1000, (args.rows, args.length), generator=torch.Generator().manual_seed(0))
    for _ in range(args.rounds):
        for kind in ("DynamicCache", "StaticCache"):
            cache = (
                StaticCache(config=model.config, max_cache_len=args.length + args.steps)
                if kind == "StaticCache"
                else DynamicCache()
            )
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{name: cache})
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            start = time.perf_counter()
            for step in range(args.steps):
                position = args.length + step
                out = model(
                    input_ids=token,
                    position_ids=torch.full((args.rows, 1), position),
                    cache_position=torch.tensor([position]),
                    use_cache=True,
                    logits_to_keep=1,
                    **{name: cache},
                )
                token = out.logits[:, -1].argmax(-1, keepdim=True)
            per_step = (time.perf_counter() - start) / args.steps * 1000
            print(
                f"{kind}: {per_step:.1f} ms per step ({args.rows} rows, {args.length} positions)", flush=True
            )


if __name__ == "__main__":
    main()
