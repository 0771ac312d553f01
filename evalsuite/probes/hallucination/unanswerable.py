"""Unanswerable questions (SQuAD 2.0 dev): does the model abstain where the passage has no answer, and
answer where it has one?

``limit`` questions (default 100) are drawn with the run's seed, half unanswerable and half answerable.
The prompt asks for "unanswerable" when the passage does not contain the answer; an answer counts as an
abstention when the abstention detector says so (its rules include that word).

    abstention_precision   abstentions that were on unanswerable questions            Wilson
    abstention_recall      unanswerable questions the model abstained on               Wilson
    abstention_f1          their harmonic mean                                         bootstrap
    exact_match, f1        answerable questions, official SQuAD normalisation         Wilson / normal
    false_abstention_rate  answerable questions the model abstained on                 Wilson
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite.errors import DataError
from evalsuite.probes.base import ProbeUnit, Sample, Variant
from evalsuite.probes.hallucination.abstention import Abstention
from evalsuite.probes.hallucination.common import GenerationProbe, Judgement, generation_variant, rate, scored
from evalsuite.probes.hallucination.detector import detector_for
from evalsuite.probes.hallucination.squad import exact_match, f1_score
from evalsuite.probes.kinds.unanswerable import UnanswerableConfig
from evalsuite.probes.metrics import metric, summary, task_result
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings, bootstrap_interval

SQUAD_FILE = "squad_v2/squad_v2_dev_from_explorer.json"
PROMPT = (
    "Answer the question with a short span from the passage. If the passage does not contain the answer, "
    'reply "unanswerable".\n\nPassage: {context}\nQuestion: {question}\nAnswer:'
)
DEFAULT_ITEMS = 100


def read_squad(path: Path) -> list[dict[str, Any]]:
    """Every question of a SQuAD 2.0 file as {id, context, question, answers, unanswerable}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            {
                "id": str(qa["id"]),
                "context": str(paragraph["context"]),
                "question": str(qa["question"]),
                "answers": sorted(
                    {str(a["text"] if isinstance(a, dict) else a) for a in qa.get("answers", [])}
                ),
                "unanswerable": bool(qa.get("is_impossible", False)),
            }
            for article in data["data"]
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not a SQuAD 2.0 file: {error}") from None


def balanced(items: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` items, half unanswerable (the odd one answerable), drawn with ``seed``, in file order."""
    rng = random.Random(seed)
    none = [i for i, item in enumerate(items) if item["unanswerable"]]
    some = [i for i, item in enumerate(items) if not item["unanswerable"] and item["answers"]]
    picked = rng.sample(none, min(count // 2, len(none))) + rng.sample(
        some, min(count - count // 2, len(some))
    )
    return [items[i] for i in sorted(picked)]


class UnanswerableProbe(GenerationProbe):
    adaptive: bool = False

    def __init__(self, config: UnanswerableConfig) -> None:
        super().__init__(config.max_tokens)
        self.detector = detector_for(config.embedding)

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        items = balanced(
            read_squad(unit.data_file(SQUAD_FILE)), unit.config.limit or DEFAULT_ITEMS, unit.seed_for()
        )
        return [
            generation_variant(
                unit,
                i,
                item,
                PROMPT.format(context=item["context"], question=item["question"]),
                max_tokens=self.max_tokens,
            )
            for i, item in enumerate(items)
        ]

    def judge(self, variant: Variant, answer: str, abstention: Abstention | None) -> Judgement:
        item, answer = variant.doc, answer.strip()
        assert abstention is not None  # this probe always has a detector
        metrics = {"abstained": float(abstention.abstained), "unanswerable": float(item["unanswerable"])}
        if not item["unanswerable"]:
            said = "" if abstention.abstained else answer
            metrics |= {
                "exact_match": exact_match(said, item["answers"]),
                "f1": f1_score(said, item["answers"]),
            }
        right = abstention.abstained if item["unanswerable"] else metrics["exact_match"] > 0
        details = {
            "unanswerable": item["unanswerable"],
            "abstained": abstention.abstained,
            "rule": abstention.rule,
        }
        return Judgement(item["question"], answer, float(right), metrics, details, item["answers"])

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        ok = [r for r in records if r.error is None]
        errors = len(records) - len(ok)
        abstained = np.array(scored(ok, "abstained"))
        truth = np.array(scored(ok, "unanswerable"))
        answerable = [r for r in ok if not r.metrics.get("unanswerable")]
        rng = np.random.default_rng(settings.seed)
        f1 = bootstrap_interval(
            [abstained, truth], abstention_f1, rng, settings.confidence, settings.resamples
        )
        metrics = {
            "abstention_f1": metric(f1, len(ok), errors, True, "f1"),
            "abstention_precision": rate(list(truth[abstained == 1]), settings, errors, True),
            "abstention_recall": rate(list(abstained[truth == 1]), settings, errors, True),
            "exact_match": rate(scored(answerable, "exact_match"), settings, errors, True),
            "f1": rate(scored(answerable, "f1"), settings, errors, True),
            "false_abstention_rate": rate(scored(answerable, "abstained"), settings, errors, False),
        }
        return task_result(unit, model, metrics, summary(unit, len(ok)), "abstention_f1")


def abstention_f1(abstained: np.ndarray, truth: np.ndarray, axis: int = -1) -> np.ndarray:
    """F1 of abstaining as a detector of unanswerable questions (0 where it is undefined)."""
    hits = (abstained * truth).sum(axis=axis)
    predicted, actual = abstained.sum(axis=axis), truth.sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(predicted + actual > 0, 2 * hits / (predicted + actual), 0.0)
    return f1
