"""The gsm_symbolic probe: each template's GSM8K problem (the original) and ``sets`` fresh instances of it,
answered by the model with worked solutions; accuracy on the originals against the fresh instances,
paired by template; and, where the backend shows its next-token distributions, every question's
Min-K%++ score, the originals' against the fresh instances' (a contamination signal).

Records: one per (template, copy), ``doc_id`` the template's index and ``variant`` "original" or
"set-<j>" (the j-th drawn set holds each template's j-th fresh instance), so two models' records pair by
template and copy. Metrics (:mod:`evalsuite.probes.kinds.gsm_symbolic`):

    original_accuracy   the originals answered right                                    Wilson
    fresh_accuracy      the fresh instances answered right                              cluster-robust t
    drop                original minus fresh accuracy, paired by template               paired t
    fresh_set_sd        standard deviation of the drawn sets' accuracies                (none)
    minkpp_gap          original minus fresh Min-K%++ score, paired by template         paired t

The answer is the number after the last "Answer:" ("The answer is", "####") in the response, else its
last number, compared exactly (as a fraction) with the template program's answer.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from evalsuite.dynamic import gsm_symbolic
from evalsuite.engine import Engine
from evalsuite.models.base import TokenDistributions
from evalsuite.models.lazy import LazyBackend
from evalsuite.probes.base import ProbeUnit, Sample, Variant
from evalsuite.probes.hallucination.common import (
    GenerationProbe,
    Judgement,
    answer_record,
    generate,
    generation_variant,
    rate,
    scored,
)
from evalsuite.probes.kinds.gsm_symbolic import ORIGINAL, GsmSymbolicConfig, SymbolicDetails
from evalsuite.probes.metrics import metric, summary, task_result
from evalsuite.records import GapTest, MetricResult, SampleRecord, TaskResult
from evalsuite.stats.gaps import Gap, template_gap
from evalsuite.stats.intervals import Interval, IntervalSettings, mean_interval

PROMPT = (
    "Solve the math problem step by step. End with the final answer on its own line as "
    "'Answer: <number>'.\nQuestion: {question}\nSolution:"
)
UNTIL = ("\nQuestion:", "\n\n\n")
CONTAMINATION_TOKENS = 512  # longest question scored by Min-K%++ (GSM8K questions are under 250)

_MARKER = re.compile(r"(?:answer\s*(?:is)?\s*[:=]?|####)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def read_answer(response: str) -> Fraction | None:
    """The number a response gives as its answer: the first after its last answer marker, else its last
    number; "$1,234.50" reads as 1234.5. None where there is no number."""
    markers = list(_MARKER.finditer(response))
    if markers:
        found = _NUMBER.search(response, markers[-1].end())
        if found is not None:
            return _fraction(found.group())
    numbers = _NUMBER.findall(response)
    return _fraction(numbers[-1]) if numbers else None


def _fraction(text: str) -> Fraction:
    return Fraction(text.replace("$", "").replace(",", "").replace(" ", ""))


def copy_name(draw: int) -> str:
    return ORIGINAL if draw == 0 else f"set-{draw}"


class GsmSymbolicProbe(GenerationProbe):
    adaptive: bool = False

    def __init__(self, config: GsmSymbolicConfig) -> None:
        super().__init__(config.max_tokens)
        self.config = config

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        """Every template's original and its fresh instances, drawn with the run's seed."""
        path = unit.data_file("gsm8k/test.jsonl")
        templates = gsm_symbolic.load(path.parent.parent)
        if unit.config.limit is not None:
            templates = templates[: unit.config.limit]
        seed = unit.seed_for("instances")
        variants = []
        for index, template in enumerate(templates):
            drawn = gsm_symbolic.instances(template, seed, self.config.sets)
            copies = [(template.question, template.answer, gsm_symbolic.original(template))]
            copies += [(i.question, i.answer, dict(i.values)) for i in drawn]
            for draw, (question, answer, values) in enumerate(copies):
                doc = {
                    "row": template.row,
                    "draw": draw,
                    "question": question,
                    "answer": gsm_symbolic.format_number(answer),
                    "values": {name: str(value) for name, value in values.items()},
                }
                prompt = PROMPT.format(question=question)
                variants.append(
                    generation_variant(
                        unit,
                        index,
                        doc,
                        prompt,
                        until=UNTIL,
                        name=copy_name(draw),
                        max_tokens=self.max_tokens,
                    )
                )
        return variants

    def run(
        self,
        unit: ProbeUnit,
        variants: list[Variant],
        model: str,
        engine: Engine,
        progress: Callable[[int], None],
    ) -> list[SampleRecord]:
        scores = self.contamination(variants, engine)
        outcomes = [o[0] for o in generate(variants, engine, progress)]
        return [
            answer_record(unit, model, v, o, self.judged(v, str(o.value or ""), score))
            for v, o, score in zip(variants, outcomes, scores, strict=True)
        ]

    def contamination(self, variants: Sequence[Variant], engine: Engine) -> list[float | None]:
        """Every question's Min-K%++ score, or None throughout where the backend shows no next-token
        distributions (served and replayed models) or the probe is told not to."""
        backend: Any = engine.backend
        if isinstance(backend, LazyBackend):
            backend = backend.backend()
        if not self.config.contamination or not isinstance(backend, TokenDistributions):
            return [None] * len(variants)
        from evalsuite.stats.contamination import min_k_plus_plus

        texts = [str(v.doc["question"]) for v in variants]
        found = backend.token_statistics(texts, CONTAMINATION_TOKENS)
        scores = [min_k_plus_plus(rows, self.config.min_k) if len(rows) else None for rows in found]
        # minus infinity (a token the model ruled out entirely) has no place in a mean difference
        return [s if s is not None and math.isfinite(s) else None for s in scores]

    def judged(self, variant: Variant, response: str, score: float | None) -> Judgement:
        doc = variant.doc
        got = read_answer(response)
        expected = Fraction(str(doc["answer"]))
        correct = float(got is not None and got == expected)
        details = {
            "row": doc["row"],
            "original": doc["draw"] == 0,
            "draw": doc["draw"],
            "values": doc["values"],
            "minkpp": score,
        }
        shown = None if got is None else gsm_symbolic.format_number(got) if got.denominator == 1 else str(got)
        return Judgement(str(doc["question"]), shown, correct, {"correct": correct}, details, doc["answer"])

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        conf = settings.confidence
        items = [(r, r.probe.details_as(SymbolicDetails)) for r in records if r.probe is not None]
        errors = sum(r.error is not None for r in records)
        originals = [r for r, d in items if d.original]
        fresh = [(r, d) for r, d in items if not d.original and r.error is None and "correct" in r.metrics]
        correct = [float(r.metrics["correct"]) for r, _ in fresh]
        by_template: dict[int, list[float]] = defaultdict(list)
        by_set: dict[int, list[float]] = defaultdict(list)
        for (r, d), value in zip(fresh, correct, strict=True):
            by_template[r.doc_id].append(value)
            by_set[d.draw].append(value)
        templates = sorted({r.doc_id for r, _ in items})
        original = {r.doc_id: float(r.metrics["correct"]) for r in originals if r.error is None and r.metrics}
        drop = template_gap([original.get(t) for t in templates], [by_template[t] for t in templates], conf)
        set_accuracy = [statistics.fmean(by_set[s]) for s in sorted(by_set)]
        metrics = {
            "original_accuracy": rate(scored(originals, "correct"), settings, errors, True),
            "fresh_accuracy": metric(
                mean_interval(correct, conf, clusters=[r.doc_id for r, _ in fresh]),
                len(correct),
                errors,
                True,
            ),
            "drop": _gap_metric(drop, errors, higher_is_better=False),
            "fresh_set_sd": metric(
                Interval(
                    statistics.stdev(set_accuracy) if len(set_accuracy) > 1 else float("nan"),
                    None,
                    None,
                    None,
                    conf,
                    "none",
                ),
                len(set_accuracy),
                errors,
                False,
                "sd",
            ),
        }
        tests = {"drop": _test(drop)}
        notes = []
        scores = {(r.doc_id, d.original): d.minkpp for r, d in items if d.minkpp is not None}
        if scores:
            fresh_scores: dict[int, list[float]] = defaultdict(list)
            for r, d in items:
                if not d.original and d.minkpp is not None:
                    fresh_scores[r.doc_id].append(d.minkpp)
            gap = template_gap(
                [scores.get((t, True)) for t in templates], [fresh_scores[t] for t in templates], conf
            )
            metrics["minkpp_gap"] = _gap_metric(gap, errors, higher_is_better=None)
            tests["minkpp_gap"] = _test(gap)
        elif self.config.contamination:
            notes.append(
                "Min-K%++ not measured: the model's backend shows no next-token distributions "
                "(backends hf and llamacpp do)"
            )
        extra = summary(unit, len(templates), tests=tests, sets=set_accuracy, notes=notes)
        return task_result(unit, model, metrics, extra, "drop")


def _gap_metric(gap: Gap, errors: int, *, higher_is_better: bool | None) -> MetricResult:
    return MetricResult(
        value=gap.value if gap.templates else None,
        stderr=gap.stderr,
        ci_low=gap.low,
        ci_high=gap.high,
        confidence=gap.confidence,
        ci_method=gap.method if gap.low is not None else "none",
        n=gap.templates,
        n_errors=errors,
        higher_is_better=higher_is_better,
        aggregation="paired gap",
    )


def _test(gap: Gap) -> GapTest:
    return GapTest(p_value=gap.p_value, statistic=gap.statistic, templates=gap.templates, method=gap.method)
