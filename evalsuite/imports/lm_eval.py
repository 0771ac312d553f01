"""The lm-eval reader of ``evalsuite import``: what ``lm_eval ... --output_path OUT --log_samples`` wrote.

lm-eval 0.4 writes, per model, ``OUT/<model name, sanitized>/results_<time>.json`` (aggregated results,
each task's config, the model's arguments, versions) and one ``samples_<task>_<time>.jsonl`` per task
with the same ``<time>``: one line per (document, filter), holding the document, the target (as text),
the requests' arguments, the model's raw and filtered responses (as text) and the per-sample metric
values. This module finds those files, checks them, and turns them into
:class:`~evalsuite.imports.core.ImportedModel` values; :mod:`evalsuite.imports.core` does the rest.

A record is what a run of evalsuite would have written for the same answers
(:func:`evalsuite.tasks.evaluate.score_task`): the prompt (the first request's context), the choices
with their log-likelihoods for multiple choice, the generation and what each filter made of it for
generation, the document's log-likelihood for rolling log-likelihood tasks, and the metrics named as
evalsuite names them (``acc``; ``exact_match:strict-match`` where a task has several filters,
:func:`evalsuite.tasks.scoring.metric_name`). What lm-eval does not log cannot be imported: requests
that failed (lm-eval has no per-sample errors), next-token distributions (no token KL), timings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from evalsuite.config import format_validation_error
from evalsuite.errors import DataError, did_you_mean
from evalsuite.imports.core import ImportedMetric, ImportedModel, ImportedTask, Source
from evalsuite.manifest import ModelInfoEntry
from evalsuite.records import ChoiceScore, JSONValue, SampleRecord
from evalsuite.schema import NAME_PATTERN
from evalsuite.tasks.scoring import finite, jsonable, metric_name

FORMAT = "lm-eval"
RESULTS_GLOB = "results_*.json"
# what a task's config says about where its data lay, not what the data are: two machines with the data
# in different folders ran the same task (the documents themselves are compared one by one)
LOCATION_KEYS = ("metadata", "dataset_path", "dataset_kwargs")
# the facts of a results file kept in the manifest (models[name].imported), where lm-eval wrote them
PROVENANCE_KEYS = (
    "lm_eval_version",
    "git_hash",
    "date",
    "transformers_version",
    "model_source",
    "model_name",
    "system_instruction",
    "system_instruction_sha",
    "chat_template_sha",
    "fewshot_as_multiturn",
    "max_length",
    "total_evaluation_time_seconds",
)
RUN_KEYS = (  # of its "config": how lm-eval was run
    "model",
    "model_args",
    "model_num_parameters",
    "model_dtype",
    "model_revision",
    "model_sha",
    "batch_size",
    "device",
    "limit",
    "bootstrap_iters",
    "gen_kwargs",
    "random_seed",
    "numpy_seed",
    "torch_seed",
    "fewshot_seed",
)


class _Line(BaseModel):
    """One line of a samples file, as lm-eval 0.4's EvaluationTracker writes it (hashes and each metric's
    value are further keys)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    doc_id: StrictInt
    doc: JSONValue = None
    target: JSONValue = None
    arguments: dict[str, dict[str, JSONValue]]
    resps: list[JSONValue]
    filtered_resps: list[JSONValue]
    filter: StrictStr
    metrics: list[StrictStr]

    def value(self, metric: str) -> JSONValue:
        return (self.model_extra or {})[metric]


@dataclass(frozen=True)
class _Results:
    """A results file and the samples files of its run."""

    path: Path
    data: dict[str, Any]
    samples: dict[str, Path]  # task -> its samples file


def read(sources: Sequence[Source], only: Collection[str] | None = None) -> list[ImportedModel]:
    """One model per source (a folder lm-eval wrote, or one results file in it); ``only``: these tasks."""
    return [read_model(source, only) for source in sources]


