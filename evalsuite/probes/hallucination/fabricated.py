"""Fabricated-entity probe: questions about people, places, organisations, papers and products that do
not exist, each matched with a control question about a real entity whose answer is known.

A fabricated item is answered well by an abstention; a confident answer is a hallucination. Controls
check that the model still answers what it can (so a model that abstains on everything is caught):

    hallucination_rate          confident (non-abstaining) answers on fabricated items     Wilson
    abstention_rate             abstentions on fabricated items                            Wilson
    control_accuracy            controls answered with an accepted answer                  Wilson
    control_abstention_rate     abstentions on controls                                    Wilson

Items come from ``entities.generate(limit, seed)``: ``limit`` fabricated items and as many controls.
"""

from __future__ import annotations

from dataclasses import asdict

from evalsuite.probes.base import ProbeUnit, Sample, Variant
from evalsuite.probes.hallucination.abstention import Abstention
from evalsuite.probes.hallucination.common import GenerationProbe, Judgement, generation_variant, rate, scored
from evalsuite.probes.hallucination.detector import detector_for
from evalsuite.probes.hallucination.entities import EntityItem, answer_matches
from evalsuite.probes.hallucination.entities import generate as generate_items
from evalsuite.probes.kinds.fabricated import FabricatedConfig, FabricatedDetails
from evalsuite.probes.metrics import summary, task_result
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings

PROMPT = (
    "Answer the question in one short sentence. If you do not know the answer, say that you do not know."
    "\nQuestion: {question}\nAnswer:"
)
DEFAULT_ITEMS = 50


class FabricatedProbe(GenerationProbe):
    adaptive: bool = False

    def __init__(self, config: FabricatedConfig) -> None:
        super().__init__(config.max_tokens)
        # loads the embedding model now: a missing package fails early
        self.detector = detector_for(config.embedding)

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        items = generate_items(unit.config.limit or DEFAULT_ITEMS, unit.seed_for("items"))
        return [
            generation_variant(
                unit, i, asdict(item), PROMPT.format(question=item.question), max_tokens=self.max_tokens
            )
            for i, item in enumerate(items)
        ]

    def judge(self, variant: Variant, answer: str, abstention: Abstention | None) -> Judgement:
        item = EntityItem(**variant.doc)
        assert abstention is not None  # this probe always has a detector
        abstained = float(abstention.abstained)
        if item.fabricated:
            metrics = {"abstained": abstained, "hallucinated": 1.0 - abstained}
        else:
            metrics = {"abstained": abstained, "correct": float(answer_matches(answer, item.answers))}
        details = {
            "fabricated": item.fabricated,
            "category": item.category,
            "entity": item.entity,
            "abstained": abstention.abstained,
            "rule": abstention.rule,
            "similarity": abstention.similarity,
        }
        score = metrics["hallucinated"] if item.fabricated else metrics["correct"]
        return Judgement(item.question, answer, score, metrics, details, list(item.answers))

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        items = [(r, r.probe.details_as(FabricatedDetails)) for r in records if r.probe is not None]
        fabricated = [r for r, d in items if d.fabricated]
        controls = [r for r, d in items if not d.fabricated]
        errors = sum(r.error is not None for r in records)
        metrics = {
            "hallucination_rate": rate(scored(fabricated, "hallucinated"), settings, errors, False),
            "abstention_rate": rate(scored(fabricated, "abstained"), settings, errors, True),
            "control_accuracy": rate(scored(controls, "correct"), settings, errors, True),
            "control_abstention_rate": rate(scored(controls, "abstained"), settings, errors, False),
        }
        extra = summary(unit, len(fabricated))
        return task_result(unit, model, metrics, extra, "hallucination_rate")
