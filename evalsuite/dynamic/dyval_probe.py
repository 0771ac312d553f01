"""The dyval probes: ``limit`` generated items per difficulty level of one DyVal family
(:mod:`evalsuite.dynamic.dyval`), one greedy answer each, judged against the answer the graph gives.

Metrics (:mod:`evalsuite.probes.kinds.dyval`): ``accuracy`` over every level and ``level_<k>`` per level,
each a share with its Wilson interval; the report draws the levels as a curve. Records: ``doc_id`` the
item's position in the unit (levels in order), ``variant`` "answer".
"""

from __future__ import annotations

from dataclasses import asdict

from evalsuite.dynamic import dyval
from evalsuite.probes.base import ProbeUnit, Sample, Variant
from evalsuite.probes.hallucination.abstention import Abstention
from evalsuite.probes.hallucination.common import GenerationProbe, Judgement, generation_variant, rate, scored
from evalsuite.probes.kinds.dyval import DyvalConfig, DyvalDetails
from evalsuite.probes.metrics import summary, task_result
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings

PROMPT = "Problem: {question}\n{instruction}\nSolution:"
UNTIL = ("\nProblem:", "\n\n\n")
DEFAULT_ITEMS = 50  # per level


class DyvalProbe(GenerationProbe):
    adaptive: bool = False

    def __init__(self, config: DyvalConfig) -> None:
        super().__init__(config.max_tokens)
        self.config = config

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        config = self.config
        family = config.family
        seed = config.seed if config.seed is not None else unit.seed_for("items")
        items = [
            item
            for level in config.levels
            for item in dyval.generate(family, level, config.limit or DEFAULT_ITEMS, seed)
        ]
        instruction = dyval.INSTRUCTION[family]
        return [
            generation_variant(
                unit,
                i,
                asdict(item),
                PROMPT.format(question=item.question, instruction=instruction),
                until=UNTIL,
                max_tokens=self.max_tokens,
            )
            for i, item in enumerate(items)
        ]

    def judge(self, variant: Variant, answer: str, abstention: Abstention | None) -> Judgement:
        item = dyval.Item(**variant.doc)
        got = dyval.extract(item.family, answer)
        correct = float(got == item.answer)
        details = {"family": item.family, "level": item.level, "nodes": item.nodes}
        return Judgement(item.question, got, correct, {"correct": correct}, details, item.answer)

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        errors = sum(r.error is not None for r in records)
        levels = {r.doc_id: r.probe.details_as(DyvalDetails).level for r in records if r.probe is not None}
        metrics = {"accuracy": rate(scored(records, "correct"), settings, errors, True)}
        for level in self.config.levels:
            at = [r for r in records if levels.get(r.doc_id) == level]
            metrics[f"level_{level}"] = rate(
                scored(at, "correct"), settings, sum(r.error is not None for r in at), True
            )
        return task_result(unit, model, metrics, summary(unit, len(records)), "accuracy")
