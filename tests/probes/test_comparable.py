"""The kinds' comparable metrics: each statistic on rows worked by hand (with unit and other weights), and
every kind's comparables reproducing the metrics its own summary reports from the same records."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from evalsuite.probes.base import ProbeUnit
from evalsuite.probes.comparable import (
    Auroc,
    CalibrationError,
    DetectionF1,
    DropRate,
    GrandMean,
    Mean,
    PositionStd,
    Ratio,
    Spread,
)
from evalsuite.probes.registry import kinds, probe_kind
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings
from evalsuite.stats.uncertainty import auroc, expected_calibration_error
from evalsuite.stats.weighted import value
from tests.report import hallucination_run, probe_run


def run(statistic: Any, rows: list[list[float]], *weights: list[float]) -> list[float]:
    return [
        float(x) for x in statistic(np.array(rows, dtype=np.float64), np.array(weights, dtype=np.float64))
    ]


def same(got: list[float], expected: list[float]) -> bool:
    return all(
        (math.isnan(g) and math.isnan(e)) or g == pytest.approx(e, abs=1e-12)
        for g, e in zip(got, expected, strict=True)
    )


def test_mean() -> None:
    got = run(Mean(), [[1], [0], [1], [1]], [1, 1, 1, 1], [2, 0, 1, 0], [0, 0, 0, 0])
    assert same(got, [0.75, 1.0, math.nan])


def test_ratio_of_weighted_sums() -> None:
    got = run(Ratio(0, 1), [[2, 3], [0, 2], [1, 1]], [1, 1, 1], [0, 1, 2], [1, 0, 0])
    assert same(got, [3 / 6, 2 / 4, 2 / 3])


def test_drop_rate_undefined_without_a_clean_score() -> None:
    got = run(DropRate(1, 0), [[1, 0.5], [1, 1], [0, 0]], [1, 1, 1], [2, 0, 0], [0, 0, 1])
    assert same(got, [0.25, 0.5, math.nan])


def test_calibration_error() -> None:
    # bins 9, 8, 3, 3: |1 - 0.95| + |0 - 0.85| + |(1 - 0.36) + (0 - 0.34)| = 1.2 over 4 questions;
    # weights 2, 0, 1, 1: 2 * 0.05 + 0.30 = 0.4 over 4
    rows = [[0.95, 1], [0.85, 0], [0.36, 1], [0.34, 0]]
    got = run(CalibrationError(10, 0, 1), rows, [1, 1, 1, 1], [2, 0, 1, 1])
    assert same(got, [0.3, 0.1])
    assert got[0] == pytest.approx(expected_calibration_error([r[0] for r in rows], [r[1] for r in rows]))


def test_spread_and_grand_mean_over_formats() -> None:
    rows = [[1, 0, 1], [1, 1, 0]]  # format means 1, 1/2, 1/2; weighted 2, 1: 1, 1/3, 2/3
    assert same(run(Spread(), rows, [1, 1], [2, 1]), [0.5, 2 / 3])
    assert same(run(GrandMean(), rows, [1, 1], [2, 1]), [4 / 6, 6 / 9])


def test_position_std() -> None:
    assert same(run(PositionStd(), [[1, 0], [1, 0]], [1, 1]), [0.5])
    assert same(run(PositionStd(), [[1, 0], [0, 1]], [1, 1], [3, 1]), [0.0, 0.25])


def test_detection_f1_is_zero_where_nothing_is_predicted_or_there() -> None:
    rows = [[1, 1, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]]  # (hit, predicted, actual)
    assert same(run(DetectionF1(0, 1, 2), rows, [1, 1, 1, 1], [0, 0, 0, 1]), [0.5, 0.0])


def test_weighted_auroc() -> None:
    # positives 0.5, 0.9, 0.3 against negatives 0.1, 0.5: 1 + 1/2 + 2 + 1 = 4.5 of 6 pairs
    rows = [[0.1, 0], [0.5, 1], [0.5, 0], [0.9, 1], [0.3, 1]]
    got = run(Auroc(), rows, [1, 1, 1, 1, 1], [1, 1, 0, 1, 1], [0, 1, 0, 1, 1], [2, 1, 1, 1, 1])
    # without the tied negative every positive wins; without negatives there is none; doubled 0.1: 7.5/9
    assert same(got, [0.75, 1.0, math.nan, 7.5 / 9])
    scores, labels = [r[0] for r in rows], [r[1] == 1 for r in rows]
    assert got[0] == pytest.approx(auroc(scores, labels))


# --- every kind's comparables reproduce its own metrics ---

SETTINGS = IntervalSettings(seed=0, confidence=0.95, resamples=200)
ROBUSTNESS = {"homoglyph/arc_local": "homoglyph", "option_order/mmlu_local": "option_order"}
ROBUSTNESS |= {"prompt_format/boolq_local": "prompt_format", "attack/sst2_local": "attack"}


def summarize(kind: str, records: list[SampleRecord]) -> TaskResult:
    """The kind's own result from the records (its probe's summarize, as a run calls it)."""
    from evalsuite.probes.adversarial.attack import AttackProbe
    from evalsuite.probes.adversarial.formats import FormatProbe
    from evalsuite.probes.adversarial.options import OptionOrderProbe
    from evalsuite.probes.adversarial.perturbation import PerturbationProbe
    from evalsuite.probes.hallucination.calibration import CalibrationProbe
    from evalsuite.probes.hallucination.consistency import ConsistencyProbe
    from evalsuite.probes.hallucination.fabricated import FabricatedProbe
    from evalsuite.probes.hallucination.faithfulness import FaithfulnessProbe
    from evalsuite.probes.hallucination.halueval import HaluEvalProbe
    from evalsuite.probes.hallucination.unanswerable import UnanswerableProbe

    probes: dict[str, type[Any]] = {
        "option_order": OptionOrderProbe,
        "prompt_format": FormatProbe,
        "attack": AttackProbe,
        "calibration": CalibrationProbe,
        "self_consistency": ConsistencyProbe,
        "fabricated": FabricatedProbe,
        "faithfulness": FaithfulnessProbe,
        "halueval": HaluEvalProbe,
        "unanswerable": UnanswerableProbe,
    }
    config = probe_kind(kind).config
    data: dict[str, Any] = {"kind": kind} if config.brings_own_data else {"kind": kind, "tasks": ["t"]}
    unit = ProbeUnit(config.model_validate(data), None, 0)
    probe = object.__new__(probes.get(kind, PerturbationProbe))  # summarize reads nothing it builds
    return probe.summarize(unit, records[0].model, records, SETTINGS)  # type: ignore[no-any-return]


def completed(record: SampleRecord) -> SampleRecord:
    """The report's hand-built records with the per-record metrics its tables do not need: a HaluEval
    judgement's correctness among parsed replies, an answerable question's exact match and F1."""
    metrics = dict(record.metrics)
    if record.task == "halueval" and not metrics["unparseable"]:
        metrics["correct_parsed"] = metrics["correct"]
    if record.task == "unanswerable" and not metrics["unanswerable"]:
        metrics |= {"exact_match": float(record.doc_id % 3 == 1), "f1": (record.doc_id % 5) / 4}
    return record.model_copy(update={"metrics": metrics})


def cases() -> list[tuple[str, str, list[SampleRecord]]]:
    out = []
    for model in probe_run.MODELS:
        for unit, kind in ROBUSTNESS.items():
            out.append((kind, model, probe_run.records(unit, kind, probe_run.UNITS[unit][2] + 6, model)))
        mine = [completed(r) for r in hallucination_run.records(model)]
        for unit, kind in hallucination_run.UNITS.items():
            out.append((kind, model, [r for r in mine if r.task == unit]))
    return out


@pytest.mark.parametrize(("kind", "model", "records"), cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_each_comparable_with_unit_weights_is_the_units_own_metric(
    kind: str, model: str, records: list[SampleRecord]
) -> None:
    result = summarize(kind, records)
    compared = probe_kind(kind).comparable
    assert compared, kind
    for name, comparable in compared.items():
        rows = comparable.rows(records)
        mine = value(comparable.statistic, np.array(list(rows.values()), dtype=np.float64))
        reported = result.metrics[name]
        assert reported.value is not None and math.isfinite(mine), (kind, name)
        assert mine == pytest.approx(reported.value, abs=1e-12), (kind, name)
        assert comparable.higher_is_better == reported.higher_is_better, (kind, name)


def test_every_kind_compares_its_primary_metric_and_only_metrics_it_reports() -> None:
    primary = {"option_order": "consistency", "prompt_format": "spread", "attack": "attack_success_rate"}
    primary |= {"calibration": "ece", "self_consistency": "auroc_semantic_entropy"}
    primary |= {"fabricated": "hallucination_rate", "unanswerable": "abstention_f1"}
    primary |= {"halueval": "accuracy", "faithfulness": "faithfulness"}
    primary |= {f"dyval_{f}": "accuracy" for f in ("arithmetic", "boolean", "deduction")}
    primary |= {"gsm_symbolic": "drop"}
    for kind in kinds():
        assert set(kind.comparable) <= set(kind.metrics), kind.name
        assert primary.get(kind.name, "pdr") in kind.comparable, kind.name


def test_a_sample_with_a_failed_copy_has_no_row() -> None:
    records = probe_run.records("homoglyph/arc_local", "homoglyph", 3, "base")
    broken = [
        r.model_copy(update={"error": "timeout"}) if r.doc_id == 1 and r.variant != "clean" else r
        for r in records
    ]
    rows = probe_kind("homoglyph").comparable["pdr"].rows(broken)
    assert sorted(rows) == [0, 2]
