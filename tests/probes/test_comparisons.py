"""Building a run's probe comparisons from its records: which units and metrics, the paired samples, the
family and its adjustment, and every comparison that cannot be made recorded with its reason."""

from __future__ import annotations

import pytest

from evalsuite.config import StatsSettings
from evalsuite.probes.comparisons import ProbeComparisons, build_probe_comparisons
from evalsuite.records import ProbeSummary, SampleRecord, TaskResult
from tests.report import hallucination_run, probe_run

SETTINGS = StatsSettings(resamples=500)
PAIR = [("base", "small")]


def result(unit: str, kind: str, model: str) -> TaskResult:
    summary = ProbeSummary(
        probe=unit.split("/")[0], kind=kind, task=unit.partition("/")[2], metric="acc", samples=0
    )
    return TaskResult(model=model, task=unit, output_type="x", num_fewshot=0, metrics={}, probe=summary)


def perturbation(
    models: tuple[str, ...] = ("base", "small"), samples: int = 6
) -> tuple[list[TaskResult], list[SampleRecord]]:
    unit = "homoglyph/arc_local"
    results = [result(unit, "homoglyph", m) for m in models]
    records = [r for m in models for r in probe_run.records(unit, "homoglyph", samples, m)]
    return results, records


def build(results: list[TaskResult], records: list[SampleRecord], seed: int = 1) -> ProbeComparisons:
    return build_probe_comparisons(PAIR, results, records, SETTINGS, seed)


def test_every_compared_metric_of_every_unit_both_models_ran() -> None:
    results, records = perturbation()
    fabricated = [
        r for m in ("base", "small") for r in hallucination_run.records(m) if r.task == "fabricated"
    ]
    built = build(
        [*results, *(result("fabricated", "fabricated", m) for m in ("base", "small"))], records + fabricated
    )
    assert [(c.unit, c.metric) for c in built.comparisons] == [
        ("fabricated", "hallucination_rate"),
        ("fabricated", "abstention_rate"),
        ("fabricated", "control_accuracy"),
        ("fabricated", "control_abstention_rate"),
        ("homoglyph/arc_local", "pdr"),
        ("homoglyph/arc_local", "perturbed"),
        ("homoglyph/arc_local", "flip_rate"),
    ]
    assert built.skipped == []
    first = built.comparisons[0]
    assert (first.probe, first.kind, first.task, first.n) == ("fabricated", "fabricated", "", 22)
    assert {c.family.split(":")[0] for c in built.comparisons} == {"7 probe comparisons"}
    for c in built.comparisons:
        assert (
            c.ci_low <= c.lower_bound <= c.difference <= c.upper_bound <= c.ci_high or c.ci_low == c.ci_high
        )
        assert c.p_holm is not None and c.p_bh is not None and c.p_holm >= c.p_value
        assert c.p_adjusted == c.p_holm and c.adjustment == "holm"


def test_homoglyph_values_from_the_records() -> None:
    # probe_run flips the perturbed copy of samples 0 and 3 (base) or 2 and 5 (small): copies scored 1 but 2
    built = build(*perturbation())
    pdr = next(c for c in built.comparisons if c.metric == "pdr")
    assert (pdr.baseline_value, pdr.variant_value) == (pytest.approx(2 / 6), pytest.approx(2 / 6))
    assert pdr.difference == 0.0
    assert pdr.n == 6 and pdr.reading == "not significant"


def test_the_same_seed_gives_the_same_comparisons_and_another_another() -> None:
    results, records = perturbation(samples=25)
    assert build(results, records, seed=1) == build(results, records, seed=1)
    assert (
        build(results, records, seed=1).comparisons[0].ci_low
        != build(results, records, seed=2).comparisons[0].ci_low
    )


def test_a_unit_one_model_did_not_run_is_not_compared() -> None:
    results, records = perturbation(models=("base",))
    assert build(results, records) == ProbeComparisons([], [])


def test_only_samples_both_scored_without_error_are_paired() -> None:
    results, records = perturbation(samples=8)
    broken = [
        r.model_copy(update={"error": "timeout"}) if (r.model, r.doc_id) == ("small", 4) else r
        for r in records
    ]
    built = build(results, broken)
    assert {c.n for c in built.comparisons} == {7}


def test_what_cannot_be_compared_is_recorded_with_its_reason() -> None:
    results, records = perturbation(samples=1)
    reasons = {s.reason for s in build(results, records).skipped}
    assert reasons == {"1 sample(s) scored by both; a paired comparison needs at least 2"}

    results, records = perturbation()
    other = [
        r.model_copy(update={"probe": r.probe.model_copy(update={"original": "another question"})})
        if r.model == "small" and r.probe
        else r
        for r in records
    ]
    (reason,) = {s.reason for s in build(results, other).skipped}
    assert reason == "the two models were asked different items (sample 0)"

    wrong = [
        r.model_copy(update={"probe": r.probe.model_copy(update={"score": 0.0})}) if r.probe else r
        for r in records
    ]
    skipped = build(results, wrong).skipped
    assert [(s.metric, s.reason) for s in skipped] == [
        ("pdr", "pdr of base is undefined on the 6 samples both scored")
    ]

    unknown = [result("later/arc_local", "from_a_later_version", m) for m in ("base", "small")]
    (missing,) = build(unknown, []).skipped
    assert (missing.unit, missing.metric, missing.reason) == (
        "later/arc_local",
        "",
        "kind 'from_a_later_version' is not known to this evalsuite",
    )
