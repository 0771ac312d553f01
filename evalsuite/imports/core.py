"""Records and task metadata from another tool, made into a normal run directory: the format-independent
half of ``evalsuite import``.

A reader (``evalsuite/imports/lm_eval.py``; one per format) turns a tool's output into
:class:`ImportedModel` values: one :class:`~evalsuite.records.SampleRecord` per (task, document) with
the per-sample metric values the tool computed, each task's metrics with their aggregation and sense,
and where the data came from. :func:`import_run` then does what ``evalsuite run`` does after the engine:
task results with evalsuite's own intervals (:func:`evalsuite.stats.aggregates.summarize`, as
:func:`evalsuite.tasks.evaluate.aggregate` calls it), paired comparisons of every model with the
baseline (:func:`evalsuite.compare.build_comparisons`), gates, and the run directory written atomically
(:func:`evalsuite.runner.write_run_dir`), so ``report``, ``gate`` and ``compare`` work on it unchanged.

Everything that can be wrong is found before anything is written: models that disagree about a task
(its documents, prompts, few-shot count, settings), a metric value the records do not reproduce, a gate
naming what the import lacks. Each is one DataError or ConfigError line (exit 2).

The synthesized config is honest about what evalsuite did not do: each model is ``backend: imported``
with ``path`` naming where its answers were read from (no evalsuite backend has that name, so
``evalsuite run`` on the stored config says the model cannot be run rather than running something
else), and the manifest keeps the tool's own provenance under ``models[name].imported``.
docs/import.md has the design.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from evalsuite import environment, gates
from evalsuite.compare import build_comparisons, plan_for
from evalsuite.config import (
    GatePolicy,
    RunConfig,
    RunSettings,
    StatsSettings,
    TaskConfig,
    format_validation_error,
    parse_config,
    read_yaml,
)
from evalsuite.errors import ConfigError, DataError, did_you_mean
from evalsuite.files import check_folder
from evalsuite.manifest import (
    Manifest,
    ModelEntry,
    ModelInfoEntry,
    TaskEntry,
    TelemetryEntry,
    TokenShiftEntry,
)
from evalsuite.records import JSONValue, MetricResult, Results, SampleRecord, TaskResult
from evalsuite.runner import RunOutcome, write_run_dir
from evalsuite.schema import NAME_PATTERN
from evalsuite.stats.aggregates import summarize
from evalsuite.stats.intervals import IntervalSettings
from evalsuite.tasks.evaluate import metric_result

BACKEND = "imported"  # the config's backend of a model whose answers were read, not computed
# task-config keys a reader copies from its tool that the run's --config may not set: they are what was
# evaluated, and the records are their consequence
COMPARISON_KEYS = ("metric", "cluster_by", "margin", "equivalence_margin", "alpha")


@dataclass(frozen=True)
class Source:
    """One model's output as named on the command line: ``PATH`` or ``NAME=PATH``."""

    name: str | None  # None: the reader names the model from its data
    path: Path

    @classmethod
    def parse(cls, text: str) -> Source:
        """``NAME=PATH`` when the text before the first ``=`` is a valid model name and the whole text
        is not itself an existing path (a folder may have ``=`` in its name); else ``PATH``."""
        name, sep, rest = text.partition("=")
        if sep and rest and re.fullmatch(NAME_PATTERN, name) and not Path(text).exists():
            return cls(name, Path(rest).expanduser())
        if sep and not rest:
            raise ConfigError(f"{text!r}: expected NAME=PATH with a path after '='")
        return cls(None, Path(text).expanduser())


@dataclass(frozen=True)
class ImportedMetric:
    """One metric of a task as the source tool defines it."""

    name: str  # evalsuite's name: "acc", or "exact_match:strict-match" where the task has several filters
    aggregation: str  # its aggregation's name as a run records it (the function's __name__: "mean")
    function: Callable[[list[Any]], float] | None  # the aggregation itself, for those not a ratio of sums
    higher_is_better: bool | None
    # the task-level value the tool itself computed from these samples (None: it gave none); the import
    # refuses records that do not reproduce it, since they would not be the samples behind that number
    reported: float | None = None


@dataclass(frozen=True)
class ImportedTask:
    """One task of one model, as the source tool ran it."""

    name: str
    output_type: str  # multiple_choice, generate_until, loglikelihood, loglikelihood_rolling
    num_fewshot: int
    metrics: tuple[ImportedMetric, ...]  # every metric the task reports, the primary one first
    limit: int | None  # how many documents the tool was told to take (None: all, or a fraction)
    source: str  # where the task's definition comes from, for the manifest
    # what must be equal between two models for them to be compared on this task: the task's definition
    # as the tool recorded it, less what only says where the data lay (the documents are compared one by one)
    settings: Mapping[str, JSONValue]
    details: Mapping[str, JSONValue] = field(default_factory=dict)  # manifest tasks[name].imported

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)


