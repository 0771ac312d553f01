"""HaluEval QA: the model judges whether an answer to a question is hallucinated (Li et al. 2023;
:mod:`evalsuite.probes.hallucination.halueval`); docs/probes.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from evalsuite.probes.comparable import Comparable, Mean, per_record
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord
    from evalsuite.report.worst_cases import Ranked

LABELS = {
    "accuracy": ("accuracy", "right judgements over all items; an unparseable reply counts as wrong"),
    "accuracy_parsed": ("accuracy (parsed)", "right judgements over the replies with a Yes or No"),
    "unparseable_rate": ("unparseable", "replies with neither Yes nor No; lower is better"),
    "hallucinated_recall": ("hallucinated recall", "hallucinated answers judged hallucinated"),
    "right_answer_accuracy": ("right-answer accuracy", "right answers judged not hallucinated"),
}


class HaluEvalConfig(ProbeConfigBase):
    kind: Literal["halueval"]
    max_tokens: int = Field(32, ge=1, le=1024)  # longest generated answer

    brings_own_data: ClassVar[bool] = True


class HaluEvalDetails(Details):
    hallucinated: bool = False  # the answer shown is the hallucinated one
    judgement: bool | None = None  # the model's: True for Yes (hallucinated), None for no Yes or No
    index: int | None = None  # the item's line in the data file


def build(config: HaluEvalConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.hallucination.halueval import HaluEvalProbe

    return HaluEvalProbe(config.max_tokens)


def _hallucinated(record: SampleRecord) -> bool:
    return record.probe is not None and record.probe.details_as(HaluEvalDetails).hallucinated


def _right(record: SampleRecord) -> bool:
    return record.probe is not None and not record.probe.details_as(HaluEvalDetails).hallucinated


COMPARED = {
    "accuracy": Comparable(per_record("correct"), Mean(), higher_is_better=True),
    "accuracy_parsed": Comparable(per_record("correct_parsed"), Mean(), higher_is_better=True),
    "unparseable_rate": Comparable(per_record("unparseable"), Mean(), higher_is_better=False),
    "hallucinated_recall": Comparable(per_record("correct", _hallucinated), Mean(), higher_is_better=True),
    "right_answer_accuracy": Comparable(per_record("correct", _right), Mean(), higher_is_better=True),
}


def worst_cases(records: Sequence[SampleRecord]) -> list[Ranked]:
    """Hallucinated answers judged right, then right answers judged hallucinated, then replies with
    neither Yes nor No."""
    from evalsuite.report import worst_cases as wc

    out: list[Ranked] = []
    for r in records:
        d = wc.details(r, HaluEvalDetails)
        if d.judgement is not None and d.judgement == d.hallucinated:
            continue
        if d.judgement is None:
            tier, label, decision = 2.0, "unparseable: no Yes or No", "no judgement found"
        elif d.hallucinated:
            tier, label, decision = 0.0, "missed a hallucinated answer", "judged right (No)"
        else:
            tier, label, decision = 1.0, "flagged a right answer as hallucinated", "judged hallucinated (Yes)"
        if d.hallucinated:
            right_answer = wc.plain(r.doc.get("right_answer", "?"))
            expected = f"Yes: the answer is hallucinated (the right answer: {right_answer})"
        else:
            expected = "No: the answer is right"
        question = wc.question(
            r, ("Knowledge", "knowledge"), ("Question", "question"), ("Answer judged", None)
        )
        out.append(((tier,), wc.case(r, label, question, decision, expected)))
    return out


register(
    ProbeKind(
        name="halueval",
        summary="HaluEval QA: judge whether an answer is hallucinated",
        config=HaluEvalConfig,
        details=HaluEvalDetails,
        metrics=tuple(LABELS),
        build=build,
        report=ReportHooks(
            "hallucination",
            Family("halueval", "HaluEval QA judgements", tuple(LABELS)),
            order=2,
            labels=LABELS,
            worst_cases=worst_cases,
        ),
        comparable=COMPARED,
    )
)
