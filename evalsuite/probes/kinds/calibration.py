"""Calibration: how well a model's confidence in its multiple-choice answers matches its accuracy
(ECE, Brier, reliability; :mod:`evalsuite.probes.hallucination.calibration`); docs/probes.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord
    from evalsuite.report.worst_cases import Ranked

LABELS = {
    "ece": ("ECE", "expected calibration error over 10 confidence bins; lower is better"),
    "brier": ("Brier", "multi-class Brier score; lower is better"),
    "accuracy": ("accuracy", "questions whose most likely option is the gold one"),
    "mean_confidence": ("mean confidence", "mean probability of the most likely option"),
}


class CalibrationConfig(ProbeConfigBase):
    kind: Literal["calibration"]


def build(config: CalibrationConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.hallucination.calibration import CalibrationProbe

    return CalibrationProbe()


def worst_cases(records: Sequence[SampleRecord]) -> list[Ranked]:
    """Wrong predictions, the most confident first."""
    from evalsuite.report import worst_cases as wc

    out: list[Ranked] = []
    for r in records:
        if not r.choices or not isinstance(r.target, int) or not 0 <= r.target < len(r.choices):
            continue
        p = wc.softmax([c.loglikelihood for c in r.choices])
        picked = max(range(len(p)), key=p.__getitem__)
        if picked == r.target:
            continue
        options = " · ".join(f"{wc.plain(c.text, 200)} ({q:.2f})" for c, q in zip(r.choices, p, strict=True))
        answer = f"{wc.plain(r.choices[picked].text)} (p = {p[picked]:.3f})"
        expected = f"{wc.plain(r.choices[r.target].text)} (p = {p[r.target]:.3f})"
        decision = f"confidence {p[picked]:.3f} in a wrong option; options: {options}"
        label = f"wrong with confidence {p[picked]:.2f}"
        out.append(((0.0, -p[picked]), wc.case(r, label, wc.question(r), decision, expected, answer)))
    return out


register(
    ProbeKind(
        name="calibration",
        summary="multiple-choice confidence: ECE, Brier, reliability",
        config=CalibrationConfig,
        details=Details,
        metrics=tuple(LABELS),
        build=build,
        report=ReportHooks(
            "hallucination",
            Family("calibration", "Calibration", tuple(LABELS)),
            order=4,
            labels=LABELS,
            worst_cases=worst_cases,
        ),
    )
)
