"""Robustness metrics of one probe unit on one model, each with an interval from ``evalsuite.stats``.

Perturbation and option-order probes give every sample one clean copy and k changed copies:

    clean         mean clean score                          Wilson (or normal)
    perturbed     mean over all changed copies              cluster-robust t, clustered by sample
    drop          clean - perturbed, per copy               cluster-robust t, clustered by sample
    pdr           1 - perturbed / clean                     bootstrap over samples
    flip_rate     changed copies whose answer differs       cluster-robust t, clustered by sample
    worst_case    samples right in every copy (HELM)        Wilson
    changed       copies whose text the probe did change    cluster-robust t
    mcnemar       clean vs the first changed copy of each sample (one pair per sample, so exact)

Copies of one sample are not independent, which is why their intervals are clustered by sample.
A sample with a failed request in any copy is left out of every metric and counted in ``n_errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evalsuite.probes.base import ProbeUnit
from evalsuite.probes.copies import Array, Copies, copies
from evalsuite.probes.scoring import metric_of
from evalsuite.records import (
    Discordant,
    McNemarResult,
    MetricResult,
    ProbeSummary,
    SampleRecord,
    TaskResult,
)
from evalsuite.stats.intervals import (
    Interval,
    IntervalSettings,
    bootstrap_interval,
    mean_interval,
    mean_stderr,
)
from evalsuite.stats.intervals import normal_interval as normal_bounds
from evalsuite.stats.paired import discordance, mcnemar_exact
from evalsuite.tasks.evaluate import metric_result

metric = metric_result  # the probes' metrics are kept like every task's


def paired_metrics(data: Copies, settings: IntervalSettings) -> dict[str, MetricResult]:
    """The metrics of the table above (all but McNemar)."""
    n, errors, conf = data.n, data.errors, settings.confidence
    present = ~np.isnan(data.changed)
    cells = int(present.sum())
    clusters = [d for d, row in zip(data.doc_ids, present, strict=True) for _ in range(int(row.sum()))]
    worst = np.minimum(data.clean, np.where(present, data.changed, np.inf).min(axis=1, initial=np.inf))
    per_sample = np.nanmean(np.where(present, data.changed, np.nan), axis=1) if cells else data.clean

    def clustered(values: Array) -> Interval:
        return mean_interval(values[present], conf, clusters)

    rng = np.random.default_rng(settings.seed)
    return {
        "clean": metric(mean_interval(data.clean, conf), n, errors, True),
        "perturbed": metric(clustered(data.changed), cells, errors, True),
        "drop": metric(clustered(data.clean[:, None] - data.changed), cells, errors, False),
        "pdr": metric(pdr_interval(data.clean, per_sample, rng, settings), n, errors, False, "pdr"),
        "flip_rate": metric(clustered(data.flips), cells, errors, False),
        "worst_case": metric(mean_interval(worst, conf), n, errors, True),
        "changed": metric(clustered(data.altered), cells, errors, None),
    }


def normal_interval(values: Sequence[float], confidence: float) -> Interval:
    """Mean with a normal interval, for counts and shares that are not proportions of successes (a
    mean of queries that happen to be all 0 or 1 must not get a Wilson interval)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return Interval(float("nan"), None, None, None, confidence, "none")
    stderr = mean_stderr(x)
    if stderr is None:
        return Interval(float(x.mean()), None, None, None, confidence, "none")
    low, high = normal_bounds(float(x.mean()), stderr, confidence)
    return Interval(float(x.mean()), stderr, low, high, confidence, "normal")


def pdr_interval(
    clean: Array, perturbed: Array, rng: np.random.Generator, settings: IntervalSettings
) -> Interval:
    """Performance drop rate 1 - sum(perturbed) / sum(clean), with a percentile bootstrap over samples.

    ``perturbed`` holds each sample's mean over its copies, so a resample keeps a sample's copies
    together. PDR is undefined where the clean sum is 0: such resamples are dropped, and when more than
    1% of them are, the interval is left out rather than conditioned on the rest."""
    conf = settings.confidence
    if clean.sum() == 0:
        return Interval(float("nan"), None, None, None, conf, "none")
    value = float(1 - perturbed.sum() / clean.sum())
    if clean.size < 2:
        return Interval(value, None, None, None, conf, "none")
    rows = rng.integers(0, clean.size, size=(settings.resamples, clean.size))
    clean_sums, perturbed_sums = clean[rows].sum(axis=1), perturbed[rows].sum(axis=1)
    defined = clean_sums > 0
    if defined.mean() < 0.99:
        return Interval(value, None, None, None, conf, "none")
    draws = 1 - perturbed_sums[defined] / clean_sums[defined]
    tail = (1 - conf) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(value, float(draws.std(ddof=1)), float(low), float(high), conf, "bootstrap percentile")


def mcnemar(data: Copies) -> McNemarResult | None:
    """Exact McNemar test of clean against the first changed copy: one pair per sample."""
    if data.n == 0 or data.changed.shape[1] == 0 or np.isnan(data.changed[:, 0]).any():
        return None
    if not _binary(data.clean, data.changed[:, 0]):
        return None
    table = discordance(data.clean, data.changed[:, 0])
    return McNemarResult(
        discordant=Discordant(
            both=table.both,
            baseline_only=table.baseline_only,
            variant_only=table.variant_only,
            neither=table.neither,
        ),
        p_value=mcnemar_exact(table),
    )


def _binary(*arrays: Array) -> bool:
    return all(bool(np.all((a == 0) | (a == 1))) for a in arrays)


def spread_interval(columns: Array, rng: np.random.Generator, settings: IntervalSettings) -> Interval:
    """Best minus worst column mean (samples x formats), bootstrapped over samples."""

    def spread(*cols: Array, axis: int = -1) -> Array:
        means = np.stack([c.mean(axis=axis) for c in cols])
        return means.max(axis=0) - means.min(axis=0)  # type: ignore[no-any-return]

    return bootstrap_interval(list(columns.T), spread, rng, settings.confidence, settings.resamples)


def statistic_interval(
    columns: Array, statistic: Callable[..., Array], rng: np.random.Generator, settings: IntervalSettings
) -> Interval:
    return bootstrap_interval(list(columns.T), statistic, rng, settings.confidence, settings.resamples)


def task_result(
    unit: ProbeUnit, model: str, metrics: dict[str, MetricResult], summary: ProbeSummary, primary: str
) -> TaskResult:
    return TaskResult(
        model=model,
        task=unit.name,
        output_type=str(unit.lm_task.OUTPUT_TYPE) if unit.task is not None else "generate_until",
        num_fewshot=unit.task.num_fewshot if unit.task is not None else 0,
        primary_metric=primary,
        metrics=metrics,
        probe=summary,
    )


def summary(unit: ProbeUnit, samples: int, **extra: Any) -> ProbeSummary:
    config = unit.config
    settings = config.settings()
    return ProbeSummary(
        probe=config.label,
        kind=config.kind,
        task=unit.task_name,
        metric=metric_of(unit),
        samples=samples,
        settings=settings,
        **extra,
    )


def paired_result(
    unit: ProbeUnit, model: str, records: Sequence[SampleRecord], settings: IntervalSettings
) -> TaskResult:
    """The result of a probe that answers a clean copy and changed copies of each sample: the paired
    metrics above, with the exact McNemar test of clean against the first changed copy; PDR first."""
    data = copies(records)
    extra = summary(unit, data.n, mcnemar=mcnemar(data))
    return task_result(unit, model, paired_metrics(data, settings), extra, "pdr")
