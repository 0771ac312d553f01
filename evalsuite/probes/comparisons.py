"""Variant against baseline on every probe unit, built from the records alone.

For each (baseline, variant) pair of the run, each probe unit both models ran and each metric the unit's
kind declares comparable (``ProbeKind.comparable``, :mod:`evalsuite.probes.comparable`), the two models
are compared on the source samples (doc_ids) both scored without error, asked the same items:

* the interval of ``variant - baseline`` is a paired cluster bootstrap over source samples: each
  resample draws the samples with replacement and weights both models' rows of a sample alike, so a
  sample's copies (a perturbation's seeds, an option order's rotations) move together
  (:func:`evalsuite.stats.weighted.paired_bootstrap`); ``stats.confidence`` for ``ci_low``/``ci_high``
  and the (1 - 2 ``stats.alpha``) interval for the one-sided bounds gates judge with;
* the p-value is a paired permutation test swapping the two models' rows within each sample, exact
  (all 2^n patterns) for few samples (:func:`evalsuite.stats.weighted.paired_permutation_pvalue`);
* p-values are adjusted by Holm and by Benjamini-Hochberg over the run's probe comparisons (every pair x
  probe unit x compared metric), a family of their own: adding a probe changes no task comparison's
  adjusted p-value or reading. ``stats.adjust`` picks ``p_adjusted``.

A comparison that cannot be made (fewer than 2 shared samples, the metric undefined on them, the models
asked different items) is recorded with its reason instead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from evalsuite.config import StatsSettings
from evalsuite.probes.comparable import Comparable, Rows
from evalsuite.probes.registry import PROBE_KINDS, load_kinds
from evalsuite.records import (
    ProbeComparison,
    ProbeSummary,
    SampleRecord,
    SkippedProbeComparison,
    TaskResult,
)
from evalsuite.stats.decisions import family_adjustment
from evalsuite.stats.weighted import paired_bootstrap, paired_permutation_pvalue, value

METHOD = "paired cluster bootstrap over samples (percentile); paired permutation within samples"


class Skipped(Exception):
    """A probe comparison that cannot be made; the reason is recorded instead of a result."""


@dataclass(frozen=True)
class ProbeComparisons:
    comparisons: list[ProbeComparison] = field(default_factory=list)
    skipped: list[SkippedProbeComparison] = field(default_factory=list)


def build_probe_comparisons(
    pairs: Sequence[tuple[str, str]],
    results: Sequence[TaskResult],
    samples: Sequence[SampleRecord],
    settings: StatsSettings,
    seed: int,
) -> ProbeComparisons:
    """Every comparison of a variant with its baseline on a probe unit's comparable metrics, adjusted as
    one family; and why the others cannot be made."""
    load_kinds()
    units: dict[str, ProbeSummary] = {}
    ran = set()
    for result in results:
        if result.probe is not None:
            units.setdefault(result.task, result.probe)
            ran.add((result.model, result.task))
    records: dict[tuple[str, str], list[SampleRecord]] = defaultdict(list)
    for record in samples:
        if (record.model, record.task) in ran:
            records[(record.model, record.task)].append(record)
    rows = _Cache(records)
    comparisons: list[ProbeComparison] = []
    skipped: list[SkippedProbeComparison] = []
    for position, unit in enumerate(sorted(units)):
        summary = units[unit]
        for index, (baseline, variant) in enumerate(pairs):
            if (baseline, unit) not in ran or (variant, unit) not in ran:
                continue
            if summary.kind not in PROBE_KINDS:
                reason = f"kind {summary.kind!r} is not known to this evalsuite"
                skipped.append(_skip(unit, summary, "", baseline, variant, reason))
                continue
            compared = PROBE_KINDS.get(summary.kind).comparable
            for number, (metric, comparable) in enumerate(compared.items()):
                rng = np.random.default_rng([seed, index, position, number])
                try:
                    comparisons.append(
                        compare_probe(
                            unit, summary, metric, comparable, (baseline, variant), rows, settings, rng
                        )
                    )
                except Skipped as reason:
                    skipped.append(_skip(unit, summary, metric, baseline, variant, str(reason)))
    return ProbeComparisons(adjust_probe_family(comparisons, settings), skipped)


class _Cache:
    """Each model's rows of a unit per row builder, and the items it was asked, computed once."""

    def __init__(self, records: Mapping[tuple[str, str], list[SampleRecord]]) -> None:
        self.records = records
        self.rows: dict[tuple[str, str, Callable[..., Rows]], Rows] = {}
        self.items: dict[tuple[str, str], dict[int, frozenset[str]]] = {}

    def of(self, model: str, unit: str, comparable: Comparable) -> Rows:
        key = (model, unit, comparable.rows)
        if key not in self.rows:
            self.rows[key] = comparable.rows(self.records.get((model, unit), []))
        return self.rows[key]

    def asked(self, model: str, unit: str) -> dict[int, frozenset[str]]:
        """What each sample asked, by doc_id: the original texts of its records (the item, the question
        before any change); two models paired on a doc_id must have been asked the same."""
        if (model, unit) not in self.items:
            texts: dict[int, set[str]] = defaultdict(set)
            for record in self.records.get((model, unit), []):
                if record.probe is not None:
                    texts[record.doc_id].add(record.probe.original)
            self.items[(model, unit)] = {doc: frozenset(t) for doc, t in texts.items()}
        return self.items[(model, unit)]


