"""Calibration of multiple-choice confidence: is the model as often right as it is confident?

Each question's confidence is the softmax over its options' log-likelihoods (the task's own requests,
answered once by the engine for the static task and this probe alike); the prediction is the most likely
option. Reported with percentile-bootstrap intervals over questions:

    ece              expected calibration error, 10 equal-width bins (Guo et al. 2017)
    brier            multi-class Brier score, mean of sum_k (p_k - 1[k = gold])^2
    accuracy, mean_confidence
plus the reliability diagram's bins in the unit's ``probe.reliability``.
"""

from __future__ import annotations

import numpy as np

from evalsuite.errors import ConfigError
from evalsuite.probes.base import ProbeUnit, Sample, Variant, clean
from evalsuite.probes.hallucination.common import rate
from evalsuite.probes.kinds.calibration import BINS
from evalsuite.probes.metrics import metric, summary, task_result
from evalsuite.probes.scoring import StaticProbe
from evalsuite.records import ReliabilityBin, SampleRecord, TaskResult
from evalsuite.stats.intervals import Interval, IntervalSettings
from evalsuite.stats.uncertainty import calibration_interval, reliability_bins


class CalibrationProbe(StaticProbe):
    """Runs the task's own requests (StaticProbe.run); only the summary is its own."""

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        if not unit.multiple_choice:
            raise ConfigError(
                f"probe {unit.config.label!r}: calibration needs a multiple-choice task; "
                f"{unit.task_name!r} is not one"
            )
        return [clean(unit, s) for s in samples]

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        ok = [r for r in records if r.error is None and r.choices and isinstance(r.target, int)]
        errors = len(records) - len(ok)
        probabilities = [softmax([_logprob(c.loglikelihood) for c in r.choices or []]) for r in ok]
        gold = [int(r.target) for r in ok]
        confidence = np.array([p.max() for p in probabilities])
        correct = np.array([float(p.argmax() == g) for p, g in zip(probabilities, gold, strict=True)])
        rng = np.random.default_rng(settings.seed)
        n = len(ok)
        if n:
            conf, resamples = settings.confidence, settings.resamples
            both = calibration_interval(probabilities, gold, rng, BINS, conf, resamples)
            ece, brier = both.ece, both.brier
        else:
            ece = brier = Interval(float("nan"), None, None, None, settings.confidence, "none")
        metrics = {
            "ece": metric(ece, n, errors, False, "ece"),
            "brier": metric(brier, n, errors, False, "brier"),
            "accuracy": rate(list(correct), settings, errors, True),
            "mean_confidence": rate(list(confidence), settings, errors, None),
        }
        bins = (
            [
                ReliabilityBin(
                    low=b.low,
                    high=b.high,
                    count=b.count,
                    mean_confidence=b.mean_confidence,
                    accuracy=b.accuracy,
                )
                for b in reliability_bins(confidence, correct, BINS)
            ]
            if n
            else []
        )
        extra = summary(unit, n).model_copy(update={"reliability": bins})
        return task_result(unit, model, metrics, extra, "ece")


def softmax(logits: list[float]) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    if not np.isfinite(x.max()):
        return np.full(x.size, 1.0 / x.size)
    e = np.exp(x - x.max())
    return e / e.sum()  # type: ignore[no-any-return]


def _logprob(value: float | None) -> float:
    """A stored option log-likelihood; None (a failed or infinite score) is -inf. 0.0 is certainty."""
    return -np.inf if value is None else value
