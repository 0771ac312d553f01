"""Option order: every rotation of a multiple-choice question's options (Zheng et al. 2024, "Large
Language Models Are Not Robust Multiple Choice Selectors"); docs/probes.md."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from evalsuite.probes.comparable import SAME, Comparable, Mean, PositionStd, Rows, copy_rows
from evalsuite.probes.kinds.perturbation import COMPARED as PERTURBATION_COMPARED
from evalsuite.probes.kinds.perturbation import PAIRED
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord

METRICS = (*PAIRED, "rstd", "consistency")


class OptionOrderConfig(ProbeConfigBase):
    kind: Literal["option_order"]


class OptionOrderDetails(Details):
    rotation: int | None = None  # how far the options were rotated
    gold_position: int | None = None  # where the right option stands in this copy
    picked_position: int | None = None  # where the option the model picked stands in this copy


def build(config: OptionOrderConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.adversarial.options import OptionOrderProbe

    return OptionOrderProbe()


def position_rows(records: Mapping[int, Sequence[SampleRecord]]) -> dict[int, tuple[float, ...]]:
    """Per question (doc_id): was it answered right when its answer sat at each position (the rows of
    ``rstd``). Only questions with the most common number of copies take part, so every row covers
    every position."""
    counts = Counter(len(group) for group in records.values())
    if not counts:
        return {}
    k = counts.most_common(1)[0][0]
    rows = {}
    for doc, group in records.items():
        if len(group) != k:
            continue
        row = [0.0] * k
        for record in group:
            if record.probe is not None and isinstance(record.target, int):
                moved = record.probe.details_as(OptionOrderDetails).gold_position
                position = record.target if moved is None else moved
                row[position] = record.probe.score or 0.0
        rows[doc] = tuple(row)
    return rows


def _position_rows(records: Sequence[SampleRecord]) -> Rows:
    from evalsuite.probes.copies import copies

    return position_rows(copies(records).records)


COMPARED = {
    **PERTURBATION_COMPARED,
    "consistency": Comparable(copy_rows, Mean(SAME), higher_is_better=True),
    "rstd": Comparable(_position_rows, PositionStd(), higher_is_better=False),
}


register(
    ProbeKind(
        name="option_order",
        summary="the answer options in every rotation",
        config=OptionOrderConfig,
        details=OptionOrderDetails,
        metrics=METRICS,
        build=build,
        report=ReportHooks(
            "robustness", Family("option_order", "Option order", METRICS, mcnemar=True), order=1
        ),
        comparable=COMPARED,
    )
)
