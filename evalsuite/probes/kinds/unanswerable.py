"""Unanswerable questions: SQuAD 2.0 passages with questions they cannot answer, mixed with answerable
ones (Rajpurkar et al. 2018; :mod:`evalsuite.probes.hallucination.unanswerable`); docs/probes.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from evalsuite.probes.comparable import Comparable, DetectionF1, Mean, Ratio, Rows, per_record
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord
    from evalsuite.report.worst_cases import Ranked

LABELS = {
    "abstention_f1": ("abstention F1", "F1 of abstaining as a detector of unanswerable questions"),
    "abstention_precision": ("abstention precision", "abstentions that were on unanswerable questions"),
    "abstention_recall": ("abstention recall", "unanswerable questions the model abstained on"),
    "exact_match": ("exact match", "answerable questions answered exactly (an abstention scores 0)"),
    "f1": ("F1", "token F1 of the answers to answerable questions (SQuAD normalisation)"),
    "false_abstention_rate": ("false abstention", "answerable questions abstained on; lower is better"),
}


class UnanswerableConfig(ProbeConfigBase):
    kind: Literal["unanswerable"]
    embedding: bool = True  # also use sentence embeddings (all-MiniLM-L6-v2) to find abstentions
    max_tokens: int = Field(32, ge=1, le=1024)  # longest generated answer

    brings_own_data: ClassVar[bool] = True


class UnanswerableDetails(Details):
    unanswerable: bool = False
    abstained: bool = False
    rule: str | None = None  # the abstention rule that matched


def build(config: UnanswerableConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.hallucination.unanswerable import UnanswerableProbe

    return UnanswerableProbe(config)


HIT, ABSTAINED, UNANSWERABLE = range(3)  # the columns of abstention_rows


def abstention_rows(records: Sequence[SampleRecord]) -> Rows:
    """Per question answered without error: did the model abstain on an unanswerable question, did it
    abstain, was the question unanswerable (abstention as a detector of unanswerable questions)."""
    out = {}
    for r in records:
        if r.error is None and "abstained" in r.metrics and "unanswerable" in r.metrics:
            abstained, unanswerable = float(r.metrics["abstained"]), float(r.metrics["unanswerable"])
            out[r.doc_id] = (abstained * unanswerable, abstained, unanswerable)
    return out


def _answerable(record: SampleRecord) -> bool:
    return not record.metrics.get("unanswerable")


COMPARED = {
    "abstention_f1": Comparable(
        abstention_rows, DetectionF1(HIT, ABSTAINED, UNANSWERABLE), higher_is_better=True
    ),
    "abstention_precision": Comparable(abstention_rows, Ratio(HIT, ABSTAINED), higher_is_better=True),
    "abstention_recall": Comparable(abstention_rows, Ratio(HIT, UNANSWERABLE), higher_is_better=True),
    "exact_match": Comparable(per_record("exact_match"), Mean(), higher_is_better=True),
    "f1": Comparable(per_record("f1"), Mean(), higher_is_better=True),
    "false_abstention_rate": Comparable(per_record("abstained", _answerable), Mean(), higher_is_better=False),
}


def worst_cases(records: Sequence[SampleRecord]) -> list[Ranked]:
    """Unanswerable questions answered, then answerable ones abstained on, then answered wrongly."""
    from evalsuite.report import worst_cases as wc

    out: list[Ranked] = []
    for r in records:
        d = wc.details(r, UnanswerableDetails)
        answerable = wc.accepted(r.target)
        if d.unanswerable and not d.abstained:
            tier, label, expected = 0.0, "answered an unanswerable question", "an abstention"
        elif not d.unanswerable and d.abstained:
            tier, label, expected = 1.0, "abstained on an answerable question", answerable
        elif not d.unanswerable and not wc.right(r):
            tier, label, expected = 2.0, "answered an answerable question wrongly", answerable
        else:
            continue
        question = wc.question(r, ("Passage", "context"), ("Question", None))
        decision = wc.abstention_text(d.abstained, d.rule, None)
        out.append(((tier,), wc.case(r, label, question, decision, expected)))
    return out


register(
    ProbeKind(
        name="unanswerable",
        summary="SQuAD 2.0: abstain on unanswerable questions, answer the others",
        config=UnanswerableConfig,
        details=UnanswerableDetails,
        metrics=tuple(LABELS),
        build=build,
        report=ReportHooks(
            "hallucination",
            Family("unanswerable", "Unanswerable questions", tuple(LABELS)),
            order=1,
            labels=LABELS,
            worst_cases=worst_cases,
        ),
        comparable=COMPARED,
    )
)