@dataclass(frozen=True)
class ImportedModel:
    """One model's records and task metadata, read by a format's reader."""

    name: str
    origin: str  # what it was read from, in words, for error messages (a results file's path)
    path: Path  # the config's `path`: the file the model's answers were read from
    tasks: Mapping[str, ImportedTask]
    records: tuple[SampleRecord, ...]
    info: ModelInfoEntry  # what the source says about the model (dtype, parameters), "unknown" elsewhere
    provenance: Mapping[str, JSONValue]  # manifest models[name].imported: paths, tool version, arguments

    @cached_property
    def by_task(self) -> dict[str, list[SampleRecord]]:
        """The records of each task, in the reader's order (looked up once per task and step)."""
        grouped: dict[str, list[SampleRecord]] = {}
        for record in self.records:
            grouped.setdefault(record.task, []).append(record)
        return grouped


Reader = Callable[[Sequence[Source], Collection[str] | None], list[ImportedModel]]


class _SettingsFile(BaseModel):
    """The parts of a model.yaml an import uses. Its models and probes are not read (an imported model
    has no backend settings), but any other top-level key is a typo and an error, as in a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: RunSettings = RunSettings()
    stats: StatsSettings = StatsSettings()
    gates: GatePolicy | None = None
    tasks: tuple[TaskConfig, ...] = ()
    models: JSONValue = None
    probes: JSONValue = None


@dataclass(frozen=True)
class ImportSettings:
    """What the command line decides about an import."""

    name: str  # the run's name
    output_dir: Path
    baseline: str | None = None  # the model the others are compared with (None: the first given)
    tasks: tuple[str, ...] | None = None  # import only these (None: every task of the models)
    stats: StatsSettings = field(default_factory=StatsSettings)
    gates: GatePolicy | None = None
    seed: int = RunSettings().seed
    task_settings: Mapping[str, TaskConfig] = field(default_factory=dict)  # from --config, by task

    @classmethod
    def load(
        cls,
        name: str,
        output_dir: Path,
        *,
        baseline: str | None = None,
        tasks: Sequence[str] = (),
        config: Path | None = None,
        policy: Path | None = None,
    ) -> ImportSettings:
        """Settings from the command line: ``config`` (a model.yaml) gives ``stats``, ``gates``,
        ``run.seed`` and each task's comparison keys; ``policy`` (a gates file) replaces its gates."""
        settings = cls(name, output_dir.resolve(), baseline, tuple(dict.fromkeys(tasks)) or None)
        if config is not None:
            parsed = _settings_file(config)
            settings = replace(
                settings,
                stats=parsed.stats,
                gates=parsed.gates,
                seed=parsed.run.seed,
                task_settings={t.name: t for t in parsed.tasks},
            )
        if policy is not None:
            settings = replace(settings, gates=gates.load_policy(policy))
        return settings


def _settings_file(path: Path) -> _SettingsFile:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except Exception as error:  # yaml's errors, and a key given twice
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'stats', 'gates' or 'tasks'")
    try:
        return _SettingsFile.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None


@dataclass(frozen=True)
class ImportedRun:
    """Everything a run directory holds, before it is written."""

    path: Path
    manifest: Manifest
    samples: tuple[SampleRecord, ...]
    results: Results


def import_run(
    format_name: str, reader: Reader, sources: Sequence[Source], settings: ImportSettings
) -> RunOutcome:
    """Read ``sources`` with ``reader``, check and summarize them, and write the run directory; nothing is
    written when anything is wrong."""
    check_folder(settings.output_dir, "--output-dir")
    target = settings.output_dir / settings.name
    if target.exists() and not target.is_dir():
        raise ConfigError(f"run directory {target} is a file; remove it or choose another --name")
    if not sources:
        raise ConfigError("nothing to import: name at least one PATH")
    models = reader(sources, settings.tasks)
    run = build_run(format_name, models, settings)
    write_run_dir(run.path, run.manifest, list(run.samples), run.results)
    return RunOutcome(run.path, run.results, 0)


