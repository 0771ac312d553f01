"""A hand-built run directory with every hallucination probe kind, and hostile text in it.

Two models; a plain task (``arc_local``) and six hallucination units: ``fabricated``, ``unanswerable``,
``halueval``, ``faithfulness``, ``self_consistency/triviaqa_local`` and ``calibration/arc_local``. The
records are built like the probes' own (the same details, metrics and docs); questions, passages,
answers, entity names, rules and options carry the hostile strings of ``conftest.HOSTILE`` and bidi
overrides. Each unit has more than 15 failures for at least one model, so its worst-case list is cut.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evalsuite.probes.registry import probe_kind
from evalsuite.records import (
    ChoiceScore,
    JSONValue,
    ProbeDetail,
    ProbeSummary,
    ReliabilityBin,
    SampleRecord,
    TaskResult,
)
from tests.report.conftest import HOSTILE
from tests.report.probe_run import BIDI, MODELS, metric, plain_results, write_run

UNITS = {  # unit -> kind
    "fabricated": "fabricated",
    "unanswerable": "unanswerable",
    "halueval": "halueval",
    "faithfulness": "faithfulness",
    "self_consistency/triviaqa_local": "self_consistency",
    "calibration/arc_local": "calibration",
}
# calibration/arc_local's reliability bins per model: (count, accuracy) of the ten bins 0-0.1 ... 0.9-1
BINS = {
    "base": [
        (0, None),
        (0, None),
        (2, 0.0),
        (4, 0.25),
        (0, None),
        (6, 0.5),
        (0, None),
        (8, 0.625),
        (9, 1.0),
        (12, 0.75),
    ],
    "small": [
        (0, None),
        (1, 1.0),
        (3, 0.0),
        (0, None),
        (5, 0.4),
        (0, None),
        (0, None),
        (0, None),
        (7, 0.9),
        (0, None),
    ],
}


def hostile(doc: int) -> str:
    return f"{HOSTILE[doc % len(HOSTILE)]} {BIDI}"


def record(
    unit: str,
    doc: int,
    model: str,
    *,
    original: str,
    generation: str | None,
    score: float | None,
    details: dict[str, Any],
    metrics: dict[str, JSONValue] | None = None,
    fields: dict[str, Any] | None = None,
    target: Any = None,
    variant: str = "answer",
    choices: list[ChoiceScore] | None = None,
) -> SampleRecord:
    """One record as :func:`evalsuite.probes.hallucination.common.answer_record` writes it."""
    kind = UNITS[unit]
    return SampleRecord(
        model=model,
        task=unit,
        doc_id=doc,
        variant=variant,
        prompt=f"Question: {original}\nAnswer:",
        target=target,
        choices=choices,
        generation=generation,
        metrics=metrics or {},
        doc=fields or {},
        probe=ProbeDetail(
            probe=kind,
            kind=kind,
            task=unit.partition("/")[2],
            original=original,
            perturbed=f"Question: {original}\nAnswer:",
            answer=generation,
            score=score,
            details=details,
        ),
    )


def fabricated(
    doc: int,
    model: str,
    *,
    made_up: bool,
    abstained: bool,
    correct: bool = False,
    similarity: float | None = None,
) -> SampleRecord:
    entity = f"Zorblax Quentin {doc} {hostile(doc)}"
    metrics: dict[str, JSONValue] = {"abstained": float(abstained)}
    if made_up:
        metrics["hallucinated"] = 1.0 - abstained
    else:
        metrics["correct"] = float(correct)
    return record(
        "fabricated",
        doc,
        model,
        original=f"Who founded {entity}?",
        generation="I do not know." if abstained else f"It was founded by {hostile(doc + 1)}",
        score=metrics["hallucinated"] if made_up else metrics["correct"],
        details={
            "fabricated": made_up,
            "category": ["person", "<b>paper</b>", "place"][doc % 3],
            "entity": entity,
            "abstained": abstained,
            "rule": "i do not know <script>" if abstained else None,
            "similarity": similarity,
        },
        metrics=metrics,
        target=[] if made_up else ["Steve Jobs", hostile(doc)],
    )


def unanswerable(
    doc: int, model: str, *, no_answer: bool, abstained: bool, right: bool = False
) -> SampleRecord:
    question = f"When was it built? {hostile(doc)}"
    return record(
        "unanswerable",
        doc,
        model,
        original=question,
        generation="unanswerable" if abstained else f"In 1850 {hostile(doc + 2)}",
        score=float(abstained if no_answer else right),
        details={
            "unanswerable": no_answer,
            "abstained": abstained,
            "rule": "unanswerable" if abstained else None,
        },
        metrics={"abstained": float(abstained), "unanswerable": float(no_answer)},
        fields={
            "context": f"The bridge {hostile(doc + 3)} was long.",
            "question": question,
            "unanswerable": no_answer,
        },
        target=[] if no_answer else ["1850", hostile(doc)],
    )


def halueval(doc: int, model: str, *, hallucinated: bool, judgement: bool | None) -> SampleRecord:
    shown = f"Paris {hostile(doc)}" if hallucinated else "Lyon"
    reply = {True: "Yes", False: "No", None: hostile(doc + 4)}[judgement]
    right = judgement is not None and judgement == hallucinated
    return record(
        "halueval",
        doc,
        model,
        original=shown,
        generation=reply,
        score=float(right),
        details={"hallucinated": hallucinated, "judgement": judgement, "index": 100 + doc},
        metrics={"correct": float(right), "unparseable": float(judgement is None)},
        fields={
            "knowledge": f"Lyon is a city. {hostile(doc + 5)}",
            "question": f"Which city? {hostile(doc + 6)}",
            "right_answer": "Lyon",
            "hallucinated_answer": shown,
            "shown": shown,
            "hallucinated": hallucinated,
        },
        target=hallucinated,
    )


def faithfulness(
    doc: int, model: str, *, counterfactual: bool, follows: bool, memory: bool = False
) -> SampleRecord:
    metrics: dict[str, JSONValue] = {"follows": float(follows)}
    if counterfactual:
        metrics |= {"follows_counterfactual": float(follows), "memory": float(memory)}
    passage = f"The capital of France is Marseille. {hostile(doc)}"
    return record(
        "faithfulness",
        doc,
        model,
        original=passage,
        generation="Paris" if memory else "Marseille" if follows else hostile(doc + 7),
        score=float(follows),
        details={
            "source": ["template", "squad"][doc % 2],
            "counterfactual": counterfactual,
            "follows": follows,
        },
        metrics=metrics,
        fields={
            "passage": passage,
            "question": f"What is the capital? {hostile(doc + 8)}",
            "passage_answer": "Marseille",
            "memory_answer": "Paris",
            "counterfactual": counterfactual,
        },
        target="Marseille",
    )


def consistency(
    doc: int, model: str, *, wrong: bool, entropy: float, disagreement: float
) -> list[SampleRecord]:
    """The greedy ("clean") record and the "sampled" one of a question."""
    unit, question = "self_consistency/triviaqa_local", f"Who wrote Hamlet? {hostile(doc)}"
    greedy = f"Marlowe {hostile(doc + 1)}" if wrong else "Shakespeare"
    samples = [greedy, greedy, f"Bacon {hostile(doc + 2)}"][: 1 + int(entropy > 0) * 2]
    clusters = [0, 0, 1][: len(samples)]
    clean = record(
        unit,
        doc,
        model,
        original=question,
        generation=greedy,
        score=0.0 if wrong else 1.0,
        details={},
        metrics={"exact_match": 0.0 if wrong else 1.0},
        target=["Shakespeare", hostile(doc)],
        variant="clean",
    )
    sampled = record(
        unit,
        doc,
        model,
        original=question,
        generation=samples[0],
        score=entropy,
        details={"samples": samples, "clusters": clusters, "greedy_cluster": 0},
        metrics={"semantic_entropy": entropy, "disagreement": disagreement, "wrong": float(wrong)},
        target=["Shakespeare", hostile(doc)],
        variant="sampled",
    )
    return [clean, sampled]


def calibration(doc: int, model: str, *, probabilities: list[float], gold: int) -> SampleRecord:
    choices = [
        ChoiceScore(text=f"option {i} {hostile(doc + i)}", loglikelihood=math.log(p), is_greedy=False)
        for i, p in enumerate(probabilities)
    ]
    right = max(range(len(probabilities)), key=probabilities.__getitem__) == gold
    return record(
        "calibration/arc_local",
        doc,
        model,
        original=f"Which gas do plants absorb? {hostile(doc)}",
        generation=None,
        score=float(right),
        details={},
        metrics={"acc": float(right)},
        target=gold,
        variant="clean",
        choices=choices,
    )


def records(model: str) -> list[SampleRecord]:
    """Each unit's records for one model; "small" fails more often."""
    k = MODELS.index(model)
    out = []
    for doc in range(44):  # 22 made-up entities (all but four answered) and 22 controls
        made_up = doc % 2 == 0
        abstained = doc % 14 == 0 if made_up else doc % 5 == 0
        out.append(
            fabricated(
                doc, model, made_up=made_up, abstained=abstained, correct=doc % 3 != k, similarity=doc / 100
            )
        )
    for doc in range(24):
        no_answer = doc % 2 == 0
        out.append(unanswerable(doc, model, no_answer=no_answer, abstained=doc % 3 == k, right=doc % 4 == 1))
    for doc in range(30):
        judgement = [True, False, None][(doc + k) % 3]
        out.append(halueval(doc, model, hallucinated=doc < 15, judgement=judgement))
    for doc in range(24):
        follows = doc % 4 == k
        out.append(
            faithfulness(
                doc, model, counterfactual=doc % 2 == 0, follows=follows, memory=not follows and doc % 3 == 0
            )
        )
    for doc in range(20):
        wrong = doc % 5 != k
        out += consistency(
            doc, model, wrong=wrong, entropy=[0.0, 0.64, 1.1][doc % 3], disagreement=(doc % 4) / 4
        )
    for doc in range(40):
        top = 0.35 + 0.0125 * doc
        out.append(calibration(doc, model, probabilities=[top, 0.9 - top, 0.1], gold=(doc + k) % 2))
    return out


def result(unit: str, model: str, samples: int) -> TaskResult:
    kind = UNITS[unit]
    bins = [
        ReliabilityBin(
            low=i / 10,
            high=(i + 1) / 10,
            count=n,
            mean_confidence=None if a is None else i / 10 + 0.05,
            accuracy=a,
        )
        for i, (n, a) in enumerate(BINS[model])
    ]
    summary = ProbeSummary(
        probe=kind,
        kind=kind,
        task=unit.partition("/")[2],
        metric="score",
        samples=samples,
        reliability=bins if kind == "calibration" else [],
    )
    return TaskResult(
        model=model,
        task=unit,
        output_type="generate_until",
        num_fewshot=0,
        primary_metric=probe_kind(kind).metrics[0],
        metrics={
            name: metric(0.6, 0.4, 0.8) for name in probe_kind(kind).metrics
        },  # the metrics its table shows
        probe=summary,
    )


def write_hallucination_run(folder: Path) -> Path:
    """The run directory, with report.html rendered from it; returns its path."""
    results = plain_results()
    samples = []
    for model in MODELS:
        mine = records(model)
        samples += mine
        results += [result(unit, model, sum(r.task == unit for r in mine)) for unit in UNITS]
    return write_run(folder / "hallucination", results, samples)