def read_model(source: Source, only: Collection[str] | None = None) -> ImportedModel:
    results = _results(source.path, only)
    data = results.data
    run = _mapping(data.get("config"))
    name = source.name or _model_name(data, results.path)
    tasks = {task: _task(task, data, results.path) for task in results.samples}
    records: list[SampleRecord] = []
    for task, path in results.samples.items():
        found = _records(path, name, tasks[task], data)
        # a metric process_results gives that the task's metric_list does not name: lm-eval's default
        # aggregation for it, as for any unlisted metric ("acc:filter" -> "acc", as a run splits it)
        declared = {m.name.split(":", 1)[0] for m in tasks[task].metrics}
        unnamed = sorted({m.split(":", 1)[0] for r in found for m in r.metrics} - declared)
        if unnamed:
            tasks[task] = _task(task, data, results.path, unnamed)
        records += found
    digest = hashlib.sha256(results.path.read_bytes()).hexdigest()
    provenance: dict[str, JSONValue] = {
        "format": FORMAT,
        "results": str(results.path),
        "results_sha256": digest,
        "samples": {task: str(path) for task, path in results.samples.items()},
        **{key: data[key] for key in PROVENANCE_KEYS if key in data},
        **{key: run[key] for key in RUN_KEYS if key in run},
    }
    return ImportedModel(
        name=name,
        origin=str(results.path),
        path=results.path,
        tasks=tasks,
        records=tuple(records),
        info=_info(data, run, digest),
        provenance=jsonable(provenance),
    )


def _results(path: Path, only: Collection[str] | None) -> _Results:
    """The results file a source names, read and checked, with its samples files."""
    file = _results_file(path)
    data = _read_json(file)
    configs = data.get("configs")
    if not isinstance(data.get("results"), dict) or not isinstance(configs, dict):
        raise DataError(
            f"{file}: not lm-eval results (no 'results' and 'configs'): evalsuite reads what lm-eval 0.4 "
            "writes with --output_path"
        )
    stamp = file.stem.removeprefix("results_")
    written = sorted(file.parent.glob(f"samples_*_{stamp}.jsonl"))
    if not written:
        raise DataError(
            f"{file}: no samples files beside it (samples_<task>_{stamp}.jsonl): lm-eval writes them only "
            "with --log_samples; rerun it with --log_samples"
        )
    for task in only or ():
        if task not in configs:
            raise DataError(
                f"{file}: no task {task!r}{did_you_mean(task, configs)}; lm-eval evaluated "
                f"{', '.join(configs) or 'none'} there"
            )
    samples = {}
    for task in configs if only is None else only:
        sample_file = file.parent / f"samples_{task}_{stamp}.jsonl"
        if not sample_file.is_file():
            raise DataError(
                f"{file}: no samples file for task {task!r} ({sample_file.name}): was it deleted, or "
                "written by another run?"
            )
        samples[str(task)] = sample_file
    return _Results(file, data, samples)


def _results_file(path: Path) -> Path:
    """A results file, or the one results file of a folder (or of its one model subfolder, as
    ``--output_path OUT`` nests them in ``OUT/<model>/``)."""
    if path.is_file():
        if not re.fullmatch(r"results_.+\.json", path.name):
            raise DataError(
                f"{path}: not an lm-eval results file (results_<time>.json); name the folder lm-eval "
                "wrote or the results file in it"
            )
        return path
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    found = sorted(path.glob(RESULTS_GLOB))
    if not found:
        below = sorted({p.parent for p in path.glob(f"*/{RESULTS_GLOB}")})
        if len(below) > 1:
            names = ", ".join(p.name for p in below)
            raise DataError(
                f"{path}: holds the lm-eval results of {len(below)} models ({names}); pass each model's "
                "folder as its own PATH (NAME=PATH)"
            )
        if not below:
            raise DataError(f"{path}: no lm-eval results file (results_<time>.json) in it or its subfolders")
        found = sorted(below[0].glob(RESULTS_GLOB))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(
            f"{found[0].parent}: {len(found)} lm-eval results files ({names}), from as many runs: pass the "
            f"one wanted, e.g. {found[-1]}"
        )
    return found[0]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON: {error.msg} (line {error.lineno})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not lm-eval results (expected a JSON object)")
    return data


