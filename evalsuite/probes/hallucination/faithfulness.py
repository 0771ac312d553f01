"""Faithfulness to context: a passage states a fact — often contradicting common knowledge — and the
question asks it. A faithful model answers from the passage.

Items come from templates of common-knowledge facts (``faithfulness.template_items``) and from SQuAD 2.0
answerable questions whose answer span is replaced by another question's answer of a similar type
(``faithfulness.squad_items``): ``limit`` items in all (default 60), half from each source.

    faithfulness              answers containing the passage's answer, all items          Wilson
    counterfactual_faithfulness   the same, where the passage contradicts memory          Wilson
    memory_rate               counterfactual items answered with the remembered fact       Wilson
"""

from __future__ import annotations

from dataclasses import asdict

from evalsuite.probes.base import ProbeUnit, Sample, Variant
from evalsuite.probes.hallucination.abstention import Abstention
from evalsuite.probes.hallucination.common import GenerationProbe, Judgement, generation_variant, rate, scored
from evalsuite.probes.hallucination.entities import answer_matches
from evalsuite.probes.hallucination.passages import ContextItem, squad_items, template_items
from evalsuite.probes.hallucination.unanswerable import SQUAD_FILE
from evalsuite.probes.metrics import summary, task_result
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings

PROMPT = "Answer the question using only the passage.\n\nPassage: {passage}\nQuestion: {question}\nAnswer:"
DEFAULT_ITEMS = 60


class FaithfulnessProbe(GenerationProbe):
    adaptive: bool = False

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        count = unit.config.limit or DEFAULT_ITEMS
        items = template_items(count - count // 2, unit.seed_for("templates"))
        items += squad_items(unit.data_file(SQUAD_FILE), count // 2, unit.seed_for("squad"))
        return [
            generation_variant(
                unit,
                i,
                asdict(item),
                PROMPT.format(passage=item.passage, question=item.question),
                max_tokens=self.max_tokens,
            )
            for i, item in enumerate(items)
        ]

    def judge(self, variant: Variant, answer: str, abstention: Abstention | None) -> Judgement:
        item = ContextItem(**variant.doc)
        follows = answer_matches(answer, [item.passage_answer])
        metrics = {"follows": float(follows)}
        if item.counterfactual:
            memory = answer_matches(answer, [item.memory_answer]) and not follows
            metrics |= {"follows_counterfactual": float(follows), "memory": float(memory)}
        details = {"source": item.source, "counterfactual": item.counterfactual, "follows": follows}
        return Judgement(item.passage, answer, float(follows), metrics, details, item.passage_answer)

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        errors = sum(r.error is not None for r in records)
        metrics = {
            "faithfulness": rate(scored(records, "follows"), settings, errors, True),
            "counterfactual_faithfulness": rate(
                scored(records, "follows_counterfactual"), settings, errors, True
            ),
            "memory_rate": rate(scored(records, "memory"), settings, errors, False),
        }
        return task_result(unit, model, metrics, summary(unit, len(records)), "faithfulness")
