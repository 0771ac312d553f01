"""The report's hallucination section: every hallucination probe unit's metrics, reliability diagrams, and
each unit's worst cases.

Units of the hallucination kinds (``fabricated``, ``unanswerable``, ``halueval``, ``faithfulness``,
``self_consistency/<task>``, ``calibration/<task>``; :mod:`evalsuite.probes.hallucination` defines their
metrics) get one table per kind, a row per (unit, model), each metric with its interval and its meaning
on hover. Each calibration unit and model gets a reliability diagram (:class:`Reliability`) drawn from the
bins in its ``probe.reliability``, each variant its comparison with its baseline on every unit's compared
metrics (:mod:`evalsuite.probes.comparisons`), and every unit and model a list of its worst records
(:mod:`evalsuite.report.worst_cases`). The main Results table and the robustness section leave these
units out (:func:`~evalsuite.report.probe_tables.probe_units`).
"""

from __future__ import annotations

from dataclasses import dataclass

from evalsuite.probes.registry import kinds
from evalsuite.records import MetricResult, ReliabilityBin, TaskResult
from evalsuite.report.probe_tables import comparisons_in, family_tables, probe_units
from evalsuite.report.render import Section, add_section, clean
from evalsuite.report.worst_cases import worst_cases
from evalsuite.rundir import RunDir


@dataclass
class Reliability:
    """A reliability diagram: accuracy against confidence, one bar per non-empty bin, and the diagonal."""

    label: str
    bins: list[ReliabilityBin]  # the non-empty ones
    ece: MetricResult | None
    size: int = 240  # the plot area is a square of this side
    left: int = 44
    top: int = 14
    bottom: int = 40

    @property
    def width(self) -> int:
        return self.left + self.size + 14

    @property
    def height(self) -> int:
        return self.top + self.size + self.bottom

    @property
    def most(self) -> int:
        return max((b.count for b in self.bins), default=0)

    def x(self, confidence: float) -> float:
        """Pixels from the left; confidence 0 at the plot's left edge, 1 at its right."""
        return round(self.left + min(max(confidence, 0.0), 1.0) * self.size, 2)

    def y(self, accuracy: float) -> float:
        """Pixels from the top; accuracy 0 at the plot's bottom edge, 1 at its top."""
        return round(self.top + (1.0 - min(max(accuracy, 0.0), 1.0)) * self.size, 2)


def reliability(result: TaskResult) -> Reliability:
    """The diagram of one calibration unit and model, from the bins its probe summary keeps."""
    bins = result.probe.reliability if result.probe is not None else []
    shown = [b for b in bins if b.count > 0 and b.accuracy is not None]
    return Reliability(clean(f"{result.task} · {result.model}"), shown, result.metrics.get("ece"))


def hallucination(run: RunDir) -> Section | None:
    units = probe_units(run, "hallucination")
    if not units:
        return None
    compared, skipped = comparisons_in(run, "hallucination")
    data = {
        "tables": family_tables(units, "hallucination"),  # a table per kind
        "compared": compared,  # each variant against its baseline on the units' compared metrics
        "skipped": skipped,
        "names": {kind.report.family.key: kind.report.labels for kind in kinds()},
        "diagrams": [reliability(r) for r in units if r.probe is not None and r.probe.reliability],
        "worst": worst_cases(run.samples, units),
    }
    return Section("hallucination", "Hallucination", "hallucination", data)


add_section(hallucination)
