"""What the probe sections share: which probe units each shows, and their metric tables.

A probe unit is a result with ``probe`` set. Each probe kind names its section (robustness or
hallucination) and its family, a table of the section (its ``report`` hooks in
:mod:`evalsuite.probes.kinds`); the main Results table shows neither section's units. A table has a row per
(unit, model) and the family's metrics in a fixed order (the ``family_table`` macro of ``robustness.j2``
draws them). A kind this evalsuite does not know (a run of a later version) goes to the robustness section
without a table. Each section also shows its units' comparisons of a variant with its baseline
(``probe_comparisons`` in results.json; the ``probe_comparisons`` macro).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evalsuite.probes.registry import PROBE_KINDS, Family, families, load_kinds
from evalsuite.records import (
    MetricResult,
    ProbeComparison,
    ProbeSummary,
    SkippedProbeComparison,
    TaskResult,
)
from evalsuite.rundir import RunDir


@dataclass(frozen=True)
class Row:
    unit: str
    model: str
    summary: ProbeSummary
    metrics: list[MetricResult | None]  # in the family's order
    outcomes: list[tuple[str, str]]  # attacks: how many samples ended in success, failed, skipped ...


def section_of(kind: str) -> str:
    load_kinds()
    return PROBE_KINDS.get(kind).report.section if kind in PROBE_KINDS else "robustness"


def probe_units(run: RunDir, section: str) -> list[TaskResult]:
    """The run's probe units that the section shows (robustness: those of kinds it does not know too)."""
    return [r for r in run.results.results if r.probe is not None and section_of(r.probe.kind) == section]


def family_tables(units: Sequence[TaskResult], section: str) -> list[tuple[Family, list[Row]]]:
    """``(family, rows)`` for every family of the section with a unit, in the section's order."""
    tables = []
    for family, kinds in families(section):
        rows = [
            Row(r.task, r.model, r.probe, [r.metrics.get(m) for m in family.metrics], _outcomes(r.probe))
            for r in units
            if r.probe is not None and r.probe.kind in kinds
        ]
        if rows:
            tables.append((family, rows))
    return tables


def comparisons_in(run: RunDir, section: str) -> tuple[list[ProbeComparison], list[SkippedProbeComparison]]:
    """The run's probe comparisons of the section's units, and those it could not make."""
    kinds = {r.task: r.probe.kind for r in run.results.results if r.probe is not None}

    def shown(unit: str) -> bool:
        return section_of(kinds.get(unit, "")) == section

    results = run.results
    return (
        [c for c in results.probe_comparisons if shown(c.unit)],
        [s for s in results.skipped_probe_comparisons if shown(s.unit)],
    )


def _outcomes(summary: ProbeSummary) -> list[tuple[str, str]]:
    counts = summary.settings.get("outcomes")
    return [(str(k), str(v)) for k, v in counts.items()] if isinstance(counts, dict) else []