def build_run(format_name: str, models: Sequence[ImportedModel], settings: ImportSettings) -> ImportedRun:
    """The run directory's content from imported models: checked, summarized, compared and gated."""
    names = [m.name for m in models]
    for name in names:
        if names.count(name) > 1:
            origins = " and ".join(m.origin for m in models if m.name == name)
            raise ConfigError(f"two models are named {name!r} ({origins}): name them with NAME=PATH")
    baseline = settings.baseline or names[0]
    if baseline not in names:
        raise ConfigError(
            f"--baseline {baseline!r}: no such model{did_you_mean(baseline, names)}; "
            f"imported: {', '.join(names)}"
        )
    ordered = [next(m for m in models if m.name == baseline), *(m for m in models if m.name != baseline)]
    tasks = _agreed_tasks(ordered, settings.tasks)
    config = _config(ordered, baseline, tasks, settings)
    records = [r for m in ordered for t in tasks for r in sorted(_of(m, t.name), key=lambda r: r.doc_id)]
    _check_documents(ordered, tasks)
    _check_task_settings(config, tasks, records)
    if config.gates is not None:  # a gate naming what the import lacks fails before anything is computed
        gates.check_references(
            config.gates,
            {m.name: m.baseline for m in config.models},
            {t.name: list(t.metric_names) for t in tasks},
            noise_floors=set(),
        )
    interval = IntervalSettings.from_config(config.stats, config.run.seed)
    results = [
        _task_result(model, model.tasks[task.name], _of(model, task.name), interval, config)
        for model in ordered
        for task in tasks
    ]
    clusters = {t.name: _cluster_field(config, t.name) for t in tasks}
    plan = plan_for(config, results, clusters=clusters)
    comparisons, skipped = build_comparisons(plan, results, records, config.run.seed)
    outcome = Results(
        run=config.run.name, results=results, comparisons=comparisons, skipped_comparisons=skipped
    )
    if config.gates is not None:
        outcome = outcome.model_copy(update={"gates": gates.evaluate(config.gates, outcome)})
    primary = {r.task: r.primary_metric for r in results if r.model == baseline}
    manifest = _manifest(format_name, config, ordered, tasks, primary)
    return ImportedRun(config.run.output_dir / config.run.name, manifest, tuple(records), outcome)


def _of(model: ImportedModel, task: str) -> list[SampleRecord]:
    return list(model.by_task.get(task, ()))


def _agreed_tasks(models: Sequence[ImportedModel], wanted: Sequence[str] | None) -> list[ImportedTask]:
    """The tasks every model has (all of them, or ``wanted``), in the first model's order, each checked to
    be the same task for every model: a paired comparison needs the same questions asked the same way."""
    first = models[0]
    names = list(wanted) if wanted is not None else list(first.tasks)
    if not names:
        raise DataError(f"nothing to import: {first.origin} has no tasks")
    for model in models:
        for name in names:
            if name not in model.tasks:
                has = ", ".join(model.tasks) or "none"
                hint = did_you_mean(name, model.tasks)
                raise DataError(
                    f"model {model.name!r} ({model.origin}) has no task {name!r}{hint}; it has {has}. "
                    "Import only the tasks every model has with --task"
                )
        extra = [t for t in model.tasks if t not in names]
        if wanted is None and extra:
            raise DataError(
                f"task {extra[0]!r}: model {model.name!r} ({model.origin}) has it, but {first.name!r} "
                f"({first.origin}) does not; import the tasks both have with --task"
            )
    for name in names:
        reference = first.tasks[name]
        for model in models[1:]:
            _same_task(first.name, reference, model.name, model.tasks[name])
    return [first.tasks[name] for name in names]


def _same_task(a: str, ta: ImportedTask, b: str, tb: ImportedTask) -> None:
    where = f"task {ta.name!r}: models {a!r} and {b!r}"
    why = "a paired comparison needs the same task"
    if ta.num_fewshot != tb.num_fewshot:
        raise DataError(
            f"{where} were evaluated with different few-shot counts ({ta.num_fewshot} and {tb.num_fewshot}); "
            f"{why}: rerun one with the other's --num_fewshot"
        )
    if ta.output_type != tb.output_type:
        raise DataError(f"{where} have different output types ({ta.output_type} and {tb.output_type}); {why}")
    difference = _first_difference(ta.settings, tb.settings)
    if difference is not None:
        key, left, right = difference
        raise DataError(
            f"{where} were evaluated with different task settings: {key} is {_short(left)} for {a!r} and "
            f"{_short(right)} for {b!r}; {why}"
        )


