"""The Inspect reader of ``evalsuite import``: eval logs written by Inspect AI (UK AISI).

An Inspect log (``.eval``, a zip, or ``.json``) holds one evaluation of one task by one model: the
task's definition (solver plan, scorers, epochs), every sample (id, input, target, the model's output,
each scorer's :class:`~inspect_ai.scorer.Score`), the per-sample scores reduced over epochs, and the
metrics Inspect computed from them. This module reads logs with Inspect's own reader
(:func:`inspect_ai.log.read_eval_log`; the format is Inspect's to change, never parsed here by hand),
checks them, and turns them into :class:`~evalsuite.imports.core.ImportedModel` values;
:mod:`evalsuite.imports.core` does the rest.

Logs are grouped into models: the logs given one ``NAME=``, or without a name those of one Inspect
model (``eval.model``), are that model's tasks, so ``evalsuite import inspect logs/*.eval`` of an eval
set imports every model with every task. Each model has each task once.

A record is one sample, whatever the number of epochs: its doc_id is the sample id (ids that are not
all whole numbers >= 0 are numbered in sorted order; the original id is kept in the document), its
generation is the first epoch's output, and each scorer's value is the one Inspect's own metrics are
computed from, its reduction over the epochs (``log.reductions``: the mean by default), mapped to a
number by Inspect's ``value_to_float`` (``'C'`` 1, ``'P'`` 0.5, ``'I'`` and ``'N'`` 0). Pairing the
models' records by sample then pairs what Inspect scores, and the samples stay the unit of the
statistics (one record per epoch would count a sample's epochs as independent questions).

inspect-ai is an optional extra (``pip install 'evalsuite[inspect]'``): it is imported only when a log
is read, and missing, it is one line naming the extra.
"""

from __future__ import annotations

import hashlib
import math
import re
import zipfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.errors import ConfigError, DataError, did_you_mean
from evalsuite.imports.core import ImportedMetric, ImportedModel, ImportedTask, Source
from evalsuite.manifest import ModelInfoEntry
from evalsuite.records import JSONValue, SampleRecord
from evalsuite.schema import NAME_PATTERN
from evalsuite.tasks.scoring import jsonable, metric_name

if TYPE_CHECKING:
    from inspect_ai.log import EvalLog, EvalSample

FORMAT = "inspect"
SUFFIXES = (".eval", ".json")  # what Inspect writes; its reader picks the format by the suffix
# sample fields nothing here reads, left unread in .eval logs: the transcript is most of a log's size
UNREAD = frozenset({"events", "store"})
DEFAULT_REDUCER = "mean"  # Inspect's reducer where a task names none
# the sample-level words Inspect's value_to_float maps besides 'C', 'I', 'P', 'N' and numbers
WORDS = ("yes", "no", "true", "false")
# Inspect metrics that are the plain mean of value_to_float over the reduced scores: the value the
# records must reproduce (others, such as stderr, are kept in the manifest only)
MEANS = ("accuracy", "mean")


@dataclass(frozen=True)
class _Log:
    """One log file as read, with the name of the model it belongs to."""

    path: Path
    log: EvalLog
    name: str

    @property
    def task(self) -> str:
        return self.log.eval.task


def read(sources: Sequence[Source], only: Collection[str] | None = None) -> list[ImportedModel]:
    """One model per name (``NAME=``, else the log's Inspect model), each with the tasks of its logs;
    ``only``: these tasks, the other logs are checked but their samples not read."""
    _require_inspect()
    headers = [_read_log(source.path, header_only=True) for source in sources]
    groups: dict[str, list[tuple[Source, EvalLog]]] = {}
    for source, header in zip(sources, headers, strict=True):
        key = f"name:{source.name}" if source.name else f"model:{header.eval.model}"
        groups.setdefault(key, []).append((source, header))
    models: list[list[_Log]] = []
    for members in groups.values():
        source, header = members[0]
        name = source.name or _model_name(header, source.path)
        _check_model_tasks(name, members, only)
        wanted = [s for s, h in members if only is None or h.eval.task in only]
        models.append([_Log(s.path, _read_log(s.path, header_only=False), name) for s in wanted])
    _check_shared_task(models)
    tasks = {log.task for logs in models for log in logs}
    doc_ids = {task: _doc_ids(task, models) for task in tasks}
    return [_model(logs, doc_ids) for logs in models]


