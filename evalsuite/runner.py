"""Plans a run (models x tasks and probes), executes it through the engine, and writes the run directory.

Planning resolves every backend and task and builds every task's requests before any model loads or
any file is written, so bad input fails fast and leaves nothing behind. Execution writes into a hidden
staging folder that is renamed to ``<output_dir>/<run name>`` only when the run is complete.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from evalsuite import environment, gates, sequential
from evalsuite.compare import build_comparisons, comparison_pairs, plan_for
from evalsuite.config import ModelConfig, RunConfig
from evalsuite.engine import Engine
from evalsuite.engine.ranks import SINGLE, Ranks
from evalsuite.engine.scheduler import AnswerCache
from evalsuite.errors import ConfigError, EvalsuiteError, did_you_mean
from evalsuite.files import check_folder, staging_folder
from evalsuite.manifest import (
    Manifest,
    ModelEntry,
    ModelInfoEntry,
    ProbeEntry,
    RequestCounts,
    TaskEntry,
    TelemetryEntry,
)
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.models.base import PREFLIGHT, Backend
from evalsuite.models.lazy import LazyBackend, open_backend
from evalsuite.models.telemetry import merge as telemetry_merge
from evalsuite.outputs import write_outputs
from evalsuite.probes.base import Probe, ProbeUnit, Variant
from evalsuite.probes.base import samples as probe_samples
from evalsuite.probes.comparisons import build_probe_comparisons
from evalsuite.probes.registry import probe_for, probe_kind
from evalsuite.recorded import RecordedModel, load_recorded
from evalsuite.records import (
    Results,
    SampleRecord,
    SequentialResult,
    TaskResult,
    write_samples,
)
from evalsuite.rundir import RunDir
from evalsuite.stats.intervals import IntervalSettings
from evalsuite.store import Store
from evalsuite.tasks import PreparedTask, TaskCatalog, aggregate, build_task, score_task, task_dirs
from evalsuite.token_shift import TokenShift


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
class PlannedProbe:
    """A probe on one task with its variants, prepared before any model loads."""

    unit: ProbeUnit
    probe: Probe
    variants: list[Variant]


@dataclass(frozen=True)
class Plan:
    config: RunConfig
    tasks: tuple[PreparedTask, ...]
    cache_dir: Path
    probes: tuple[PlannedProbe, ...] = ()
    recorded: Mapping[str, RecordedModel] = field(default_factory=dict)  # from_run models, by name

    @property
    def run_dir(self) -> Path:
        return self.config.run.output_dir / self.config.run.name


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    results: Results
    errors: int  # samples whose requests or scoring failed
    unmeasured: tuple[str, ...] = ()  # "model on task" units in which every sample failed

    @property
    def exit_code(self) -> int:
        """0, or 1 when a gate failed (or was inconclusive where the policy counts that as failing). A run
        with unmeasured units is the CLI's to refuse (it has its own exit code for that)."""
        return self.results.gates.exit_code if self.results.gates is not None else 0


def unmeasured_units(samples: Sequence[SampleRecord]) -> tuple[str, ...]:
    """The (model, task) units none of whose samples could be scored: nothing was measured there, and a
    verdict that leaned on them would be a verdict about nothing."""
    scored: dict[tuple[str, str], bool] = {}
    for record in samples:
        key = (record.model, record.task)
        scored[key] = scored.get(key, False) or record.error is None
    return tuple(f"{model} on {task}" for (model, task), ok in scored.items() if not ok)