def _first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """The first key path (``generation_kwargs.max_gen_toks``) at which two JSON values differ."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(a) + [k for k in b if k not in a]:
            path = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                return path, a.get(key, "(absent)"), b.get(key, "(absent)")
            found = _first_difference(a[key], b[key], path)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    return None if a == b else (where or "the value", a, b)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_documents(models: Sequence[ImportedModel], tasks: Sequence[ImportedTask]) -> None:
    """Each model has one record per document of each task, and the same documents, each with the same
    document, prompt and target as the first model's: what makes its records pairs."""
    first = models[0]
    for model in models:
        seen: set[tuple[str, int]] = set()
        for record in model.records:
            if (record.task, record.doc_id) in seen:
                raise DataError(
                    f"{model.origin}: two records of document {record.doc_id} of task {record.task!r}"
                )
            seen.add((record.task, record.doc_id))
    for task in tasks:
        reference = {r.doc_id: r for r in _of(first, task.name)}
        for model in models[1:]:
            mine = {r.doc_id: r for r in _of(model, task.name)}
            only_first, only_mine = (
                sorted(reference.keys() - mine.keys()),
                sorted(mine.keys() - reference.keys()),
            )
            if only_first or only_mine:
                example = (
                    f"document {only_first[0]} only in {first.name!r}"
                    if only_first
                    else f"document {only_mine[0]} only in {model.name!r}"
                )
                raise DataError(
                    f"task {task.name!r}: models {first.name!r} and {model.name!r} were evaluated on "
                    f"different documents ({len(reference)} and {len(mine)}; {example}); a paired "
                    "comparison needs the same documents: rerun with the same --limit"
                )
            for doc_id in sorted(reference):
                theirs, ours = reference[doc_id], mine[doc_id]
                for what in ("doc", "prompt", "target"):
                    if getattr(theirs, what) != getattr(ours, what):
                        label = {"doc": "documents", "prompt": "prompts", "target": "targets"}[what]
                        raise DataError(
                            f"task {task.name!r}, document {doc_id}: models {first.name!r} and "
                            f"{model.name!r} have different {label}; a paired comparison needs the same "
                            "questions asked the same way (same data, few-shot seed, chat template and "
                            "system instruction)"
                        )


def _check_task_settings(
    config: RunConfig, tasks: Sequence[ImportedTask], records: Sequence[SampleRecord]
) -> None:
    """A task's ``metric`` (from --config) must be one it reports and its ``cluster_by`` a field of every
    document, as :func:`evalsuite.runner.check_task_settings` requires of a run."""
    for task in tasks:
        listed = config.task(task.name)
        if listed is None:
            continue
        where = f"tasks: {task.name!r}"
        if listed.metric is not None and listed.metric not in task.metric_names:
            hint = did_you_mean(listed.metric, task.metric_names)
            raise ConfigError(
                f"{where}: no metric {listed.metric!r}{hint}; it reports {', '.join(task.metric_names)}"
            )
        docs = [r.doc for r in records if r.task == task.name]
        if listed.cluster_by is not None and any(listed.cluster_by not in doc for doc in docs):
            fields = sorted(docs[0]) if docs else []
            raise ConfigError(
                f"{where}: cluster_by {listed.cluster_by!r} is not a field of its documents"
                f"{did_you_mean(listed.cluster_by, fields)}; they have {', '.join(fields)}"
            )


def _cluster_field(config: RunConfig, task: str) -> str | None:
    listed = config.task(task)
    return listed.cluster_by if listed is not None else None


def _task_result(
    model: ImportedModel,
    task: ImportedTask,
    records: Sequence[SampleRecord],
    settings: IntervalSettings,
    config: RunConfig,
) -> TaskResult:
    """Each metric's value, standard error and interval, as :func:`evalsuite.tasks.evaluate.aggregate`
    computes them in a run; a value that differs from what the tool reported is a DataError."""
    declared = {m.name: m for m in task.metrics}
    cluster_by = _cluster_field(config, task.name)
    ok = [r for r in records if r.error is None]
    metrics: dict[str, MetricResult] = {}
    for name in sorted({m for r in ok for m in r.metrics}):
        spec = declared.get(name)
        if spec is None:  # readers declare every metric their records carry
            raise DataError(f"{model.origin}: task {task.name!r}: metric {name!r} has no aggregation")
        scored = [r for r in ok if name in r.metrics]
        clusters = [r.doc.get(cluster_by) for r in scored] if cluster_by else None
        interval = summarize(
            [r.metrics[name] for r in scored],
            spec.aggregation,
            spec.function,
            np.random.default_rng(settings.seed),
            settings.confidence,
            clusters,
            settings.resamples,
        )
        result = metric_result(
            interval, len(scored), len(records) - len(ok), spec.higher_is_better, spec.aggregation
        )
        if (
            spec.reported is not None
            and result.value is not None
            and not math.isclose(result.value, spec.reported, rel_tol=1e-9, abs_tol=1e-12)
        ):
            raise DataError(
                f"{model.origin}: task {task.name!r}: {len(scored)} samples give {name} {result.value:.10g}, "
                f"but the tool reported {spec.reported:.10g}: the samples are not the ones behind that "
                "result (cut short, or from another run)"
            )
        metrics[name] = result
    primary = next((m for m in task.metric_names if m in metrics), None)
    return TaskResult(
        model=model.name,
        task=task.name,
        output_type=task.output_type,
        num_fewshot=task.num_fewshot,
        primary_metric=primary,
        metrics=metrics,
    )


