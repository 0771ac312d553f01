"""DyVal: reasoning items generated from directed acyclic graphs, with answers known by construction, at
difficulty levels 1-4 (Zhu et al., ICLR 2024; generators in :mod:`evalsuite.dynamic.dyval`, the probe in
:mod:`evalsuite.dynamic.dyval_probe`); docs/dynamic.md.

One Config, three kinds: ``dyval_arithmetic`` (values combined by +, -, x and squares), ``dyval_boolean``
(True/False combined by AND, OR, NOT) and ``dyval_deduction`` (facts and if-then rules: True, False or
Unknown). ``limit`` is the number of items per level; a new ``seed`` draws a new item set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from evalsuite.probes.comparable import Comparable, Mean, per_record
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord
    from evalsuite.report.worst_cases import Ranked

LEVELS = (1, 2, 3, 4)  # evalsuite.dynamic.dyval.LEVELS (not imported: kinds import no generator)
FAMILIES = {
    "dyval_arithmetic": "arithmetic DAGs: the value of a node computed from given values",
    "dyval_boolean": "boolean DAGs: the truth value of a node computed with AND, OR and NOT",
    "dyval_deduction": "multi-step deduction from facts and rules: True, False or Unknown",
}
LABELS = {
    "accuracy": ("accuracy", "generated items answered right, every level together"),
    **{f"level_{k}": (f"level {k}", f"items of difficulty level {k} answered right") for k in LEVELS},
}


class DyvalConfig(ProbeConfigBase):
    """``limit``: items per level (default 50)."""

    kind: Literal["dyval_arithmetic", "dyval_boolean", "dyval_deduction"]
    levels: tuple[int, ...] = LEVELS  # the difficulty levels drawn, each a point of the curve
    seed: int | None = None  # the item set's seed; default: drawn from the run's seed
    max_tokens: int = Field(256, ge=1, le=4096)  # longest answer (a model may work it out first)

    brings_own_data: ClassVar[bool] = True
    group: ClassVar[str | None] = "the dyval kinds"

    @field_validator("levels")
    @classmethod
    def _known_levels(cls, levels: tuple[int, ...]) -> tuple[int, ...]:
        unknown = [k for k in levels if k not in LEVELS]
        if unknown or not levels:
            raise ValueError(f"levels are some of {list(LEVELS)}, not {list(levels)}")
        return tuple(sorted(set(levels)))

    @property
    def family(self) -> Literal["arithmetic", "boolean", "deduction"]:
        families: dict[str, Literal["arithmetic", "boolean", "deduction"]] = {
            "dyval_arithmetic": "arithmetic",
            "dyval_boolean": "boolean",
            "dyval_deduction": "deduction",
        }
        return families[self.kind]


class DyvalDetails(Details):
    family: str = ""
    level: int = 0
    nodes: int = 0  # the item's graph size


def build(config: DyvalConfig, cache_dir: Path) -> Probe:
    from evalsuite.dynamic.dyval_probe import DyvalProbe

    return DyvalProbe(config)


def _at_level(k: int) -> Comparable:
    def where(record: SampleRecord) -> bool:
        return record.probe is not None and record.probe.details_as(DyvalDetails).level == k

    return Comparable(per_record("correct", where), Mean(), higher_is_better=True)


COMPARED = {
    "accuracy": Comparable(per_record("correct"), Mean(), higher_is_better=True),
    **{f"level_{k}": _at_level(k) for k in LEVELS},
}


def worst_cases(records: Sequence[SampleRecord]) -> list[Ranked]:
    """Wrong answers, the easiest level first: a failure at level 1 says more than one at level 4."""
    from evalsuite.report import worst_cases as wc

    out: list[Ranked] = []
    for r in records:
        if r.probe is None or r.error is not None or wc.right(r):
            continue
        d = wc.details(r, DyvalDetails)
        label = f"level {d.level} ({d.nodes} nodes) answered wrongly"
        read = "no answer found" if r.filtered is None else f"read as {wc.plain(r.filtered)}"
        out.append(
            ((float(d.level), float(d.nodes)), wc.case(r, label, wc.question(r), read, wc.accepted(r.target)))
        )
    return out


for _name, _summary in FAMILIES.items():
    register(
        ProbeKind(
            name=_name,
            summary=_summary,
            config=DyvalConfig,
            details=DyvalDetails,
            metrics=tuple(LABELS),
            build=build,
            report=ReportHooks(
                "dynamic",
                Family("dyval", "DyVal: generated reasoning items by difficulty level", tuple(LABELS)),
                order=0,
                labels=LABELS,
                worst_cases=worst_cases,
            ),
            comparable=COMPARED,
        )
    )
