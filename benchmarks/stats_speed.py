"""How fast the statistics are: a large paired bootstrap, and a 20-model x 30-task comparison grid.

    python benchmarks/stats_speed.py            # prints a Markdown table; see benchmarks/RESULTS.md

Targets (issue 3): a paired bootstrap of 10,000 samples with 10,000 resamples under 1 s; the comparison
grid of 20 models (19 variants against one baseline) x 30 tasks under 5 s. Timings are the best of
``--repeats`` runs, wall clock, in this process.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

from evalsuite.compare import Plan, TaskPolicy, build_comparisons
from evalsuite.config import StatsSettings
from evalsuite.records import MetricResult, SampleRecord, TaskResult
from evalsuite.stats.paired import bootstrap_interval_of_mean


def best_of(repeats: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def grid(
    models: int, tasks: int, samples: int, continuous: int, rng: np.random.Generator
) -> tuple[Plan, list[TaskResult], list[SampleRecord]]:
    """Synthetic records: binary accuracy on most tasks, a continuous score on ``continuous`` of them."""
    names = [f"m{i}" for i in range(models)]
    task_names = [f"t{j}" for j in range(tasks)]
    results, records = [], []
    for j, task in enumerate(task_names):
        binary = j >= continuous
        truth = rng.random(samples) < 0.6
        for name in names:
            flips = rng.random(samples) < 0.1
            values = (truth ^ flips).astype(float) if binary else rng.random(samples)
            metric = MetricResult(
                value=float(values.mean()),
                stderr=None,
                n=samples,
                n_errors=0,
                higher_is_better=True,
                aggregation="mean",
            )
            unit = TaskResult(model=name, task=task, output_type="x", num_fewshot=0, metrics={"acc": metric})
            results.append(unit)
            records += [
                SampleRecord(model=name, task=task, doc_id=i, prompt=f"q{i}", metrics={"acc": float(v)})
                for i, v in enumerate(values)
            ]
    policies = {t: TaskPolicy("acc", 0.02, 0.02, 0.05) for t in task_names}
    pairs = tuple((names[0], name) for name in names[1:])
    return Plan(pairs, policies, StatsSettings()), results, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=500, help="samples per task in the grid")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    continuous = rng.normal(0.01, 0.3, size=10_000)
    binary = (rng.random(10_000) < 0.72).astype(float) - (rng.random(10_000) < 0.70)
    rows = [
        (
            "paired bootstrap, 10,000 continuous differences x 10,000 resamples",
            1.0,
            best_of(args.repeats, lambda: bootstrap_interval_of_mean(continuous, np.random.default_rng(1))),
        ),
        (
            "paired bootstrap, 10,000 binary differences x 10,000 resamples",
            1.0,
            best_of(args.repeats, lambda: bootstrap_interval_of_mean(binary, np.random.default_rng(1))),
        ),
    ]
    for label, n_continuous in (("binary", 0), ("5 of 30 tasks continuous", 5)):
        inputs = grid(20, 30, args.samples, n_continuous, np.random.default_rng(2))
        seconds = best_of(args.repeats, lambda inputs=inputs: build_comparisons(*inputs, seed=0))  # type: ignore[misc]
        rows.append(
            (f"comparison grid 20 models x 30 tasks x {args.samples} samples ({label})", 5.0, seconds)
        )

    machine = f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}"
    print(f"{machine}, best of {args.repeats}\n")
    print("| measurement | target (s) | measured (s) | met |")
    print("|---|---|---|---|")
    for label, target, seconds in rows:
        print(f"| {label} | < {target:g} | {seconds:.3f} | {'yes' if seconds < target else 'NO'} |")


if __name__ == "__main__":
    main()
