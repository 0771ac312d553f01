"""Each hallucination unit's worst cases: up to ``LIMIT`` failed records per (unit, model), worst first.

What fails, worst first within each kind (a record with ``error`` set is no case: the sample browser has it):

* fabricated: made-up entities answered without abstaining (the least like an abstention first, by the
  detector's similarity), then controls answered wrongly, then controls abstained on;
* unanswerable: unanswerable questions answered, then answerable ones abstained on, then answerable ones
  answered wrongly;
* halueval: hallucinated answers judged right, then right answers judged hallucinated, then replies with
  neither Yes nor No;
* faithfulness: counterfactual passages answered from memory, then other answers that do not follow the
  passage, counterfactual ones first;
* self_consistency: wrong greedy answers, the lowest semantic entropy (then disagreement) first: the
  confidently wrong;
* calibration: wrong predictions, the most confident first.

Each case shows the question (with its passage or knowledge), the model's answer, the decision made about
it and the expected answer, all as text made visible by :func:`~evalsuite.report.diff.visible`; the
template autoescapes them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evalsuite.records import SampleRecord, TaskResult
from evalsuite.report.diff import visible
from evalsuite.report.examples import short

LIMIT = 15
TEXT = 1500  # characters of a question, passage or answer shown


@dataclass(frozen=True)
class Case:
    doc: int
    label: str  # how it failed
    question: str  # the question, with its passage or knowledge
    answer: str  # the model's answer
    decision: str  # what was decided about the answer
    expected: str


@dataclass(frozen=True)
class Worst:
    unit: str
    model: str
    kind: str
    cases: list[Case]  # the worst first, at most LIMIT
    failures: int  # records that failed
    records: int  # records looked at


Ranked = tuple[tuple[float, ...], Case]  # smaller ranks are worse


def worst_cases(
    samples: Sequence[SampleRecord], units: Sequence[TaskResult], limit: int = LIMIT
) -> list[Worst]:
    """One list per (unit, model) of a kind with a picker, in the units' order."""
    records: dict[tuple[str, str], list[SampleRecord]] = defaultdict(list)
    for record in samples:
        if record.probe is not None and record.error is None:
            records[(record.task, record.model)].append(record)
    out = []
    for unit in units:
        pick = PICKERS.get(unit.probe.kind) if unit.probe is not None else None
        if pick is None or unit.probe is None:
            continue
        mine = records[(unit.task, unit.model)]
        ranked = sorted(pick(mine), key=lambda r: (r[0], r[1].doc))
        cases = [case for _, case in ranked[:limit]]
        out.append(
            Worst(visible(unit.task), visible(unit.model), unit.probe.kind, cases, len(ranked), len(mine))
        )
    return out


def each(case: Callable[[SampleRecord], Ranked | None]) -> Callable[[list[SampleRecord]], list[Ranked]]:
    """A picker that judges every record on its own."""
    return lambda records: [c for c in map(case, records) if c is not None]


def _fabricated(r: SampleRecord) -> Ranked | None:
    d = _details(r)
    if d.get("fabricated"):
        if d.get("abstained"):
            return None
        similarity = d.get("similarity")
        rank = (0.0, float(similarity) if isinstance(similarity, int | float) else 0.0)
        label = f"hallucinated: answered about a made-up {_plain(d.get('category', 'entity'))}"
        return rank, _case(
            r, label, _question(r), _abstention(d), f"an abstention: {_plain(d.get('entity'))} does not exist"
        )
    if _right(r):
        return None
    abstained = bool(d.get("abstained"))
    label = "control abstained on" if abstained else "control answered wrongly"
    return (2.0 if abstained else 1.0,), _case(r, label, _question(r), _abstention(d), _accepted(r.target))


def _unanswerable(r: SampleRecord) -> Ranked | None:
    d = _details(r)
    abstained, unanswerable = bool(d.get("abstained")), bool(d.get("unanswerable"))
    answerable = _accepted(r.target)
    if unanswerable and not abstained:
        tier, label, expected = 0.0, "answered an unanswerable question", "an abstention"
    elif not unanswerable and abstained:
        tier, label, expected = 1.0, "abstained on an answerable question", answerable
    elif not unanswerable and not _right(r):
        tier, label, expected = 2.0, "answered an answerable question wrongly", answerable
    else:
        return None
    question = _question(r, ("Passage", "context"), ("Question", None))
    return (tier,), _case(r, label, question, _abstention(d), expected)


def _halueval(r: SampleRecord) -> Ranked | None:
    d = _details(r)
    hallucinated, judgement = bool(d.get("hallucinated")), d.get("judgement")
    if judgement is not None and bool(judgement) == hallucinated:
        return None
    if judgement is None:
        tier, label = 2.0, "unparseable: no Yes or No"
    elif hallucinated:
        tier, label = 0.0, "missed a hallucinated answer"
    else:
        tier, label = 1.0, "flagged a right answer as hallucinated"
    decision = (
        "no judgement found"
        if judgement is None
        else "judged hallucinated (Yes)"
        if judgement
        else "judged right (No)"
    )
    if hallucinated:
        expected = (
            f"Yes: the answer is hallucinated (the right answer: {_plain(r.doc.get('right_answer', '?'))})"
        )
    else:
        expected = "No: the answer is right"
    question = _question(r, ("Knowledge", "knowledge"), ("Question", "question"), ("Answer judged", None))
    return (tier,), _case(r, label, question, decision, expected)