def _model_name(data: Mapping[str, Any], path: Path) -> str:
    """The model's name from lm-eval's ``model_name`` (the ``pretrained=`` argument): its last path
    component (``meta-llama/Llama-3.2-1B`` gives ``Llama-3.2-1B``), made a valid evalsuite name."""
    given = data.get("model_name")
    if not isinstance(given, str) or not given.strip("/"):
        raise DataError(f"{path}: names no model (no 'model_name'); name it on the command line: NAME=PATH")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", given.rstrip("/").rsplit("/", 1)[-1]).strip("-._")
    if not re.fullmatch(NAME_PATTERN, name):
        raise DataError(
            f"{path}: model {given!r} gives no usable name; name it on the command line: NAME=PATH"
        )
    return name


def _task(task: str, data: Mapping[str, Any], path: Path, unlisted: Sequence[str] = ()) -> ImportedTask:
    """A task's definition from the results file: output type, few-shot count, metrics with their
    aggregation, sense and the value lm-eval computed (``unlisted``: metrics the samples give beyond
    those the results file names), and the config two models must share."""
    config = data["configs"][task]
    if not isinstance(config, dict):
        raise DataError(f"{path}: configs.{task}: expected the task's config (a JSON object)")
    output_type = config.get("output_type")
    if not isinstance(output_type, str):
        raise DataError(f"{path}: configs.{task}: no output_type")
    shots = _mapping(data.get("n-shot")).get(task, config.get("num_fewshot") or 0)
    if not isinstance(shots, int):
        raise DataError(f"{path}: n-shot.{task}: expected a whole number (got {shots!r})")
    listed = [
        m for m in config.get("metric_list") or [] if isinstance(m, dict) and isinstance(m.get("metric"), str)
    ]
    higher = _mapping(_mapping(data.get("higher_is_better")).get(task))
    bases = [m["metric"] for m in listed] or sorted(str(m) for m in higher)
    bases += [m for m in unlisted if m not in bases]
    filters = _filters(config)
    reported = _mapping(data["results"].get(task))
    metrics = tuple(
        _metric(task, base, f, filters, listed, higher, reported, path) for f in filters for base in bases
    )
    limit = _mapping(data.get("config")).get("limit")
    settings = {key: value for key, value in config.items() if key not in LOCATION_KEYS}
    settings["num_fewshot"] = shots
    version = _mapping(data.get("versions")).get(task)
    if version is not None:
        settings["version"] = version
    source = _mapping(config.get("metadata")).get("config_source")
    return ImportedTask(
        name=task,
        output_type=output_type,
        num_fewshot=shots,
        metrics=metrics,
        limit=limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None,
        source=f"lm-eval ({source})" if isinstance(source, str) else "lm-eval",
        settings=jsonable(settings),
        details=jsonable(
            {
                "config": config,
                "n_samples": _mapping(data.get("n-samples")).get(task),
                "version": version,
                "lm_eval_limit": limit,
            }
        ),
    )


def _filters(config: Mapping[str, Any]) -> list[str]:
    named = [f.get("name") for f in config.get("filter_list") or [] if isinstance(f, dict)]
    return [str(name) for name in named if name is not None] or ["none"]


def _metric(
    task: str,
    base: str,
    filter_key: str,
    filters: Sequence[str],
    listed: Sequence[Mapping[str, Any]],
    higher: Mapping[str, Any],
    reported: Mapping[str, Any],
    path: Path,
) -> ImportedMetric:
    """One metric under one filter: lm-eval's aggregation for it (the task's metric_list, else lm-eval's
    default for the metric, else the mean, as a run aggregates), its sense, and the value lm-eval reported."""
    from lm_eval.api.registry import get_aggregation, get_metric_aggregation

    entry = next((m for m in listed if m["metric"] == base), {})
    named = entry.get("aggregation")
    function: Callable[[list[Any]], float] | None = None
    if isinstance(named, str):
        # a registered name ("mean"), or a function lm-eval wrote as its repr ("<function mean at 0x...>")
        match = re.fullmatch(r"<function (\w+) at 0x[0-9a-f]+>", named)
        function = get_aggregation(match.group(1) if match else named)
        if function is None:
            raise DataError(
                f"{path}: configs.{task}: metric {base!r} aggregates by {named!r}, which this lm-eval does "
                "not have; evalsuite cannot compute its interval"
            )
    else:
        function = get_metric_aggregation(base)
    sense = higher.get(base, entry.get("higher_is_better"))
    value = reported.get(f"{base},{filter_key}")
    aggregation = getattr(function, "__name__", "mean") if function is not None else "mean"
    return ImportedMetric(
        name=metric_name(base, filter_key, filters),
        aggregation=aggregation,
        function=function,
        higher_is_better=sense if isinstance(sense, bool) else None,
        reported=float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None,
    )