def compare_probe(
    unit: str,
    summary: ProbeSummary,
    metric: str,
    comparable: Comparable,
    pair: tuple[str, str],
    cache: _Cache,
    settings: StatsSettings,
    rng: np.random.Generator,
) -> ProbeComparison:
    baseline, variant = pair
    base_rows, variant_rows = cache.of(baseline, unit, comparable), cache.of(variant, unit, comparable)
    docs = sorted(base_rows.keys() & variant_rows.keys())
    base_asked, variant_asked = cache.asked(baseline, unit), cache.asked(variant, unit)
    for doc in docs:
        if base_asked.get(doc) != variant_asked.get(doc):
            raise Skipped(f"the two models were asked different items (sample {doc})")
    if len(docs) < 2:
        raise Skipped(f"{len(docs)} sample(s) scored by both; a paired comparison needs at least 2")
    x = np.array([base_rows[d] for d in docs], dtype=np.float64)
    y = np.array([variant_rows[d] for d in docs], dtype=np.float64)
    if x.shape != y.shape:
        raise Skipped("the two models' records of a sample differ in shape (runs probed differently)")
    statistic = comparable.statistic
    base_value, variant_value = value(statistic, x), value(statistic, y)
    for who, number in ((baseline, base_value), (variant, variant_value)):
        if not math.isfinite(number):
            raise Skipped(f"{metric} of {who} is undefined on the {len(docs)} samples both scored")
    confidence, alpha = settings.confidence, settings.alpha
    levels = (confidence, 1 - 2 * alpha)
    intervals = paired_bootstrap(statistic, x, y, rng, levels, settings.resamples)
    if intervals is None:
        raise Skipped(f"{metric} is undefined in more than 1% of the bootstrap resamples; no interval")
    (low, high), (lower, upper) = intervals
    p_value = paired_permutation_pvalue(statistic, x, y, rng, settings.resamples)
    return ProbeComparison(
        unit=unit,
        probe=summary.probe,
        kind=summary.kind,
        task=summary.task,
        metric=metric,
        baseline=baseline,
        variant=variant,
        method=METHOD,
        n=len(docs),
        higher_is_better=comparable.higher_is_better,
        baseline_value=base_value,
        variant_value=variant_value,
        difference=variant_value - base_value,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        alpha=alpha,
        lower_bound=lower,
        upper_bound=upper,
        p_value=p_value,
    )


def _skip(
    unit: str, summary: ProbeSummary, metric: str, baseline: str, variant: str, reason: str
) -> SkippedProbeComparison:
    return SkippedProbeComparison(
        unit=unit,
        probe=summary.probe,
        task=summary.task,
        metric=metric,
        baseline=baseline,
        variant=variant,
        reason=reason,
    )


def adjust_probe_family(comparisons: list[ProbeComparison], settings: StatsSettings) -> list[ProbeComparison]:
    """Holm and BH over the probe comparisons, the family stated on each; then a plain reading."""
    if not comparisons:
        return []
    family = (
        f"{len(comparisons)} probe comparisons: every (baseline, variant) pair x probe unit x compared "
        "metric; a family apart from the task comparisons"
    )
    adjustments = family_adjustment([c.p_value for c in comparisons], settings.adjust)
    return [
        c.model_copy(update={**a, "family": family, "reading": reading(c, float(a["p_adjusted"]))})
        for c, a in zip(comparisons, adjustments, strict=True)
    ]


def reading(c: ProbeComparison, p_adjusted: float) -> str:
    """ "variant better" or "variant worse" when the adjusted p-value is below alpha, else "not
    significant" (no power is computed for these statistics)."""
    if p_adjusted < c.alpha:
        return "variant better" if (c.difference > 0) == c.higher_is_better else "variant worse"
    return "not significant"