def _config(
    models: Sequence[ImportedModel], baseline: str, tasks: Sequence[ImportedTask], settings: ImportSettings
) -> RunConfig:
    """The run's config, validated like a model.yaml: each model ``backend: imported`` with the file its
    answers came from, the tasks with the few-shot count and limit the tool used and the comparison keys
    --config gives them."""
    task_entries = []
    for task in tasks:
        entry: dict[str, Any] = {"name": task.name, "num_fewshot": task.num_fewshot}
        if task.limit is not None:
            entry["limit"] = task.limit
        own = settings.task_settings.get(task.name)
        if own is not None:
            entry |= own.model_dump(include=set(COMPARISON_KEYS), exclude_none=True)
        task_entries.append(entry)
    data = {
        "run": {"name": settings.name, "output_dir": str(settings.output_dir), "seed": settings.seed},
        "stats": settings.stats.model_dump(mode="json"),
        "models": [
            {"name": m.name, "backend": BACKEND, "path": str(m.path)}
            | ({"baseline": baseline} if m.name != baseline else {})
            for m in models
        ],
        "tasks": task_entries,
    }
    if settings.gates is not None:
        data["gates"] = settings.gates.model_dump(mode="json", exclude_unset=True)
    return parse_config(data, "import")


def _manifest(
    format_name: str,
    config: RunConfig,
    models: Sequence[ImportedModel],
    tasks: Sequence[ImportedTask],
    primary: Mapping[str, str | None],
) -> Manifest:
    """The manifest of an import: the header says where and with what the import was made (this machine,
    this evalsuite); each model's entry says what the tool recorded about the model and where its data
    came from; the config keeps of each model only what is true of it (no backend settings, which an
    imported model never had)."""
    header = dict(environment.manifest_header(config))
    stored = config.model_dump(mode="json")
    stored["models"] = [m.model_dump(mode="json", exclude_defaults=True) for m in config.models]
    by_name = {m.name: m for m in config.models}
    pairs = [f"{m.baseline} -> {m.name}" for m in config.models if m.baseline is not None]
    return Manifest(
        **{**header, "config": stored},
        models={
            m.name: ModelEntry(
                backend=BACKEND,
                baseline=by_name[m.name].baseline,
                loaded=False,
                info=m.info,
                telemetry=TelemetryEntry(
                    peak_memory_bytes=0,
                    memory_kind="none",
                    scored_tokens=0,
                    scoring_seconds=0.0,
                    generated_tokens=0,
                    generation_seconds=0.0,
                    tokens_per_second=0.0,
                    generated_tokens_per_second=0.0,
                ),
                imported=dict(m.provenance),
            )
            for m in models
        },
        tasks={
            t.name: TaskEntry(
                source=t.source,
                output_type=t.output_type,
                num_fewshot=t.num_fewshot,
                limit=t.limit,
                samples=len({r.doc_id for r in _of(models[0], t.name)}),
                primary_metric=primary.get(t.name),
                cluster_by=_cluster_field(config, t.name),
                imported=dict(t.details),
            )
            for t in tasks
        },
        token_shift=TokenShiftEntry(
            method=f"not measured: {format_name} output keeps no next-token distributions",
            skipped=dict.fromkeys(pairs, f"imported from {format_name}: no next-token distributions"),
        ),
        finished=environment.utc_now(),
        imported={
            "format": format_name,
            "note": (
                f"answers and per-sample metrics were computed by {format_name}, elsewhere; statistics, "
                "comparisons and gates by evalsuite. created, hardware, versions and git_sha describe the "
                "import"
            ),
        },
    )


__all__ = [
    "BACKEND",
    "ImportSettings",
    "ImportedMetric",
    "ImportedModel",
    "ImportedRun",
    "ImportedTask",
    "Reader",
    "Source",
    "build_run",
    "import_run",
]