def _records(path: Path, model: str, task: ImportedTask, data: Mapping[str, Any]) -> list[SampleRecord]:
    """One record per document of a samples file, from its lines (one per document and filter)."""
    config = data["configs"][task.name]
    filters = _filters(config)
    delimiter = config.get("target_delimiter", " ")
    delimiter = delimiter if isinstance(delimiter, str) else " "
    by_doc: dict[int, dict[str, tuple[int, _Line]]] = {}
    for number, line in _lines(path):
        if line.filter not in filters:
            raise DataError(
                f"{path}:{number}: filter {line.filter!r} is not one of the task's ({', '.join(filters)})"
            )
        missing = [m for m in line.metrics if m not in (line.model_extra or {})]
        if missing:
            raise DataError(f"{path}:{number}: lists metric {missing[0]!r} but gives no value for it")
        seen = by_doc.setdefault(line.doc_id, {})
        if line.filter in seen:
            raise DataError(
                f"{path}:{number}: a second line for document {line.doc_id} (filter {line.filter!r}); the "
                f"first is on line {seen[line.filter][0]}: duplicate document ids"
            )
        seen[line.filter] = (number, line)
    expected = _mapping(_mapping(data.get("n-samples")).get(task.name)).get("effective")
    if isinstance(expected, int) and expected != len(by_doc):
        raise DataError(
            f"{path}: {len(by_doc)} documents, but the results file says lm-eval evaluated {expected} "
            "(n-samples.effective): the samples file is cut short or from another run"
        )
    records = []
    for doc_id in sorted(by_doc):
        lines = by_doc[doc_id]
        absent = [f for f in filters if f not in lines]
        if absent:
            raise DataError(f"{path}: document {doc_id} has no line for filter {absent[0]!r}")
        records.append(_record(path, model, task, [lines[f] for f in filters], filters, delimiter))
    return records


