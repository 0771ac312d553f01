"""What the probe sections share: which probe units each shows, and their metric tables.

A probe unit is a result with ``probe`` set. The hallucination kinds
(``evalsuite.config.HALLUCINATION_KINDS``) go to the hallucination section, every other kind to the
robustness section; the main Results table shows neither. Each section groups its units into families,
one table each, with a row per (unit, model) and the family's metrics in a fixed order (the
``family_table`` macro of ``robustness.j2`` draws them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evalsuite.config import HALLUCINATION_KINDS
from evalsuite.records import MetricResult, ProbeSummary, TaskResult
from evalsuite.rundir import RunDir


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    metrics: tuple[str, ...]
    mcnemar: bool = False  # a column for the exact McNemar test of clean against perturbed


@dataclass(frozen=True)
class Row:
    unit: str
    model: str
    summary: ProbeSummary
    metrics: list[MetricResult | None]  # in the family's order
    outcomes: list[tuple[str, str]]  # attacks: how many samples ended in success, failed, skipped ...


def probe_units(run: RunDir, *, hallucination: bool) -> list[TaskResult]:
    """The run's hallucination probe units, or (``hallucination=False``) its other probe units."""
    return [
        r
        for r in run.results.results
        if r.probe is not None and (r.probe.kind in HALLUCINATION_KINDS) == hallucination
    ]


def family_tables(
    units: Sequence[TaskResult], families: Sequence[Family], family_of: Callable[[str], str]
) -> list[tuple[Family, list[Row]]]:
    """``(family, rows)`` for every family with a unit, in the families' order; ``family_of`` maps a kind."""
    tables = []
    for family in families:
        rows = [
            Row(r.task, r.model, r.probe, [r.metrics.get(m) for m in family.metrics], _outcomes(r.probe))
            for r in units
            if r.probe is not None and family_of(r.probe.kind) == family.key
        ]
        if rows:
            tables.append((family, rows))
    return tables


def _outcomes(summary: ProbeSummary) -> list[tuple[str, str]]:
    counts = summary.settings.get("outcomes")
    return [(str(k), str(v)) for k, v in counts.items()] if isinstance(counts, dict) else []
