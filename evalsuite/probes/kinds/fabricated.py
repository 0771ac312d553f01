"""Fabricated entities: questions about people, places, organisations, papers and products that do not
exist, each with a control question about a real entity (:mod:`evalsuite.probes.hallucination.fabricated`,
items from :mod:`evalsuite.probes.hallucination.entities`); docs/probes.md."""

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
    "hallucination_rate": (
        "hallucination rate",
        "made-up entities answered without abstaining; lower is better",
    ),
    "abstention_rate": ("abstention", "made-up entities the model abstained on"),
    "control_accuracy": (
        "control accuracy",
        "questions about real entities answered with an accepted answer",
    ),
    "control_abstention_rate": (
        "control abstention",
        "real-entity questions abstained on; lower is better",
    ),
}


class FabricatedConfig(ProbeConfigBase):
    kind: Literal["fabricated"]
    embedding: bool = True  # also use sentence embeddings (all-MiniLM-L6-v2) to find abstentions
    max_tokens: int = Field(32, ge=1, le=1024)  # longest generated answer

    brings_own_data: ClassVar[bool] = True


class FabricatedDetails(Details):
    fabricated: bool = False  # a made-up entity (else a control about a real one)
    category: str = "entity"
    entity: str = ""
    abstained: bool = False
    rule: str | None = None  # the abstention rule that matched
    similarity: float | None = None  # to the nearest abstention, where embeddings are on


def build(config: FabricatedConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.hallucination.fabricated import FabricatedProbe

    return FabricatedProbe(config)


def _fabricated(record: SampleRecord) -> bool:
    return record.probe is not None and record.probe.details_as(FabricatedDetails).fabricated


def _control(record: SampleRecord) -> bool:
    return record.probe is not None and not record.probe.details_as(FabricatedDetails).fabricated


COMPARED = {
    "hallucination_rate": Comparable(per_record("hallucinated"), Mean(), higher_is_better=False),
    "abstention_rate": Comparable(per_record("abstained", _fabricated), Mean(), higher_is_better=True),
    "control_accuracy": Comparable(per_record("correct"), Mean(), higher_is_better=True),
    "control_abstention_rate": Comparable(per_record("abstained", _control), Mean(), higher_is_better=False),
}


def worst_cases(records: Sequence[SampleRecord]) -> list[Ranked]:
    """Made-up entities answered (least like an abstention first), then controls answered wrongly, then
    controls abstained on."""
    from evalsuite.report import worst_cases as wc

    out: list[Ranked] = []
    for r in records:
        d = wc.details(r, FabricatedDetails)
        abstention = wc.abstention_text(d.abstained, d.rule, d.similarity)
        if d.fabricated:
            if d.abstained:
                continue
            label = f"hallucinated: answered about a made-up {wc.plain(d.category)}"
            expected = f"an abstention: {wc.plain(d.entity)} does not exist"
            out.append(((0.0, d.similarity or 0.0), wc.case(r, label, wc.question(r), abstention, expected)))
        elif not wc.right(r):
            label = "control abstained on" if d.abstained else "control answered wrongly"
            case = wc.case(r, label, wc.question(r), abstention, wc.accepted(r.target))
            out.append(((2.0 if d.abstained else 1.0,), case))
    return out


register(
    ProbeKind(
        name="fabricated",
        summary="questions about entities that do not exist, with real controls",
        config=FabricatedConfig,
        details=FabricatedDetails,
        metrics=tuple(LABELS),
        build=build,
        report=ReportHooks(
            "hallucination",
            Family("fabricated", "Fabricated entities", tuple(LABELS)),
            order=0,
            labels=LABELS,
            worst_cases=worst_cases,
        ),
        comparable=COMPARED,
    )
)