def _lines(path: Path) -> Iterator[tuple[int, _Line]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    raw = json.loads(text)
                except json.JSONDecodeError as error:
                    raise DataError(
                        f"{path}:{number}: not valid JSON: {error.msg} (column {error.colno})"
                    ) from None
                try:
                    yield number, _Line.model_validate(raw)
                except ValidationError as error:
                    where = f"{path}:{number}"
                    raise DataError(
                        format_validation_error(error, where) + " (not an lm-eval sample)"
                    ) from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None


def _record(
    path: Path,
    model: str,
    task: ImportedTask,
    lines: Sequence[tuple[int, _Line]],
    filters: Sequence[str],
    delimiter: str,
) -> SampleRecord:
    """A document's record from its lines, the first filter's first: requests and raw responses are
    the same on every line; the filtered responses and metrics are each filter's."""
    number, first = lines[0]
    where = f"{path}:{number}"
    requests = [_arguments(first.arguments[key]) for key in sorted(first.arguments, key=_index)]
    if not requests:
        raise DataError(f"{where}: arguments: no request")
    kind = task.output_type
    prompt = requests[0][0] if requests[0] and isinstance(requests[0][0], str) else ""
    metrics: dict[str, JSONValue] = {}
    for _, line in lines:
        metrics.update({metric_name(m, line.filter, filters): jsonable(line.value(m)) for m in line.metrics})
    choices = None
    if kind == "multiple_choice":
        # lm-eval adds unconditional requests (an empty context) after the choices for acc_mutual_info
        scored = [r for r in requests if r and r[0] == prompt]
        choices = [
            _choice(request, answer, delimiter, where)
            for request, answer in zip(scored, first.resps, strict=False)
        ]
    generation, filtered, loglikelihood = None, None, None
    if kind == "generate_until":
        generation = str(_first(first.resps, where))
        values = {
            line.filter: jsonable(line.filtered_resps[0] if line.filtered_resps else None)
            for _, line in lines
        }
        filtered = values[filters[0]] if len(filters) == 1 else values
    if kind == "loglikelihood_rolling":
        loglikelihood = finite(_number(_first(first.resps, where), where))
    return SampleRecord(
        model=model,
        task=task.name,
        doc_id=first.doc_id,
        prompt=prompt,
        target=_target(first.target, kind),
        choices=choices,
        generation=generation,
        filtered=filtered,
        loglikelihood=loglikelihood,
        metrics=metrics,
        doc=jsonable(first.doc) if isinstance(first.doc, dict) else {"value": jsonable(first.doc)},
    )


def _index(key: str) -> int:
    """``gen_args_3`` -> 3: requests in lm-eval's order, past gen_args_9."""
    match = re.fullmatch(r"gen_args_(\d+)", key)
    return int(match.group(1)) if match else -1


def _arguments(args: Mapping[str, JSONValue]) -> list[JSONValue]:
    """A request's arguments in order (``arg_0``: the context; ``arg_1``: the continuation or the
    generation settings)."""
    keys = sorted(args, key=lambda k: int(k[4:]) if re.fullmatch(r"arg_\d+", k) else -1)
    return [args[k] for k in keys]


def _choice(request: Sequence[JSONValue], answer: JSONValue, delimiter: str, where: str) -> ChoiceScore:
    """One option with its log-likelihood; lm-eval writes the answer ``(log-likelihood, is_greedy)`` as
    text, per repeat, and the option as the continuation, the task's target delimiter first."""
    text = str(request[1]) if len(request) > 1 else ""
    pair = answer[0] if isinstance(answer, list) and answer and isinstance(answer[0], list) else answer
    if not isinstance(pair, list) or len(pair) != 2:
        raise DataError(f"{where}: resps: expected [log-likelihood, is_greedy] per choice (got {pair!r})")
    return ChoiceScore(
        text=text.removeprefix(delimiter),
        loglikelihood=finite(_number(pair[0], where)),
        is_greedy=str(pair[1]) == "True",
    )


def _first(value: JSONValue, where: str) -> JSONValue:
    """The first response of the first request (lm-eval keeps one per repeat)."""
    while isinstance(value, list):
        if not value:
            raise DataError(f"{where}: resps: no response")
        if not isinstance(value[0], list):
            return value[0]
        value = value[0]
    return value


def _number(value: JSONValue, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: resps: expected a log-likelihood (got {value!r})") from None


def _target(value: JSONValue, kind: str) -> JSONValue:
    """lm-eval writes every target as text; a multiple-choice target that is a whole number was the
    answer's index (``doc_to_target`` of an index), as a run records it."""
    if kind == "multiple_choice" and isinstance(value, str) and re.fullmatch(r"\d+", value):
        return int(value)
    return value


def _info(data: Mapping[str, Any], run: Mapping[str, Any], digest: str) -> ModelInfoEntry:
    """What lm-eval recorded about the model; what it did not is "unknown" or 0, as for a served model."""
    parameters = run.get("model_num_parameters")
    count = parameters if isinstance(parameters, int) and not isinstance(parameters, bool) else 0
    dtype = run.get("model_dtype")
    backend, device = run.get("model"), run.get("device")
    where = f"lm-eval {backend}" if isinstance(backend, str) else "lm-eval"
    max_length = data.get("max_length")
    return ModelInfoEntry(
        architecture="unknown",
        model_type="unknown",
        parameters=count,
        active_parameters=count,
        dtype=str(dtype).removeprefix("torch.") if isinstance(dtype, str) and dtype else "unknown",
        quantization="unknown",
        weight_memory_bytes=0,
        fingerprint=f"results-sha256:{digest[:32]}",  # names the results file: the weights are not known
        device=f"{where} on {device} (imported)"
        if isinstance(device, str) and device
        else f"{where} (imported)",
        max_length=max_length if isinstance(max_length, int) and not isinstance(max_length, bool) else None,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


__all__ = ["FORMAT", "read", "read_model"]
