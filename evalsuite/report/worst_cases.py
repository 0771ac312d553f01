"""Each hallucination unit's worst cases: up to ``LIMIT`` failed records per (unit, model), worst first.

Each probe kind picks and ranks its own failures (its ``worst_cases`` report hook, in its module under
:mod:`evalsuite.probes.kinds`); a record with ``error`` set is no case (the sample browser has it). Each
case shows the question (with its passage or knowledge), the model's answer, the decision made about it
and the expected answer, all as text made visible by :func:`~evalsuite.report.diff.visible`; the template
autoescapes them. The helpers below are what the pickers build cases with.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from evalsuite.records import SampleRecord, TaskResult
from evalsuite.report.diff import visible
from evalsuite.report.examples import short

if TYPE_CHECKING:
    from evalsuite.probes.registry import Details

D = TypeVar("D", bound="Details")

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
    from evalsuite.probes.registry import PROBE_KINDS, load_kinds

    load_kinds()
    out = []
    for unit in units:
        kind = unit.probe.kind if unit.probe is not None else None
        pick = PROBE_KINDS.get(kind).report.worst_cases if kind is not None and kind in PROBE_KINDS else None
        if pick is None or unit.probe is None:
            continue
        mine = records[(unit.task, unit.model)]
        ranked = sorted(pick(mine), key=lambda r: (r[0], r[1].doc))
        cases = [case for _, case in ranked[:limit]]
        out.append(
            Worst(visible(unit.task), visible(unit.model), unit.probe.kind, cases, len(ranked), len(mine))
        )
    return out


def case(
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


def details(r: SampleRecord, model: type[D]) -> D:
    """The record's probe details as the kind's typed model (its defaults where a record has none)."""
    return r.probe.details_as(model) if r.probe is not None else model()


def right(r: SampleRecord) -> bool:
    return r.probe is not None and r.probe.score is not None and r.probe.score >= 1.0


def question(r: SampleRecord, *parts: tuple[str, str | None]) -> str:
    """The record's text under headings: ``(heading, doc key)``, None for the probe's own original text."""
    if not parts:
        return short(r.probe.original if r.probe is not None else r.prompt, TEXT)
    lines = []
    for heading, key in parts:
        value = (r.probe.original if r.probe is not None else "") if key is None else r.doc.get(key)
        if value is not None:
            lines.append(f"{heading}: {short(value, TEXT)}")
    return "\n\n".join(lines)


def abstention_text(abstained: bool, rule: str | None, similarity: float | None) -> str:
    """What the abstention detector decided about an answer."""
    parts = ["abstained" if abstained else "answered (no abstention found)"]
    if rule:
        parts.append(f"rule: {plain(rule)}")
    if similarity is not None:
        parts.append(f"similarity to an abstention: {similarity:.2f}")
    return " · ".join(parts)


def accepted(target: Any) -> str:
    if isinstance(target, list):
        return "one of: " + " · ".join(plain(t, 200) for t in target) if target else "—"
    return short(target, TEXT)


def plain(value: Any, limit: int = 300) -> str:
    return short(value, limit)


def number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def softmax(loglikelihoods: Sequence[float | None]) -> list[float]:
    """Option probabilities; a failed option (None) gets none, all failed gives a uniform split."""
    finite = [x for x in loglikelihoods if x is not None and math.isfinite(x)]
    if not finite:
        return [1.0 / len(loglikelihoods)] * len(loglikelihoods)
    top = max(finite)
    weights = [math.exp(x - top) if x is not None and math.isfinite(x) else 0.0 for x in loglikelihoods]
    return [w / sum(weights) for w in weights]