def plan(config: RunConfig, cache_dir: Path, note: Callable[[str], None] = lambda message: None) -> Plan:
    """Check every backend, model location, output folder and task name and build all requests, so that
    what cannot work fails in seconds, before any model loads. Writes nothing."""
    for model in config.models:
        if model.from_run is not None:  # recorded in an earlier run: checked below, never loaded
            continue
        BACKENDS.get(model.backend)
        if model.backend in PREFLIGHT:  # weights, device, packages: one line now, not after an hour
            PREFLIGHT.get(model.backend)(model)
    check_folder(config.run.output_dir, "run.output_dir")
    run_dir = config.run.output_dir / config.run.name
    if run_dir.exists() and not run_dir.is_dir():  # an earlier run's folder is replaced; a file is not
        raise ConfigError(f"run directory {run_dir} is a file; remove it or choose another run.name")
    cache = config.run.cache_dir or cache_dir
    check_folder(cache, "run.cache_dir")
    seed_everything(config.run.seed)
    catalog = TaskCatalog(task_dirs(config.run.task_dirs), config.run.data_dir)
    specs = [(t, catalog.resolve(t.name)) for t in config.tasks]
    prepared = tuple(build_task(spec, t.limit, t.num_fewshot, config.run.seed) for t, spec in specs)
    check_task_settings(config, prepared)
    if config.gates is not None:  # before probes are built: building some installs data in the cache
        metric_names = {p.spec.name: p.metric_names for p in prepared}
        for probe_config in config.probes:
            units = [probe_config.label] if probe_config.brings_own_data else []
            units += [f"{probe_config.label}/{task}" for task in probe_config.tasks]
            metric_names |= dict.fromkeys(units, probe_kind(probe_config.kind).metrics)
        gates.check_references(
            config.gates,
            {m.name: m.baseline for m in config.models},
            metric_names,
            noise_floors={m.name for m in config.models if m.noise_floor},
            probes=config.probes,
        )
    probes = plan_probes(config, catalog, cache, note)
    recorded = load_recorded(config, prepared, probes)
    return Plan(in_comparison_order(config), prepared, cache, probes, recorded)


def check_task_settings(config: RunConfig, prepared: Sequence[PreparedTask]) -> None:
    """A task's ``metric`` must be one it reports and its ``cluster_by`` a field of every document:
    otherwise comparisons would fail after the whole evaluation, or every sample be one cluster."""
    for task_config, task in zip(config.tasks, prepared, strict=True):
        where = f"tasks: {task.spec.name!r}"
        if task_config.metric is not None and task_config.metric not in task.metric_names:
            hint = did_you_mean(task_config.metric, task.metric_names)
            known = ", ".join(task.metric_names)
            raise ConfigError(f"{where}: no metric {task_config.metric!r}{hint}; it reports {known}")
        field = task_config.cluster_by
        if field is not None and any(field not in instance.doc for instance in task.instances):
            fields = sorted(task.instances[0].doc) if task.instances else []
            hint = did_you_mean(field, fields)
            raise ConfigError(
                f"{where}: cluster_by {field!r} is not a field of its documents{hint}; they have "
                + ", ".join(fields)
            )


def plan_probes(
    config: RunConfig, catalog: TaskCatalog, cache_dir: Path, note: Callable[[str], None]
) -> tuple[PlannedProbe, ...]:
    """Every probe on every task it names, with its variants built (perturbations drawn) up front."""
    planned = []
    for probe_config in config.probes:
        probe = probe_for(probe_config, cache_dir)
        if probe_config.brings_own_data:
            unit = ProbeUnit(probe_config, None, config.run.seed, config.run.data_dir)
            note(f"preparing probe {unit.name}")
            planned.append(PlannedProbe(unit, probe, probe.prepare(unit, [])))
        for task_name in probe_config.tasks:
            listed = config.task(task_name)
            limit = probe_config.limit or (listed.limit if listed else None)
            shots = probe_config.num_fewshot
            if shots is None and listed is not None:
                shots = listed.num_fewshot
            task = build_task(catalog.resolve(task_name), limit, shots, config.run.seed)
            unit = ProbeUnit(probe_config, task, config.run.seed, config.run.data_dir)
            note(f"preparing probe {unit.name}")
            planned.append(PlannedProbe(unit, probe, probe.prepare(unit, probe_samples(task))))
    return tuple(planned)


