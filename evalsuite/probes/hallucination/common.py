"""What the hallucination probes share: generation requests for items they build themselves, one engine
call for all of them, and records that keep the model's answer with every decision made about it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lm_eval.api.instance import Instance

from evalsuite.engine import Engine, Outcome
from evalsuite.probes.base import ProbeUnit, Sample, Variant
from evalsuite.probes.hallucination.abstention import Abstention, AbstentionDetector
from evalsuite.probes.metrics import metric
from evalsuite.records import MetricResult, ProbeDetail, SampleRecord
from evalsuite.stats.intervals import IntervalSettings, mean_interval
from evalsuite.tasks.scoring import jsonable

STOP = ("\n\n", "\nQuestion:", "\nPassage:")  # an answer ends at a blank line or the next question


def generation_variant(
    unit: ProbeUnit,
    doc_id: int,
    doc: dict[str, Any],
    prompt: str,
    *,
    until: Sequence[str] = STOP,
    name: str = "answer",
    sampling: float | None = None,
    repeats: int = 1,
    max_tokens: int,
) -> Variant:
    """An item as one generation request: greedy, or ``repeats`` answers sampled at ``sampling``."""
    settings: dict[str, Any] = {"until": list(until), "max_gen_toks": max_tokens}
    if sampling is None:
        settings |= {"do_sample": False, "temperature": 0.0}
    else:
        settings |= {"do_sample": True, "temperature": sampling}
    request = Instance("generate_until", doc, (prompt, settings), 0, (unit.name, doc_id, repeats))
    sample = Sample(doc_id, doc, (request,), prompt, None, None)
    return Variant(sample, name, doc, (request,), prompt, prompt, None)


def generate(
    variants: Sequence[Variant], engine: Engine, progress: Callable[[int], None]
) -> list[list[Outcome]]:
    """Every variant's generations (``repeats`` of them) in one engine call, in order."""
    return engine.run([v.requests[0] for v in variants], progress)


@dataclass(frozen=True)
class Judgement:
    """What a probe decided about one answer: its score, per-sample metrics and the decisions' details."""

    original: str  # the question, passage or answer the item is about
    answer: Any
    score: float
    metrics: dict[str, float]
    details: dict[str, Any]
    target: Any = None


def answer_record(
    unit: ProbeUnit, model: str, variant: Variant, outcome: Outcome, judged: Judgement
) -> SampleRecord:
    """One record of a hallucination probe: the prompt, the raw answer, and what was decided about it."""
    failed = outcome.error is not None
    return SampleRecord(
        model=model,
        task=unit.name,
        doc_id=variant.sample.doc_id,
        variant=variant.name,
        prompt=str(variant.requests[0].args[0]),
        target=jsonable(judged.target),
        generation=None if failed else str(outcome.value),
        filtered=jsonable(judged.answer),
        metrics={} if failed else judged.metrics,
        error=outcome.error,
        doc=jsonable(variant.doc),
        probe=ProbeDetail(
            probe=unit.config.label,
            kind=unit.config.kind,
            task=unit.task_name,
            original=judged.original,
            perturbed=str(variant.requests[0].args[0]),
            answer=jsonable(judged.answer),
            score=None if failed else judged.score,
            details=jsonable(judged.details),
        ),
    )


class GenerationProbe:
    """A probe that asks for one greedy answer per item and judges it; subclasses write ``prepare``,
    ``judge`` and ``summarize``. With a ``detector``, every answer's abstention decision is passed on."""

    adaptive: bool = False
    detector: AbstentionDetector | None = None

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens  # the longest answer generated

    def run(
        self,
        unit: ProbeUnit,
        variants: list[Variant],
        model: str,
        engine: Engine,
        progress: Callable[[int], None],
    ) -> list[SampleRecord]:
        outcomes = [o[0] for o in generate(variants, engine, progress)]
        answers = [str(o.value or "") for o in outcomes]
        decisions: Sequence[Abstention | None] = (
            self.detector.detect(answers) if self.detector is not None else [None] * len(answers)
        )
        return [
            answer_record(unit, model, variant, outcome, self.judge(variant, answer, decision))
            for variant, outcome, answer, decision in zip(variants, outcomes, answers, decisions, strict=True)
        ]

    def judge(self, variant: Variant, answer: str, abstention: Abstention | None) -> Judgement:
        raise NotImplementedError


def rate(
    values: Sequence[float], settings: IntervalSettings, errors: int, higher_is_better: bool | None
) -> MetricResult:
    """The mean of per-sample values in [0, 1] — a share (Wilson interval) or a score such as token F1
    (normal interval, cut to [0, 1], the values the mean can take)."""
    interval = mean_interval(list(values), settings.confidence)
    if interval.low is not None and interval.high is not None:
        interval = replace(interval, low=max(0.0, interval.low), high=min(1.0, interval.high))
    return metric(interval, len(values), errors, higher_is_better)


def scored(records: Sequence[SampleRecord], name: str) -> list[float]:
    """The per-sample values of one metric, over the records that have it."""
    return [float(r.metrics[name]) for r in records if r.error is None and name in r.metrics]