def _require_inspect() -> None:
    try:
        import inspect_ai.log  # noqa: F401
    except ImportError:
        raise ConfigError(
            "evalsuite import inspect needs inspect-ai, an optional extra: pip install 'evalsuite[inspect]'"
        ) from None


def _read_log(path: Path, *, header_only: bool) -> EvalLog:
    """A log read by Inspect, checked to be a finished evaluation with samples; any file Inspect cannot
    read is one DataError."""
    from inspect_ai.log import read_eval_log

    if path.is_dir():
        raise DataError(f"{path}: a folder; name the Inspect log files in it (*.eval or *.json)")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: not an Inspect log (Inspect writes .eval and .json logs)")
    try:
        if header_only:
            log = read_eval_log(str(path), header_only=True)
        else:
            log = read_eval_log(str(path), resolve_attachments=True, exclude_fields=set(UNREAD))
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:  # pydantic's errors are ValueErrors
        detail = " ".join(str(error).replace(str(path), "the file").split())[:200] or type(error).__name__
        raise DataError(f"{path}: not an Inspect log Inspect can read ({detail})") from None
    where = f"{path}: Inspect log of task {log.eval.task!r}"
    if log.status != "success":
        why = f" ({_first_line(log.error.message)})" if log.error is not None else ""
        raise DataError(
            f"{where} has status {log.status!r}{why}: not a finished evaluation, its samples and scores "
            "incomplete; import a log whose status is 'success' (rerun it, or resume it: inspect eval-retry)"
        )
    if log.invalidated:
        raise DataError(f"{where} is marked invalidated: its results were withdrawn")
    if not header_only and not log.samples:
        raise DataError(
            f"{where} has no samples (written with --no-log-samples?): evalsuite needs the per-sample scores"
        )
    if log.results is None:
        raise DataError(f"{where} has no results: not a finished evaluation")
    return log