def execute(
    plan: Plan, progress: Progress, secrets: Mapping[str, str] | None = None, ranks: Ranks = SINGLE
) -> RunOutcome:
    """Evaluate every model on every task, compare them, and write the run directory atomically.

    ``secrets`` are the API keys the config names (by environment variable); ``ranks`` the processes
    of a data-parallel run, which share the requests; rank 0 alone writes the run directory."""
    config = plan.config
    header = environment.manifest_header(config)
    samples: list[SampleRecord] = []
    results: list[TaskResult] = []
    models: dict[str, ModelEntry] = {}
    pairs = comparison_pairs(
        {m.name: m.baseline for m in config.models}, [m.name for m in config.models], config.stats.all_pairs
    )
    prompts = shift_texts(plan.tasks, config.stats.kl_samples)
    shift = TokenShift(pairs, [text for text, _ in prompts], config.stats, [item for _, item in prompts])
    store = Store(plan.cache_dir) if config.run.answer_cache else None
    context = LoadContext(plan.cache_dir, config.run.seed, progress.note, store, dict(secrets or {}))
    clusters = {p.spec.name: p.cluster_by for p in plan.tasks}
    primary = {p.spec.name: p.primary_metric for p in plan.tasks}
    settings = IntervalSettings.from_config(config.stats, config.run.seed)

    def finish(model_config: ModelConfig, backend: Backend, engine: Engine) -> None:
        """Probes, token shift and the manifest entry of a model whose tasks are scored."""
        name = model_config.name
        evaluate_probes(plan, name, engine, progress, samples, results)
        if shift.wants(name):
            shift.observe(name, backend.backend() if isinstance(backend, LazyBackend) else backend)
        models[name] = describe(model_config.backend, model_config.baseline, engine, ranks)
        progress.note(answers_note(name, engine))

    for base, variant in pairs:
        if base in plan.recorded or variant in plan.recorded:
            shift.skipped[f"{base} -> {variant}"] = (
                "a model recorded in an earlier run: its next-token distributions were not kept"
            )
    decisions: Mapping[sequential.Key, SequentialResult] = {}
    if config.stats.sequential is None:  # one model at a time, each loaded once
        for model_config in config.models:
            if (recorded := plan.recorded.get(model_config.name)) is not None:
                samples.extend(recorded.records)
                cluster_by = [t.cluster_by for t in config.tasks]
                results.extend(recorded.results(plan.tasks, plan.probes, settings, cluster_by))
                models[model_config.name] = recorded.entry
                progress.note(f"{model_config.name}: {len(recorded.records)} records from {recorded.source}")
                continue
            backend, engine = open_engine(model_config, context, store, ranks)
            try:
                evaluate_tasks(plan, model_config.name, engine, progress, samples, results)
                finish(model_config, backend, engine)
            finally:
                backend.close()
            for base, _ in pairs:
                shift.release(base)
    else:  # every model open at once: each look asks each model still needed
        opened: dict[str, tuple[Backend, Engine]] = {}
        try:
            for model_config in config.models:
                opened[model_config.name] = open_engine(model_config, context, store, ranks)
            looked = sequential.evaluate_tasks(
                config,
                plan.tasks,
                {name: engine for name, (_, engine) in opened.items()},
                plan_for(config, [], clusters=clusters, primary=primary),
                progress,
                settings,
            )
            decisions = looked.decisions
            for model_config in config.models:
                samples += looked.records[model_config.name]
                results += looked.results[model_config.name]
                finish(model_config, *opened[model_config.name])
        finally:
            for backend, _ in opened.values():
                backend.close()
    if store is not None:
        store.close()
    comparison_plan = plan_for(config, results, clusters=clusters)
    comparison_plan = replace(comparison_plan, token_shift=shift.measured, routing=shift.routing)
    if config.stats.sequential is not None:
        comparison_plan = sequential.remaining(comparison_plan, decisions, config.stats.sequential.spend)
    comparisons, skipped = build_comparisons(comparison_plan, results, samples, config.run.seed)
    comparisons = sequential.apply(comparisons, decisions)
    probed = build_probe_comparisons(comparison_plan.pairs, results, samples, config.stats, config.run.seed)
    written = Counter((r.model, r.task) for r in samples)
    manifest = Manifest(
        **dict(header),
        models=models,
        tasks={
            p.spec.name: TaskEntry(
                source=p.spec.source,
                output_type=str(p.task.OUTPUT_TYPE),
                num_fewshot=p.num_fewshot,
                limit=p.limit,
                samples=len({i.doc_id for i in p.instances}),
                primary_metric=p.primary_metric,
                cluster_by=cluster_field(config, p),
                evaluated=evaluated(p, models, written),
            )
            for p in plan.tasks
        },
        probes={
            p.unit.name: ProbeEntry(
                probe=p.unit.config.label,
                kind=p.unit.config.kind,
                task=p.unit.task_name or None,
                samples=len({v.sample.doc_id for v in p.variants}),
                variants=len(p.variants),
                num_fewshot=p.unit.task.num_fewshot if p.unit.task is not None else 0,
                records={m: written[m, p.unit.name] for m in models},
            )
            for p in plan.probes
        },
        token_shift=shift.manifest(),
        ranks=ranks.world,
        finished=environment.utc_now(),
    )
    outcome = Results(
        run=config.run.name,
        results=results,
        comparisons=comparisons,
        skipped_comparisons=skipped,
        probe_comparisons=probed.comparisons,
        skipped_probe_comparisons=probed.skipped,
    )
    if config.gates is not None:
        outcome = outcome.model_copy(update={"gates": gates.evaluate(config.gates, outcome)})
    if ranks.rank == 0:
        write_run_dir(plan.run_dir, manifest, samples, outcome)
    errors = sum(r.error is not None for r in samples)
    return RunOutcome(plan.run_dir, outcome, errors, unmeasured_units(samples))


