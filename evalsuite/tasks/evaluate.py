"""Static tasks through the engine: lm-eval builds the requests and scores the answers; we keep every sample.

This mirrors the core of lm-eval's ``evaluator.evaluate`` (build requests, run them, apply filters,
``process_results`` per document) but sends requests through evalsuite's engine and turns each document
into a :class:`SampleRecord`, with a failed request recorded as that sample's ``error``.
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from lm_eval.api.instance import Instance
from lm_eval.api.metrics import mean as lm_eval_mean

from evalsuite.engine import Engine, Outcome
from evalsuite.errors import DataError
from evalsuite.records import MetricResult, SampleRecord, TaskResult
from evalsuite.stats.aggregates import summarize
from evalsuite.stats.intervals import Interval, IntervalSettings
from evalsuite.tasks.scoring import (
    apply_filters,
    choice_scores,
    finite,
    jsonable,
    metric_name,
    plain_doc,
    process_results,
    response,
    target,
)
from evalsuite.tasks.sources import TaskSpec, check_offline_data, task_manager


@dataclass
class PreparedTask:
    """An lm-eval task with its requests built, ready for a model."""

    spec: TaskSpec
    task: Any  # lm_eval.api.task.Task
    limit: int | None
    num_fewshot: int
    metric_names: tuple[str, ...] = ()  # every metric the task reports, the primary one first
    cluster_by: str | None = None  # from the task file's `metadata: {cluster_by: ...}`

    @property
    def primary_metric(self) -> str | None:
        """What comparisons test unless told otherwise: the task's first metric (and first filter)."""
        return self.metric_names[0] if self.metric_names else None

    @property
    def instances(self) -> list[Instance]:
        return list(self.task.instances)


def build_task(spec: TaskSpec, limit: int | None, num_fewshot: int | None, seed: int) -> PreparedTask:
    """Instantiate the lm-eval task, set few-shot and seed, and build its requests."""
    from lm_eval.api.task import ConfigurableTask

    try:
        if spec.config is not None:
            config = dict(spec.config)
            if num_fewshot is not None:
                config["num_fewshot"] = num_fewshot
            task_class = config.pop("class", ConfigurableTask)  # lm-eval's `class:` key: a Task subclass
            task = task_class(config=config)
        else:
            if spec.task_file is not None:  # offline without its data: say so before indexing lm-eval
                check_offline_data(spec.name, spec.task_file)
            task = _registry_task(spec.name, num_fewshot)
        task.set_fewshot_seed(seed=seed)
        with contextlib.redirect_stderr(io.StringIO()):  # lm-eval draws a tqdm bar here; we show our own
            task.build_all_requests(limit=limit)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"task {spec.name!r} ({spec.source}): cannot build requests: {error}") from error
    if not task.instances:
        raise DataError(f"task {spec.name!r} has no samples")
    shots = int(task.config.num_fewshot or 0)
    metadata = task.config.metadata or {}
    return PreparedTask(spec, task, limit, shots, _metric_names(task), metadata.get("cluster_by"))


def _metric_names(task: Any) -> tuple[str, ...]:
    metrics = [m["metric"] for m in task.config.metric_list or [] if isinstance(m.get("metric"), str)]
    if not metrics:
        metrics = sorted(task.higher_is_better())
    filters = [f["name"] for f in task.config.filter_list or []] or ["none"]
    return tuple(metric_name(m, f, filters) for f in filters for m in metrics)


def _registry_task(name: str, num_fewshot: int | None) -> Any:
    from lm_eval.tasks import get_task_dict

    tasks = _leaves(get_task_dict([name], task_manager()))
    if len(tasks) != 1:
        raise DataError(f"lm-eval task {name!r} is a group of {len(tasks)} tasks; list its subtasks instead")
    task = tasks[0]
    if num_fewshot is not None:
        task.set_config(key="num_fewshot", value=num_fewshot)
    return task


def _leaves(tree: dict[Any, Any]) -> list[Any]:
    out = []
    for value in tree.values():
        out.extend(_leaves(value) if isinstance(value, dict) else [value])
    return out


