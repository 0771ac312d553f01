"""Models recorded in an earlier run directory: the release that shipped, compared with the candidate
without evaluating it again.

A model entry with ``from_run: DIR`` (and optionally ``run_model:``, its name in that run) is not loaded.
At planning time its records in DIR are read and checked against this run: DIR must pass the same
integrity checks as ``evalsuite gate`` (``rundir.open_run``), hold the model, and hold its answers to
every document this run asks of each task and probe unit, with the very same prompt (the same task
version, few-shot examples and seed); anything else is a ConfigError naming the first difference,
before any model loads. Its results are recomputed from those records with this run's statistics
settings, over this run's documents, so that both sides of a comparison rest on the same documents.

``evalsuite run --baseline DIR[:MODEL]`` is the same thing from the command line: it adds the model
(DIR's only model without a baseline, unless MODEL names one) and makes it the baseline of every model
of the config that has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from evalsuite.config import ModelConfig, RunConfig, parse_config
from evalsuite.errors import ConfigError, DataError, did_you_mean
from evalsuite.manifest import ModelEntry
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.rundir import RunDir, load_run, open_run
from evalsuite.stats.intervals import IntervalSettings

ORIGINAL = "original"  # the variant name of a task's own records (SampleRecord.variant's default)

if TYPE_CHECKING:
    from evalsuite.runner import PlannedProbe
    from evalsuite.tasks import PreparedTask


@dataclass(frozen=True)
class RecordedModel:
    """One ``from_run`` model: where it comes from, its manifest entry there and its records here."""

    name: str  # in this run
    source: Path
    run_model: str  # in the earlier run
    entry: ModelEntry
    records: tuple[SampleRecord, ...] = field(repr=False)

    def results(
        self,
        tasks: Sequence[PreparedTask],
        probes: Sequence[PlannedProbe],
        settings: IntervalSettings,
        cluster_by: Sequence[str | None],
    ) -> list[TaskResult]:
        """Its results on this run's tasks and probe units, from its records, with this run's settings
        (``cluster_by``: the config's, per task, as the evaluated models' results take it)."""
        from evalsuite.tasks import aggregate

        out = []
        for task, clusters in zip(tasks, cluster_by, strict=True):
            mine = [r for r in self.records if r.task == task.spec.name]
            out.append(aggregate(task, self.name, mine, settings, clusters))
        for planned in probes:
            mine = [r for r in self.records if r.task == planned.unit.name]
            out.append(planned.probe.summarize(planned.unit, self.name, mine, settings))
        return out


def load_recorded(
    config: RunConfig, tasks: Sequence[PreparedTask], probes: Sequence[PlannedProbe]
) -> dict[str, RecordedModel]:
    """Every ``from_run`` model of the config, read and checked against this run's requests."""
    recorded = {}
    for i, model in enumerate(config.models):
        if model.from_run is None:
            continue
        where = f"models[{i}] ({model.name}, from_run {model.from_run})"
        if config.stats.sequential is not None:
            raise ConfigError(
                f"{where}: stats.sequential evaluates in looks against a baseline it runs; a baseline "
                "recorded in an earlier run has every answer already: drop stats.sequential"
            )
        try:
            run = open_run(model.from_run)
        except DataError as error:
            raise ConfigError(f"{where}: {error}") from None
        source = model.run_model or model.name
        known = sorted(run.manifest.models)
        if source not in run.manifest.models:
            raise ConfigError(f"{where}: that run has no model {source!r}{did_you_mean(source, known)}")
        records = _checked_records(run, source, model.name, tasks, probes, where)
        entry = run.manifest.models[source].model_copy(
            update={"baseline": None, "from_run": f"{model.from_run} ({source})"}
        )
        recorded[model.name] = RecordedModel(model.name, model.from_run, source, entry, records)
    return recorded


def _checked_records(
    run: RunDir,
    source: str,
    name: str,
    tasks: Sequence[PreparedTask],
    probes: Sequence[PlannedProbe],
    where: str,
) -> tuple[SampleRecord, ...]:
    """The source model's records of this run's documents, renamed; a ConfigError at the first task or
    probe unit it lacks, document it did not answer, or prompt that differs."""
    by_key = {(r.task, r.doc_id, r.variant): r for r in run.samples if r.model == source}
    kept: list[SampleRecord] = []
    wanted: list[tuple[str, dict[tuple[int, str], str | None]]] = []
    for task in tasks:
        prompts: dict[tuple[int, str], str | None] = {}
        for instance in sorted(task.instances, key=lambda i: (i.doc_id, i.idx)):
            prompts.setdefault((int(instance.doc_id), ORIGINAL), str(instance.args[0]))
        wanted.append((task.spec.name, prompts))
    for planned in probes:
        adaptive = planned.probe.adaptive  # an attack decides its prompts while it runs: documents only
        prompts = {
            (v.sample.doc_id, v.name): None if adaptive else str(v.requests[0].args[0])
            for v in planned.variants
        }
        wanted.append((planned.unit.name, prompts))
    for unit, prompts in wanted:
        if not any(key[0] == unit for key in by_key):
            raise ConfigError(f"{where}: that run has no records of {unit!r} for {source!r}")
        for (doc_id, variant), prompt in prompts.items():
            record = by_key.get((unit, doc_id, variant))
            if record is None:
                copy = "" if variant == ORIGINAL else f" ({variant})"
                raise ConfigError(
                    f"{where}: {unit!r} document {doc_id}{copy} was not evaluated there: that run "
                    "evaluated fewer documents (a smaller limit?)"
                )
            if prompt is not None and record.prompt != prompt:
                raise ConfigError(
                    f"{where}: {unit!r} document {doc_id} was asked another prompt there (another task "
                    "version, few-shot setting or seed); the comparison would not be paired"
                )
            kept.append(record.model_copy(update={"model": name}))
    return tuple(kept)


def with_baseline_run(config: RunConfig, text: str) -> RunConfig:
    """``--baseline DIR[:MODEL]``: the config with that model added from DIR and made the baseline of
    every model that has none."""
    path, model = _split(text)
    run = load_run(path)
    models = run.manifest.models
    if model is None:
        bases = sorted(name for name, entry in models.items() if entry.baseline is None)
        if len(bases) != 1:
            raise ConfigError(
                f"--baseline {text}: that run has {len(bases)} models without a baseline "
                f"({', '.join(bases)}); name one: --baseline {path}:MODEL"
            )
        model = bases[0]
    elif model not in models:
        raise ConfigError(
            f"--baseline {text}: that run has no model {model!r}{did_you_mean(model, sorted(models))}"
        )
    if any(m.name == model for m in config.models):
        raise ConfigError(
            f"--baseline {text}: this config has a model named {model!r} too; add the earlier one under "
            f"another name instead: {{name: {model}-release, from_run: {path}, run_model: {model}}}"
        )
    added = ModelConfig(name=model, from_run=path.resolve())
    others = [m.model_copy(update={"baseline": m.baseline or model}) for m in config.models]
    data = config.model_copy(update={"models": (added, *others)}).model_dump(mode="json")
    return parse_config(data, "--baseline")


def _split(text: str) -> tuple[Path, str | None]:
    """``DIR`` or ``DIR:MODEL``: the colon splits only where DIR then names a folder."""
    head, colon, tail = text.rpartition(":")
    if colon and tail and Path(head).is_dir():
        return Path(head), tail
    if not Path(text).is_dir():
        raise ConfigError(f"--baseline {text}: no such run directory")
    return Path(text), None