def open_engine(
    model: ModelConfig, context: LoadContext, store: Store | None, ranks: Ranks
) -> tuple[Backend, Engine]:
    """A model's backend (loaded on first use where the answer cache can name it) and its engine."""
    seed_everything(context.seed)
    backend, identity = open_backend(model, context)
    cache = AnswerCache(store, identity) if store is not None and identity is not None else None
    return backend, Engine(backend, chunk_size=chunk_size(model), cache=cache, seed=context.seed, ranks=ranks)


def evaluated(
    task: PreparedTask, models: Mapping[str, ModelEntry], written: Mapping[tuple[str, str], int]
) -> dict[str, int] | None:
    """Documents each model answered on a task, where ``stats.sequential`` stopped some early; None
    when every model answered every document."""
    total = len({i.doc_id for i in task.instances})
    counts = {model: written.get((model, task.spec.name), 0) for model in models}
    return counts if any(count != total for count in counts.values()) else None


def evaluate_tasks(
    plan: Plan,
    name: str,
    engine: Engine,
    progress: Progress,
    samples: list[SampleRecord],
    results: list[TaskResult],
) -> None:
    """Every task on one model; records and task results are appended."""
    config = plan.config
    settings = IntervalSettings.from_config(config.stats, config.run.seed)
    for prepared, task_config in zip(plan.tasks, config.tasks, strict=True):
        progress.unit_started(name, prepared.spec.name, engine.count(prepared.instances))
        records = score_task(prepared, name, engine, progress.advance)
        result = aggregate(prepared, name, records, settings, task_config.cluster_by)
        progress.unit_finished(result)
        samples.extend(records)
        results.append(result)