def score_task(
    prepared: PreparedTask,
    model: str,
    engine: Engine,
    progress: Callable[[int], None],
    docs: Collection[int] | None = None,
) -> list[SampleRecord]:
    """Run the task's requests on one model and return one record per document, in document order;
    only those of ``docs`` when given."""
    task = prepared.task
    instances = [i for i in task.instances if docs is None or i.doc_id in docs]
    for instance in instances:
        instance.resps = []
    outcomes = engine.run(instances, progress)
    errors: dict[int, str] = {}
    for instance, answers in zip(instances, outcomes, strict=True):
        for answer in answers:
            instance.resps.append(response(instance.request_type, answer))
            if answer.error is not None:
                errors.setdefault(instance.doc_id, answer.error)
    apply_filters(task, instances)
    by_doc: dict[int, list[Instance]] = defaultdict(list)
    for instance in instances:
        by_doc[instance.doc_id].append(instance)
    records = []
    for doc_id, doc in task.doc_iterator(limit=prepared.limit):
        if docs is not None and doc_id not in docs:
            continue
        requests = sorted(by_doc[doc_id], key=lambda i: i.idx)
        records.append(_record(prepared, model, doc_id, doc, requests, errors.get(doc_id)))
    return records


def _record(
    prepared: PreparedTask, model: str, doc_id: int, doc: Any, requests: list[Instance], error: str | None
) -> SampleRecord:
    task = prepared.task
    filters = list(requests[0].filtered_resps)
    metrics: dict[str, Any] = {}
    if error is None:
        metrics, error = process_results(task, doc, requests)
    kind = requests[0].request_type
    choices = None
    if task.OUTPUT_TYPE == "multiple_choice":
        choices = choice_scores(task.doc_to_choice(doc), [r.resps[0] for r in requests])
    filtered = None
    if kind == "generate_until":
        values = {key: jsonable(requests[0].filtered_resps[key]) for key in filters}
        filtered = values[filters[0]] if len(filters) == 1 else values
    return SampleRecord(
        model=model,
        task=prepared.spec.name,
        doc_id=doc_id,
        prompt=str(requests[0].args[0]),
        target=target(task, doc),
        choices=choices,
        generation=str(requests[0].resps[0]) if kind == "generate_until" else None,
        filtered=filtered,
        loglikelihood=finite(requests[0].resps[0]) if kind == "loglikelihood_rolling" else None,
        metrics=metrics,
        error=error,
        doc=plain_doc(doc),
    )


def aggregate(
    prepared: PreparedTask,
    model: str,
    records: Sequence[SampleRecord],
    settings: IntervalSettings,
    cluster_by: str | None = None,
) -> TaskResult:
    """Each metric's task-level value (lm-eval's aggregation) with standard error, interval and n.

    ``cluster_by`` (a document field; samples sharing its value are one cluster) overrides the task
    file's ``metadata: {cluster_by: ...}``."""
    task = prepared.task
    aggregations, higher = task.aggregation(), task.higher_is_better()
    ok = [r for r in records if r.error is None]
    cluster_by = cluster_by or prepared.cluster_by
    metrics = {}
    for name in sorted({m for r in ok for m in r.metrics}):
        scored = [r for r in ok if name in r.metrics]
        base = name.split(":", 1)[0]
        function = aggregations.get(base, lm_eval_mean)
        aggregation = getattr(function, "__name__", str(function))
        clusters = [r.doc.get(cluster_by) for r in scored] if cluster_by else None
        interval = summarize(
            [r.metrics[name] for r in scored],
            aggregation,
            function,
            np.random.default_rng(settings.seed),
            settings.confidence,
            clusters,
            settings.resamples,
        )
        metrics[name] = metric_result(
            interval, len(scored), len(records) - len(ok), higher.get(base), aggregation
        )
    for name in prepared.metric_names:  # a metric no sample could be scored on is shown as unmeasured
        if name not in metrics:
            base = name.split(":", 1)[0]
            function = aggregations.get(base, lm_eval_mean)
            metrics[name] = MetricResult(
                value=None,
                stderr=None,
                n=0,
                n_errors=len(records) - len(ok),
                higher_is_better=higher.get(base),
                aggregation=getattr(function, "__name__", str(function)),
            )
    return TaskResult(
        model=model,
        task=prepared.spec.name,
        output_type=str(task.OUTPUT_TYPE),
        num_fewshot=prepared.num_fewshot,
        primary_metric=prepared.primary_metric,
        metrics=metrics,
    )


def metric_result(
    interval: Interval, n: int, errors: int, higher_is_better: bool | None, aggregation: str = "mean"
) -> MetricResult:
    """A metric as results.json keeps it: the interval, how many samples it rests on, and its sense."""
    return MetricResult(
        value=finite(interval.value),
        stderr=interval.stderr,
        ci_low=interval.low,
        ci_high=interval.high,
        confidence=interval.confidence,
        ci_method=interval.method,
        clusters=interval.clusters,
        n=n,
        n_errors=errors,
        higher_is_better=higher_is_better,
        aggregation=aggregation,
    )


__all__ = ["Outcome", "PreparedTask", "aggregate", "build_task", "score_task"]