def _faithfulness(r: SampleRecord) -> Ranked | None:
    d = _details(r)
    if d.get("follows"):
        return None
    memory, counterfactual = bool(r.metrics.get("memory")), bool(d.get("counterfactual"))
    tier = 0.0 if memory else 1.0 if counterfactual else 2.0
    label = "answered from memory against the passage" if memory else "did not follow the passage"
    decision = " · ".join(
        [
            "follows the passage: no",
            f"answered from memory: {'yes' if memory else 'no'}",
            f"{_plain(d.get('source', '?'))} item",
            "counterfactual" if counterfactual else "agrees with common knowledge",
        ]
    )
    expected = _plain(r.target)
    if counterfactual and r.doc.get("memory_answer") is not None:
        expected += f" (from memory it would be: {_plain(r.doc['memory_answer'])})"
    question = _question(r, ("Passage", None), ("Question", "question"))
    return (tier,), _case(r, label, question, decision, expected)


def _self_consistency(records: list[SampleRecord]) -> list[Ranked]:
    greedy = {r.doc_id: r for r in records if r.variant == "clean"}
    out: list[Ranked] = []
    for r in records:
        if r.variant != "sampled" or not _number(r.metrics.get("wrong")) > 0.5:  # NaN: not known wrong
            continue
        entropy, disagreement = (
            _number(r.metrics.get("semantic_entropy")),
            _number(r.metrics.get("disagreement")),
        )
        d = _details(r)
        samples, clusters = d.get("samples"), d.get("clusters")
        drawn = [
            f"“{_plain(s, 200)}” [cluster {c}]"
            for s, c in zip(
                samples if isinstance(samples, list) else [],
                clusters if isinstance(clusters, list) else [],
                strict=False,
            )
        ]
        decision = (
            f"semantic entropy {entropy:.3f} · disagreement {disagreement:.2f} · greedy answer in cluster "
            f"{_plain(d.get('greedy_cluster', '?'))} · sampled: {'; '.join(drawn) or 'none'}"
        )
        first = greedy.get(r.doc_id)
        answer = first.generation if first is not None and first.generation is not None else "?"
        label = "confidently wrong: every sample agrees" if entropy == 0 else "wrong"
        case = _case(r, label, _question(r), decision, _accepted(r.target), answer)
        out.append(((0.0, _finite(entropy), _finite(disagreement)), case))
    return out


def _calibration(r: SampleRecord) -> Ranked | None:
    if not r.choices or not isinstance(r.target, int) or not 0 <= r.target < len(r.choices):
        return None
    p = softmax([c.loglikelihood for c in r.choices])
    picked = max(range(len(p)), key=p.__getitem__)
    if picked == r.target:
        return None
    options = " · ".join(f"{_plain(c.text, 200)} ({q:.2f})" for c, q in zip(r.choices, p, strict=True))
    answer = f"{_plain(r.choices[picked].text)} (p = {p[picked]:.3f})"
    expected = f"{_plain(r.choices[r.target].text)} (p = {p[r.target]:.3f})"
    decision = f"confidence {p[picked]:.3f} in a wrong option; options: {options}"
    label = f"wrong with confidence {p[picked]:.2f}"
    return (0.0, -p[picked]), _case(r, label, _question(r), decision, expected, answer)


def softmax(loglikelihoods: Sequence[float | None]) -> list[float]:
    """Option probabilities; a failed option (None) gets none, all failed gives a uniform split."""
    finite = [x for x in loglikelihoods if x is not None and math.isfinite(x)]
    if not finite:
        return [1.0 / len(loglikelihoods)] * len(loglikelihoods)
    top = max(finite)
    weights = [math.exp(x - top) if x is not None and math.isfinite(x) else 0.0 for x in loglikelihoods]
    return [w / sum(weights) for w in weights]


PICKERS: dict[str, Callable[[list[SampleRecord]], list[Ranked]]] = {
    "fabricated": each(_fabricated),
    "unanswerable": each(_unanswerable),
    "halueval": each(_halueval),
    "faithfulness": each(_faithfulness),
    "self_consistency": _self_consistency,
    "calibration": each(_calibration),
}


def _case(
    r: SampleRecord, label: str, question: str, decision: str, expected: str, answer: str | None = None
) -> Case:
    """A case of plain text, made visible here (the template escapes it)."""
    said = (r.generation or "") if answer is None else answer
    return Case(
        r.doc_id,
        visible(label),
        visible(question),
        visible(short(said, TEXT)),
        visible(decision),
        visible(expected),
    )


def _details(r: SampleRecord) -> dict[str, Any]:
    return dict(r.probe.details) if r.probe is not None else {}


def _right(r: SampleRecord) -> bool:
    return r.probe is not None and r.probe.score is not None and r.probe.score >= 1.0


def _question(r: SampleRecord, *parts: tuple[str, str | None]) -> str:
    """The record's text under headings: ``(heading, doc key)``, None for the probe's own original text."""
    if not parts:
        return short(r.probe.original if r.probe is not None else r.prompt, TEXT)
    lines = []
    for heading, key in parts:
        value = (r.probe.original if r.probe is not None else "") if key is None else r.doc.get(key)
        if value is not None:
            lines.append(f"{heading}: {short(value, TEXT)}")
    return "\n\n".join(lines)


def _abstention(d: dict[str, Any]) -> str:
    parts = ["abstained" if d.get("abstained") else "answered (no abstention found)"]
    if d.get("rule"):
        parts.append(f"rule: {_plain(d['rule'])}")
    similarity = d.get("similarity")
    if isinstance(similarity, int | float):
        parts.append(f"similarity to an abstention: {similarity:.2f}")
    return " · ".join(parts)


def _accepted(target: Any) -> str:
    if isinstance(target, list):
        return "one of: " + " · ".join(_plain(t, 200) for t in target) if target else "—"
    return short(target, TEXT)


def _plain(value: Any, limit: int = 300) -> str:
    return short(value, limit)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf  # a missing score sorts last