def evaluate_probes(
    plan: Plan,
    name: str,
    engine: Engine,
    progress: Progress,
    samples: list[SampleRecord],
    results: list[TaskResult],
) -> None:
    """Every probe on one model; records and probe results are appended."""
    settings = IntervalSettings.from_config(plan.config.stats, plan.config.run.seed)
    for planned in plan.probes:
        unit = planned.unit
        requests = [r for v in planned.variants for r in v.requests]
        total = len(planned.variants) if planned.probe.adaptive else engine.count(requests)
        progress.unit_started(name, unit.name, total)
        records = planned.probe.run(unit, planned.variants, name, engine, progress.advance)
        result = planned.probe.summarize(unit, name, records, settings)
        progress.unit_finished(result)
        samples.extend(records)
        results.append(result)


def cluster_field(config: RunConfig, prepared: PreparedTask) -> str | None:
    """The document field grouping a task's dependent samples: the config's, else the task file's."""
    listed = config.task(prepared.spec.name)
    return (listed.cluster_by if listed is not None else None) or prepared.cluster_by


def chunk_size(model: ModelConfig) -> int:
    """Requests per engine chunk (the unit of progress, caching and resume). A served model answers a
    request at a time, so its chunks hold four rounds of ``api.concurrency``: progress moves and a
    stopped run loses at most that much; local backends batch whole chunks and get 128."""
    if model.api is not None:
        return max(4 * model.api.concurrency, 16)
    return 128


def describe(backend_name: str, baseline: str | None, engine: Engine, ranks: Ranks = SINGLE) -> ModelEntry:
    """A model's manifest entry; in a data-parallel run, over all ranks (a collective call)."""
    backend = engine.backend
    loaded = backend.loaded if isinstance(backend, LazyBackend) else True
    gathered = ranks.all_gather((loaded, backend.telemetry()))
    telemetry = telemetry_merge([t for _, t in gathered])
    return ModelEntry(
        backend=backend_name,
        baseline=baseline,
        loaded=any(loaded for loaded, _ in gathered),
        requests=RequestCounts(**asdict(engine.counts)),
        info=ModelInfoEntry(**asdict(backend.describe())),
        telemetry=TelemetryEntry(
            **asdict(telemetry),
            tokens_per_second=telemetry.tokens_per_second,
            generated_tokens_per_second=telemetry.generated_tokens_per_second,
        ),
    )


def answers_note(name: str, engine: Engine) -> str:
    counts = engine.counts
    note = f"{name}: {counts.computed} answers computed, {counts.cached} from the answer cache"
    if isinstance(engine.backend, LazyBackend) and not engine.backend.loaded:
        note += " (model not loaded)"
    return note


def shift_texts(tasks: Sequence[PreparedTask], count: int) -> list[tuple[str, tuple[str, int]]]:
    """The first ``count`` distinct prompts of the run, in task and document order, each with the
    (task, document) it is first the prompt of."""
    texts: dict[str, tuple[str, int]] = {}
    for prepared in tasks:
        for instance in prepared.instances:
            text = instance.args[0]
            if isinstance(text, str) and text.strip() and text not in texts:
                texts[text] = (prepared.spec.name, int(instance.doc_id))
                if len(texts) == count:
                    return list(texts.items())
    return list(texts.items())


def in_comparison_order(config: RunConfig) -> RunConfig:
    """Reorder models so every baseline is evaluated before the models compared against it."""
    by_name = {m.name: m for m in config.models}
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        baseline = by_name[name].baseline
        if baseline is not None:
            visit(baseline)
        ordered.append(name)

    for model in config.models:
        visit(model.name)
    return config.model_copy(update={"models": tuple(by_name[n] for n in ordered)})


def write_run_dir(run_dir: Path, manifest: Manifest, samples: list[SampleRecord], results: Results) -> None:
    """Write into a staging folder, then swap it into place; an existing run of that name is replaced."""
    staging = staging_folder(run_dir.parent, f".{run_dir.name}.")
    try:
        write_samples(staging / "samples.jsonl", samples)
        write_outputs(RunDir(staging, manifest, results, tuple(samples)), as_run=True)
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
