"""Plans a run (models x tasks), executes it through the engine, and writes the run directory.

Planning resolves every backend and task and builds every task's requests before any model loads or
any file is written, so bad input fails fast and leaves nothing behind. Execution writes into a hidden
staging folder that is renamed to ``<output_dir>/<run name>`` only when the run is complete.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from evalsuite import environment
from evalsuite.config import RunConfig
from evalsuite.engine import Engine
from evalsuite.errors import EvalsuiteError
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.models.sources import gguf_source
from evalsuite.records import MANIFEST_SCHEMA, Results, SampleRecord, TaskResult, write_json, write_samples
from evalsuite.tasks import PreparedTask, TaskCatalog, aggregate, build_task, score_task, task_dirs


class Progress(Protocol):
    """How the runner reports progress; the CLI implements it with rich, tests with a list."""

    def note(self, message: str) -> None: ...
    def unit_started(self, model: str, task: str, requests: int) -> None: ...
    def advance(self, requests: int) -> None: ...
    def unit_finished(self, result: TaskResult) -> None: ...


class SilentProgress:
    def note(self, message: str) -> None:
        pass

    def unit_started(self, model: str, task: str, requests: int) -> None:
        pass

    def advance(self, requests: int) -> None:
        pass

    def unit_finished(self, result: TaskResult) -> None:
        pass


@dataclass(frozen=True)
class Plan:
    config: RunConfig
    tasks: tuple[PreparedTask, ...]
    cache_dir: Path

    @property
    def run_dir(self) -> Path:
        return self.config.run.output_dir / self.config.run.name


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    results: tuple[TaskResult, ...]
    errors: int  # samples whose requests or scoring failed


def plan(config: RunConfig, cache_dir: Path) -> Plan:
    """Check every backend, GGUF weights file and task name and build all requests. Writes nothing."""
    for model in config.models:
        BACKENDS.get(model.backend)
        gguf_source(model)  # an uninstalled package or a missing .gguf fails here, not at model load
    seed_everything(config.run.seed)
    catalog = TaskCatalog(task_dirs(config.run.task_dirs), config.run.data_dir)
    specs = [(t, catalog.resolve(t.name)) for t in config.tasks]
    prepared = tuple(build_task(spec, t.limit, t.num_fewshot, config.run.seed) for t, spec in specs)
    return Plan(config, prepared, config.run.cache_dir or cache_dir)


def execute(plan: Plan, progress: Progress) -> RunOutcome:
    """Evaluate every model on every task and write the run directory atomically."""
    config = plan.config
    manifest = environment.manifest_header(config)
    samples: list[SampleRecord] = []
    results: list[TaskResult] = []
    models: dict[str, object] = {}
    context = LoadContext(cache_dir=plan.cache_dir, seed=config.run.seed, progress=progress.note)
    for model_config in config.models:
        seed_everything(config.run.seed)
        backend = BACKENDS.get(model_config.backend)(model_config, context)
        try:
            engine = Engine(backend)
            for prepared in plan.tasks:
                progress.unit_started(model_config.name, prepared.spec.name, Engine.count(prepared.instances))
                records = score_task(prepared, model_config.name, engine, progress.advance)
                result = aggregate(prepared, model_config.name, records, config.run.seed)
                progress.unit_finished(result)
                samples.extend(records)
                results.append(result)
            telemetry = backend.telemetry()
            models[model_config.name] = {
                "backend": model_config.backend,
                "baseline": model_config.baseline,
                "info": asdict(backend.describe()),
                "telemetry": {
                    **asdict(telemetry),
                    "tokens_per_second": telemetry.tokens_per_second,
                    "generated_tokens_per_second": telemetry.generated_tokens_per_second,
                },
            }
        finally:
            backend.close()
    manifest["models"] = models
    manifest["tasks"] = {
        p.spec.name: {
            "source": p.spec.source,
            "output_type": str(p.task.OUTPUT_TYPE),
            "num_fewshot": p.num_fewshot,
            "limit": p.limit,
            "samples": len({i.doc_id for i in p.instances}),
        }
        for p in plan.tasks
    }
    manifest["finished"] = environment.utc_now()
    write_run_dir(plan.run_dir, manifest, samples, Results(run=config.run.name, results=results))
    return RunOutcome(plan.run_dir, tuple(results), sum(r.error is not None for r in samples))


def write_run_dir(
    run_dir: Path, manifest: dict[str, object], samples: list[SampleRecord], results: Results
) -> None:
    """Write into a staging folder, then swap it into place; an existing run of that name is replaced."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", dir=run_dir.parent))
    try:
        write_samples(staging / "samples.jsonl", samples)
        write_json(staging / "results.json", results.model_dump(mode="json", by_alias=True))
        write_json(staging / "manifest.json", {"schema": MANIFEST_SCHEMA, **manifest})
        if run_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.old.", dir=run_dir.parent))
            run_dir.rename(retired / run_dir.name)
            staging.rename(run_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


__all__ = ["EvalsuiteError", "Plan", "Progress", "RunOutcome", "SilentProgress", "execute", "plan"]
