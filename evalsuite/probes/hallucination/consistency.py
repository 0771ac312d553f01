"""Self-consistency and uncertainty: does the model's disagreement with itself predict its errors?

For each question of a generation task: the greedy answer (the task's own request, scored by the task's
primary metric) and ``samples`` answers sampled at ``temperature``. Sampled answers are clustered by
normalised exact match (SQuAD normalisation) and, with ``embedding: true``, by sentence-embedding cosine
similarity >= 0.85 (all-MiniLM-L6-v2). Uncertainty scores per question:

    semantic_entropy   entropy of the answers' distribution over clusters (Farquhar et al. 2024, discrete)
    disagreement       1 - the share of sampled answers in the greedy answer's cluster

Reported: accuracy of the greedy answers (Wilson), mean semantic entropy (normal), and for each score
its AUROC for predicting a wrong greedy answer with a percentile-bootstrap interval over questions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from lm_eval.api.instance import Instance

from evalsuite.engine import Engine, Outcome
from evalsuite.errors import ConfigError
from evalsuite.probes.base import ProbeUnit, Sample, Variant, clean
from evalsuite.probes.hallucination.common import Judgement, answer_record, rate
from evalsuite.probes.hallucination.squad import normalize_answer
from evalsuite.probes.kinds.self_consistency import SelfConsistencyConfig
from evalsuite.probes.metrics import metric, normal_interval, summary, task_result
from evalsuite.probes.scoring import score
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import Interval, IntervalSettings
from evalsuite.stats.uncertainty import auroc_interval, cluster_by_equivalence, semantic_entropy

SIMILAR = 0.85  # cosine similarity above which two sampled answers count as the same meaning
SCORES = ("semantic_entropy", "disagreement")


class ConsistencyProbe:
    adaptive: bool = False

    def __init__(self, config: SelfConsistencyConfig) -> None:
        self.config = config
        self.embedder: Any = None
        if config.embedding:
            from evalsuite.probes.hallucination.embedding import SentenceEmbedder

            self.embedder = SentenceEmbedder.load()

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        if unit.task is None or str(unit.lm_task.OUTPUT_TYPE) != "generate_until":
            raise ConfigError(
                f"probe {unit.config.label!r}: self-consistency needs a generation task; "
                f"{unit.task_name!r} is not one"
            )
        variants = []
        for sample in samples:
            greedy = clean(unit, sample)
            context, settings = sample.requests[0].args
            sampled = dict(settings) | {"do_sample": True, "temperature": self.config.temperature}
            request = Instance(
                "generate_until",
                sample.doc,
                (context, sampled),
                0,
                (unit.name, sample.doc_id, self.config.samples),
            )
            variants += [
                greedy,
                Variant(sample, "sampled", sample.doc, (request,), sample.text, sample.text, None),
            ]
        return variants

    def run(
        self,
        unit: ProbeUnit,
        variants: list[Variant],
        model: str,
        engine: Engine,
        progress: Callable[[int], None],
    ) -> list[SampleRecord]:
        outcomes = engine.run([v.requests[0] for v in variants], progress)
        records = []
        for at in range(0, len(variants), 2):
            greedy, sampled = variants[at], variants[at + 1]
            first = score(unit, greedy, outcomes[at], model)
            answers = [str(o.value) for o in outcomes[at + 1] if o.error is None]
            error = next((o.error for o in outcomes[at + 1] if o.error is not None), None)
            clusters = self.cluster([str(first.generation or ""), *answers])
            entropy = semantic_entropy(clusters[1:]) if answers else float("nan")
            agreement = (
                sum(c == clusters[0] for c in clusters[1:]) / len(answers) if answers else float("nan")
            )
            metrics = {
                "semantic_entropy": entropy,
                "disagreement": 1 - agreement,
                "wrong": 1 - ((first.probe.score if first.probe else None) or 0),
            }
            details = {"samples": answers, "clusters": clusters[1:], "greedy_cluster": clusters[0]}
            judged = Judgement(
                sampled.original,
                answers,
                entropy,
                metrics if first.error is None else {},
                details,
                first.target,
            )
            record = answer_record(unit, model, sampled, outcome_of(answers, error), judged)
            records += [first, record]
        return records

    def cluster(self, answers: Sequence[str]) -> list[int]:
        normal = [normalize_answer(a.strip().split("\n")[0]) for a in answers]
        if self.embedder is None:
            return cluster_by_equivalence(normal, lambda a, b: a == b)
        vectors = self.embedder.encode([n or "(empty)" for n in normal])
        index = {text: i for i, text in enumerate(normal)}
        return cluster_by_equivalence(
            normal, lambda a, b: a == b or float(vectors[index[a]] @ vectors[index[b]]) >= SIMILAR
        )

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        rows = [r for r in records if r.variant == "sampled" and r.error is None and "wrong" in r.metrics]
        greedy = [r for r in records if r.variant == "clean" and r.error is None and r.probe is not None]
        errors = len(records) // 2 - len(rows)
        wrong = np.array([r.metrics["wrong"] > 0.5 for r in rows])
        rng = np.random.default_rng(settings.seed)
        metrics = {
            "accuracy": rate([float(r.probe.score or 0) for r in greedy if r.probe], settings, errors, True),
            "semantic_entropy": metric(
                normal_interval([r.metrics["semantic_entropy"] for r in rows], settings.confidence),
                len(rows),
                errors,
                None,
            ),
        }
        for name in SCORES:
            values = np.array([float(r.metrics[name]) for r in rows])
            interval = (
                auroc_interval(values, wrong, rng, settings.confidence, settings.resamples)
                if _both(wrong)
                else None
            )
            metrics[f"auroc_{name}"] = metric(interval or _none(settings), len(rows), errors, True, "auroc")
        return task_result(unit, model, metrics, summary(unit, len(rows)), "auroc_semantic_entropy")


def _both(wrong: np.ndarray) -> bool:
    return bool(wrong.any() and (~wrong).any())


def _none(settings: IntervalSettings) -> Interval:
    return Interval(float("nan"), None, None, None, settings.confidence, "none")


def outcome_of(answers: list[str], error: str | None) -> Outcome:
    """The sampled answers as one outcome for the record: the first answer (all are in its details)."""
    return Outcome(value=answers[0] if answers else "", error=error)
