"""Variants through the engine, and each one scored into a record.

Multiple-choice copies are scored by accuracy: the option with the highest log-likelihood against where
the right option is in that copy (a probe that reorders options moves it). Generation copies go through
the task's own filters and ``process_results`` and are scored by the task's primary metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from evalsuite.engine import Engine, Outcome
from evalsuite.probes.base import ProbeUnit, Variant
from evalsuite.records import ChoiceScore, ProbeDetail, SampleRecord
from evalsuite.tasks.scoring import (
    apply_filters,
    choice_scores,
    jsonable,
    plain_doc,
    process_results,
    response,
    target,
)


def metric_of(unit: ProbeUnit) -> str:
    """What each copy is scored by."""
    if unit.multiple_choice:
        return "acc"
    primary = (unit.task.primary_metric if unit.task is not None else None) or "score"
    return primary.split(":", 1)[0]


def run_variants(
    unit: ProbeUnit,
    variants: Sequence[Variant],
    model: str,
    engine: Engine,
    progress: Callable[[int], None],
) -> list[SampleRecord]:
    """Every variant's requests in one engine call; one record per variant, in the given order."""
    requests = [r for v in variants for r in v.requests]
    outcomes = iter(engine.run(requests, progress))
    records, seen = [], set()
    for variant in variants:
        first = variant.sample.doc_id not in seen  # the document is kept once, on a sample's first copy
        seen.add(variant.sample.doc_id)
        records.append(score(unit, variant, [next(outcomes)[0] for _ in variant.requests], model, first))
    return records


def score(
    unit: ProbeUnit, variant: Variant, outcomes: Sequence[Outcome], model: str, keep_doc: bool = True
) -> SampleRecord:
    error = next((o.error for o in outcomes if o.error is not None), None)
    if unit.multiple_choice:
        record = _multiple_choice(unit, variant, outcomes, model, error)
    else:
        record = _generation(unit, variant, outcomes[0], model, error)
    return record if keep_doc else record.model_copy(update={"doc": {}})


def _multiple_choice(
    unit: ProbeUnit, variant: Variant, outcomes: Sequence[Outcome], model: str, error: str | None
) -> SampleRecord:
    delimiter = unit.lm_task.config.target_delimiter
    answers = [response(r.request_type, o) for r, o in zip(variant.requests, outcomes, strict=True)]
    texts = [str(r.args[1]).removeprefix(delimiter) for r in variant.requests]
    choices = choice_scores(texts, answers)
    picked = int(np.argmax([ll for ll, _ in answers]))
    value = None if error else float(picked == variant.gold)
    if variant.order is None:
        return _record(unit, variant, model, error, value, picked, choices=choices)
    moved = replace(variant, details={**variant.details, "picked_position": picked})
    return _record(unit, moved, model, error, value, variant.order[picked], choices=choices)


def _generation(
    unit: ProbeUnit, variant: Variant, outcome: Outcome, model: str, error: str | None
) -> SampleRecord:
    task = unit.lm_task
    request = variant.requests[0]
    request.resps = [response(request.request_type, outcome)]
    apply_filters(task, [request])
    value: float | None = None
    if error is None:
        scored, error = process_results(task, variant.doc, [request], metric_of(unit))
        value = scored.get(metric_of(unit))
    generation = str(outcome.value) if error is None or outcome.error is None else None
    answer = jsonable(next(iter(request.filtered_resps.values())))
    return _record(unit, variant, model, error, value, answer, generation=generation)


def _record(
    unit: ProbeUnit,
    variant: Variant,
    model: str,
    error: str | None,
    value: float | None,
    answer: Any,
    *,
    choices: list[ChoiceScore] | None = None,
    generation: str | None = None,
) -> SampleRecord:
    sample = variant.sample
    task = unit.lm_task
    return SampleRecord(
        model=model,
        task=unit.name,
        doc_id=sample.doc_id,
        variant=variant.name,
        prompt=str(variant.requests[0].args[0]),
        target=sample.gold if sample.gold is not None else target(task, sample.doc),
        choices=choices,
        generation=generation,
        filtered=answer if generation is not None else None,
        metrics={} if value is None else {metric_of(unit): value},
        error=error,
        doc=plain_doc(sample.doc),
        probe=ProbeDetail(
            probe=unit.config.label,
            kind=unit.config.kind,
            task=unit.task_name,
            original=variant.original,
            perturbed=variant.perturbed,
            answer=answer,
            score=value,
            details=jsonable(variant.details),
        ),
    )


class StaticProbe:
    """A probe whose variants are all known before the model runs: one engine call answers them."""

    adaptive: bool = False

    def run(
        self,
        unit: ProbeUnit,
        variants: list[Variant],
        model: str,
        engine: Engine,
        progress: Callable[[int], None],
    ) -> list[SampleRecord]:
        return run_variants(unit, variants, model, engine, progress)
