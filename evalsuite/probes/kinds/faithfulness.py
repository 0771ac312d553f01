"""Faithfulness to context: does the answer follow the passage, also where the passage contradicts common
knowledge (counterfactual passages; :mod:`evalsuite.probes.hallucination.faithfulness`, items from
:mod:`evalsuite.probes.hallucination.passages`); docs/probes.md."""

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
    "faithfulness": ("faithfulness", "answers that follow the passage, all items"),
    "counterfactual_faithfulness": (
        "counterfactual faithfulness",
        "answers that follow a passage contradicting common knowledge",
    ),
    "memory_rate": ("memory rate", "counterfactual items answered from memory; lower is better"),
}


class FaithfulnessConfig(ProbeConfigBase):
    kind: Literal["faithfulness"]
    max_tokens: int = Field(32, ge=1, le=1024)  # longest generated answer

    brings_own_data: ClassVar[bool] = True


class FaithfulnessDetails(Details):
    source: str = "?"  # where the item comes from (a SQuAD passage or a template)
    counterfactual: bool = False  # the passage contradicts common knowledge
    follows: bool = False  # the answer follows the passage


def build(config: FaithfulnessConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.hallucination.faithfulness import FaithfulnessProbe

    return FaithfulnessProbe(config.max_tokens)


COMPARED = {
    "faithfulness": Comparable(per_record("follows"), Mean(), higher_is_better=True),
    "counterfactual_faithfulness": Comparable(
        per_record("follows_counterfactual"), Mean(), higher_is_better=True
    ),
    "memory_rate": Comparable(per_record("memory"), Mean(), higher_is_better=False),
}


def worst_cases(records: Sequence[SampleRecord]) -> list[Ranked]:
    """Counterfactual passages answered from memory, then other answers that do not follow the passage,
    counterfactual ones first."""
    from evalsuite.report import worst_cases as wc

    out: list[Ranked] = []
    for r in records:
        d = wc.details(r, FaithfulnessDetails)
        if d.follows:
            continue
        memory = bool(r.metrics.get("memory"))
        tier = 0.0 if memory else 1.0 if d.counterfactual else 2.0
        label = "answered from memory against the passage" if memory else "did not follow the passage"
        decision = " · ".join(
            [
                "follows the passage: no",
                f"answered from memory: {'yes' if memory else 'no'}",
                f"{wc.plain(d.source)} item",
                "counterfactual" if d.counterfactual else "agrees with common knowledge",
            ]
        )
        expected = wc.plain(r.target)
        if d.counterfactual and r.doc.get("memory_answer") is not None:
            expected += f" (from memory it would be: {wc.plain(r.doc['memory_answer'])})"
        question = wc.question(r, ("Passage", None), ("Question", "question"))
        out.append(((tier,), wc.case(r, label, question, decision, expected)))
    return out


register(
    ProbeKind(
        name="faithfulness",
        summary="counterfactual passages: does the answer follow the passage",
        config=FaithfulnessConfig,
        details=FaithfulnessDetails,
        metrics=tuple(LABELS),
        build=build,
        report=ReportHooks(
            "hallucination",
            Family("faithfulness", "Faithfulness to context", tuple(LABELS)),
            order=5,
            labels=LABELS,
            worst_cases=worst_cases,
        ),
        comparable=COMPARED,
    )
)
