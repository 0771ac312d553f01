"""Calibration: how well a model's confidence in its multiple-choice answers matches its accuracy
(ECE, Brier, reliability; :mod:`evalsuite.probes.hallucination.calibration`); docs/probes.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from evalsuite.probes.comparable import CalibrationError, Comparable, Mean, Rows
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord
    from evalsuite.report.worst_cases import Ranked

BINS = 10  # equal-width confidence bins of the ECE
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


CONFIDENCE, CORRECT, BRIER = range(3)  # the columns of calibration_rows


def calibration_rows(records: Sequence[SampleRecord]) -> Rows:
    """Per question scored without error: the probability of the most likely option (softmax over the
    options' log-likelihoods), whether that option is the gold one, and the multi-class Brier score."""
    from evalsuite.report.worst_cases import softmax

    out = {}
    for r in records:
        if r.error is None and r.choices and isinstance(r.target, int):
            p = softmax([c.loglikelihood for c in r.choices])
            picked = max(range(len(p)), key=p.__getitem__)  # the first on ties
            brier = sum((q - float(k == r.target)) ** 2 for k, q in enumerate(p))
            out[r.doc_id] = (p[picked], float(picked == r.target), brier)
    return out


COMPARED = {
    "ece": Comparable(calibration_rows, CalibrationError(BINS, CONFIDENCE, CORRECT), higher_is_better=False),
    "brier": Comparable(calibration_rows, Mean(BRIER), higher_is_better=False),
    "accuracy": Comparable(calibration_rows, Mean(CORRECT), higher_is_better=True),
}


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
        comparable=COMPARED,
    )
)