def _first_line(text: str) -> str:
    line = next((line for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= 120 else line[:117] + "..."


def _model_name(log: EvalLog, path: Path) -> str:
    """The model's name from Inspect's ``eval.model``: its last path component (``openai/gpt-4o-mini``
    gives ``gpt-4o-mini``), made a valid evalsuite name."""
    given = log.eval.model
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", given.rstrip("/").rsplit("/", 1)[-1]).strip("-._")
    if not re.fullmatch(NAME_PATTERN, name):
        raise DataError(
            f"{path}: model {given!r} gives no usable name; name it on the command line: NAME=LOG"
        )
    return name


def _check_model_tasks(
    name: str, members: Sequence[tuple[Source, EvalLog]], only: Collection[str] | None
) -> None:
    """Each model has each task once, and every task asked for with --task."""
    seen: dict[str, Path] = {}
    for source, header in members:
        task = header.eval.task
        if task in seen:
            raise DataError(
                f"{seen[task]} and {source.path}: two logs of task {task!r} for model {name!r}; to compare "
                "them, name each: NAME=LOG"
            )
        seen[task] = source.path
    for task in only or ():
        if task not in seen:
            raise DataError(
                f"model {name!r} has no log of task {task!r}{did_you_mean(task, seen)}; its logs are of "
                f"{', '.join(repr(t) for t in seen)}"
            )


def _check_shared_task(models: Sequence[Sequence[_Log]]) -> None:
    """Logs of different tasks cannot be compared: say so before the core asks for --task."""
    if len(models) < 2:
        return
    shared = set.intersection(*({log.task for log in logs} for logs in models))
    if not shared:
        first, other = models[0][0], next(logs[0] for logs in models[1:])
        raise DataError(
            f"the logs share no task: {first.path} is task {first.task!r} of model {first.name!r}, "
            f"{other.path} task {other.task!r} of model {other.name!r}; a paired comparison needs logs of "
            "the same task"
        )


def _sample_ids(log: _Log) -> list[str | int]:
    return list(dict.fromkeys(s.id for s in log.log.samples or ()))


def _doc_ids(task: str, models: Sequence[Sequence[_Log]]) -> dict[str | int, int]:
    """Each sample id's doc_id: the id itself where every id is a whole number >= 0, else its place in
    sorted order (numbers first). The models must have the same samples; that is checked here, where the
    original ids can still be named."""
    logs = [log for logs in models for log in logs if log.task == task]
    reference = _sample_ids(logs[0])
    for log in logs[1:]:
        mine = _sample_ids(log)
        theirs, ours = set(reference), set(mine)
        only_first = [i for i in reference if i not in ours]
        only_mine = [i for i in mine if i not in theirs]
        if only_first or only_mine:
            example = (
                f"sample {only_first[0]!r} only in {logs[0].path}"
                if only_first
                else f"sample {only_mine[0]!r} only in {log.path}"
            )
            raise DataError(
                f"task {task!r}: models {logs[0].name!r} and {log.name!r} were evaluated on different "
                f"samples ({len(reference)} and {len(mine)}; {example}); a paired comparison needs the same "
                "samples: rerun with the same --limit and --sample-id"
            )
    if all(isinstance(i, int) and i >= 0 for i in reference):
        return {i: int(i) for i in reference}
    ordered = sorted(reference, key=lambda i: (0, i, "") if isinstance(i, int) else (1, 0, i))
    return {sample_id: number for number, sample_id in enumerate(ordered)}


def _model(logs: Sequence[_Log], doc_ids: Mapping[str, Mapping[str | int, int]]) -> ImportedModel:
    first = logs[0]
    tasks: dict[str, ImportedTask] = {}
    records: list[SampleRecord] = []
    files: list[dict[str, JSONValue]] = []
    for log in logs:
        digest = hashlib.sha256(log.path.read_bytes()).hexdigest()
        files.append(_file_provenance(log, digest))
        values = _reduced(log)
        tasks[log.task] = _task(log, values)
        records += _records(log, tasks[log.task], values, doc_ids[log.task])
    spec = first.log.eval
    provenance: dict[str, JSONValue] = {
        "format": FORMAT,
        "logs": files,
        "inspect_ai_version": spec.packages.get("inspect_ai"),
        "model": spec.model,
        "model_base_url": spec.model_base_url,
        "model_args": spec.model_args,
        "model_generate_config": spec.model_generate_config.model_dump(mode="json", exclude_none=True),
        "revision": spec.revision.model_dump(mode="json") if spec.revision is not None else None,
    }
    return ImportedModel(
        name=first.name,
        origin=", ".join(str(log.path) for log in logs),
        path=first.path,
        tasks=tasks,
        records=tuple(records),
        info=_info(first, str(files[0]["sha256"])),
        provenance=jsonable(provenance),
    )


def _file_provenance(log: _Log, digest: str) -> dict[str, JSONValue]:
    spec, stats = log.log.eval, log.log.stats
    return dict(
        jsonable(
            {
                "path": str(log.path),
                "sha256": digest,
                "task": log.task,
                "eval_id": spec.eval_id,
                "run_id": spec.run_id,
                "task_id": spec.task_id,
                "created": spec.created,
                "started_at": stats.started_at,
                "completed_at": stats.completed_at,
                "model_usage": {
                    k: v.model_dump(mode="json", exclude_none=True) for k, v in stats.model_usage.items()
                },
            }
        )
    )


@dataclass(frozen=True)
class _Reduced:
    """One scorer under one reducer: Inspect's per-sample values (reduced over epochs) and what it
    reported of them."""

    scorer: str
    reducer: str
    values: Mapping[str | int, float]  # sample id -> value_to_float of the reduced score
    reported: Mapping[str, float]  # Inspect's metrics of it: accuracy, stderr ...
    reported_params: Mapping[str, bool]  # metric -> whether it was given parameters (e.g. its own to_float)


def _reduced(log: _Log) -> list[_Reduced]:
    """Every (scorer, reducer) of a log with its per-sample numbers and what Inspect reported of them.
    Every score of every epoch must be one number (checked on the samples, where the message can name
    the epoch)."""
    for sample in log.log.samples or []:
        for scorer, score in (sample.scores or {}).items():
            _number(score.value, f"{log.path}: sample {sample.id!r}, epoch {sample.epoch}, scorer {scorer!r}")
    results = log.log.results.scores if log.log.results is not None else []
    reduced = []
    for scorer, reducer, values in _reductions(log):
        result = next(
            (r for r in results if r.scorer == scorer and (r.reducer or DEFAULT_REDUCER) == reducer), None
        )
        metrics = result.metrics if result is not None else {}
        where = f"{log.path}: scorer {scorer!r} ({reducer}), sample"
        reduced.append(
            _Reduced(
                scorer=scorer,
                reducer=reducer,
                values={i: _number(value, f"{where} {i!r}") for i, value in values.items()},
                reported={name: float(metric.value) for name, metric in metrics.items()},
                reported_params={name: bool(metric.params) for name, metric in metrics.items()},
            )
        )
    return reduced


def _reductions(log: _Log) -> list[tuple[str, str, Mapping[str | int, object]]]:
    """(scorer, reducer, sample id -> reduced score): ``log.reductions``, what Inspect computed its
    metrics from; where a log of one epoch has none, each sample's own score."""
    samples = log.log.samples or []
    if log.log.reductions:
        return [
            (
                reduction.scorer,
                reduction.reducer or DEFAULT_REDUCER,
                {s.sample_id: s.value for s in reduction.samples if s.sample_id is not None},
            )
            for reduction in log.log.reductions
        ]
    if _epochs(log) > 1:
        raise DataError(
            f"{log.path}: {_epochs(log)} epochs but no reduced scores (log.reductions): evalsuite imports "
            "one value per sample, Inspect's reduction over the epochs"
        )
    scorers = dict.fromkeys(name for sample in samples for name in sample.scores or {})
    return [
        (
            scorer,
            DEFAULT_REDUCER,
            {s.id: s.scores[scorer].value for s in samples if s.scores and scorer in s.scores},
        )
        for scorer in scorers
    ]


def _epochs(log: _Log) -> int:
    return log.log.eval.config.epochs or 1


def _number(value: object, where: str) -> float:
    """A score as one number, by Inspect's own ``value_to_float``; what it would turn into 0 with only a
    warning (a list, a dict, a word it does not know) is refused instead."""
    from inspect_ai.scorer import CORRECT, INCORRECT, NOANSWER, PARTIAL, value_to_float

    if isinstance(value, bool | int | float) or (
        isinstance(value, str)
        and (value in (CORRECT, INCORRECT, PARTIAL, NOANSWER) or value.lower() in WORDS or _numeric(value))
    ):
        number = value_to_float()(value)
        if not math.isfinite(number):
            raise DataError(f"{where}: score {value!r} is not a finite number")
        return number
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise DataError(
        f"{where}: score {shown} is not one number; evalsuite imports scores that are 'C', 'I', 'P', 'N', "
        "numbers or booleans (Inspect's value_to_float), not lists or dicts"
    )


def _numeric(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _task(log: _Log, reduced: Sequence[_Reduced]) -> ImportedTask:
    """A task's definition from its log: one metric per scorer (``scorer:reducer`` where a scorer has
    several reducers), each a mean with the value Inspect reported, and what two models must share."""
    spec, plan = log.log.eval, log.log.plan
    reducers: dict[str, list[str]] = {}
    for item in reduced:
        reducers.setdefault(item.scorer, []).append(item.reducer)
    metrics = []
    for item in reduced:
        reported = next(
            (item.reported[m] for m in MEANS if m in item.reported and not item.reported_params[m]), None
        )
        metrics.append(
            ImportedMetric(
                name=metric_name(item.scorer, item.reducer, reducers[item.scorer]),
                aggregation="mean",
                function=None,
                # Inspect's scores have no direction; its "accuracy" is a share of right answers
                higher_is_better=True if "accuracy" in item.reported else None,
                reported=reported,
            )
        )
    config = spec.config
    scorers = [{"name": s.name, "options": s.options} for s in spec.scorers or []]
    settings = {
        "task_version": spec.task_version,
        "task_args": spec.task_args,
        "dataset": {"name": spec.dataset.name, "shuffled": spec.dataset.shuffled},
        "solver": spec.solver,
        "solver_args": spec.solver_args,
        "plan": plan.model_dump(
            mode="json", exclude_none=True, exclude={"steps": {"__all__": {"params_passed"}}}
        ),
        "scorers": scorers,
        "epochs": _epochs(log),
        "epochs_reducer": config.epochs_reducer,
    }
    results = log.log.results
    limit = config.limit
    source = spec.task_registry_name or spec.task_file or spec.task
    return ImportedTask(
        name=log.task,
        output_type="generate_until",
        num_fewshot=0,  # Inspect has no few-shot count: examples a task shows are in its plan, compared
        metrics=tuple(metrics),
        limit=limit if isinstance(limit, int) and limit > 0 else None,
        source=f"inspect ({source})",
        settings=jsonable(settings),
        details=jsonable(
            {
                "task_id": spec.task_id,
                "task_file": spec.task_file,
                "task_registry_name": spec.task_registry_name,
                "dataset": spec.dataset.model_dump(mode="json", exclude={"sample_ids"}),
                "limit": limit,
                "sample_id": config.sample_id,
                "scores": [
                    {
                        "name": s.name,
                        "scorer": s.scorer,
                        "reducer": s.reducer,
                        "metrics": {k: m.value for k, m in s.metrics.items()},
                    }
                    for s in (results.scores if results is not None else [])
                ],
                "total_samples": results.total_samples if results is not None else None,
                "completed_samples": results.completed_samples if results is not None else None,
                **settings,
            }
        ),
    )


def _records(
    log: _Log, task: ImportedTask, reduced: Sequence[_Reduced], doc_ids: Mapping[str | int, int]
) -> list[SampleRecord]:
    """One record per sample: its first epoch's input, target and output, the reduced scores."""
    names = dict(zip(((r.scorer, r.reducer) for r in reduced), task.metric_names, strict=True))
    first: dict[str | int, EvalSample] = {}
    seen: set[tuple[str | int, int]] = set()
    for sample in log.log.samples or []:
        if (sample.id, sample.epoch) in seen:
            raise DataError(f"{log.path}: sample {sample.id!r} appears twice in epoch {sample.epoch}")
        seen.add((sample.id, sample.epoch))
        if sample.id not in first or sample.epoch < first[sample.id].epoch:
            first[sample.id] = sample
    records = []
    for sample_id, sample in first.items():
        metrics: dict[str, JSONValue] = {
            names[(r.scorer, r.reducer)]: r.values[sample_id] for r in reduced if sample_id in r.values
        }
        error = None
        if not metrics:
            error = _first_line(sample.error.message) if sample.error is not None else "not scored by Inspect"
        answers = {name: score.answer for name, score in (sample.scores or {}).items()}
        records.append(
            SampleRecord(
                model=log.name,
                task=log.task,
                doc_id=doc_ids[sample_id],
                prompt=_prompt(sample),
                target=jsonable(sample.target),
                generation=sample.output.completion,
                filtered=next(iter(answers.values())) if len(answers) == 1 else (answers or None),
                metrics=metrics,
                error=error,
                doc=_doc(sample),
            )
        )
    return records


def _prompt(sample: EvalSample) -> str:
    """The sample's input as text: itself, the one user message's text, or each message as ``role: text``."""
    if isinstance(sample.input, str):
        return sample.input
    if len(sample.input) == 1 and sample.input[0].role == "user":
        return sample.input[0].text
    return "\n\n".join(f"{message.role}: {message.text}" for message in sample.input)


def _doc(sample: EvalSample) -> dict[str, JSONValue]:
    """The sample as a dataset row: its metadata's fields (so ``cluster_by`` can name one), then Inspect's
    id, input, target and choices (a metadata field of one of those names is kept as ``metadata.NAME``).
    Chat messages keep their role and text: the rest of a message (its random id) differs between runs."""
    own: dict[str, Any] = {
        "id": sample.id,
        "input": sample.input
        if isinstance(sample.input, str)
        else [{"role": m.role, "text": m.text} for m in sample.input],
        "target": sample.target,
    }
    if sample.choices is not None:
        own["choices"] = sample.choices
    fields = {(f"metadata.{k}" if k in own else k): v for k, v in sample.metadata.items()}
    return dict(jsonable({**fields, **own}))


def _info(log: _Log, digest: str) -> ModelInfoEntry:
    """What Inspect knows of the model is its name and provider; the rest is "unknown" or 0, as for a
    served model."""
    return ModelInfoEntry(
        architecture="unknown",
        model_type="unknown",
        parameters=0,
        active_parameters=0,
        dtype="unknown",
        quantization="unknown",
        weight_memory_bytes=0,
        fingerprint=f"inspect-log-sha256:{digest[:32]}",  # names the log: the weights are not known
        device=f"inspect {log.log.eval.model} (imported)",
    )


__all__ = ["FORMAT", "read"]
