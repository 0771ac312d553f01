"""Robustness metrics: known answers on hand-built records, intervals against statsmodels and scipy."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.regression.linear_model import OLS

from evalsuite.probes.metrics import (
    copies,
    mcnemar,
    paired_metrics,
    pdr_interval,
)
from evalsuite.records import ProbeDetail, SampleRecord
from evalsuite.stats.intervals import IntervalSettings

SETTINGS = IntervalSettings(seed=11, confidence=0.95, resamples=2000)


def record(
    doc_id: int,
    variant: str,
    score: float | None,
    answer: Any,
    *,
    changed: bool = True,
    error: str | None = None,
) -> SampleRecord:
    """A probe record; a copy the probe did not change has the same perturbed and original text."""
    original = f"question {doc_id}"
    perturbed = original if variant == "clean" or not changed else f"{original} (changed)"
    return SampleRecord(
        model="m",
        task="typo/mmlu_local",
        doc_id=doc_id,
        variant=variant,
        prompt=perturbed,
        metrics={} if score is None else {"acc": score},
        error=error,
        probe=ProbeDetail(
            probe="typo",
            kind="typo",
            task="mmlu_local",
            original=original,
            perturbed=perturbed,
            answer=answer,
            score=None if error else score,
        ),
    )


# doc: (clean score, answer), (seed-0 score, answer, text changed), (seed-1 score, answer)
TABLE = [
    record(0, "clean", 1, 0),
    record(0, "seed-0", 1, 0, changed=False),
    record(0, "seed-1", 0, 2),
    record(1, "clean", 1, 1),
    record(1, "seed-0", 0, 3),
    record(1, "seed-1", 0, 3),
    record(2, "clean", 0, 2),
    record(2, "seed-0", 1, 1),
    record(2, "seed-1", 0, 2),
    record(3, "clean", 1, 0),  # doc 3: its second copy failed, so it is left out everywhere
    record(3, "seed-0", 1, 0),
    record(3, "seed-1", None, None, error="backend failed"),
    record(4, "clean", 1, 0),
    record(4, "seed-0", 1, 0),
    record(4, "seed-1", 1, 0),
]


@pytest.fixture(scope="module")
def table_metrics() -> dict[str, Any]:
    shuffled = list(TABLE)
    random.Random(3).shuffle(shuffled)  # record order must not matter, the clean copy is found by name
    return paired_metrics(copies(shuffled), SETTINGS)


def test_copies_keep_the_error_free_samples_clean_first() -> None:
    data = copies(TABLE)
    assert data.doc_ids == [0, 1, 2, 4]
    assert data.errors == 1
    assert data.clean.tolist() == [1, 1, 0, 1]
    assert data.changed.tolist() == [[1, 0], [0, 0], [1, 0], [1, 1]]
    # clean answers 0 1 2 0; copies' answers [0, 2] [3, 3] [1, 2] [0, 0]
    assert data.flips.tolist() == [[0, 1], [1, 1], [1, 0], [0, 0]]
    assert data.altered.tolist() == [[0, 1], [1, 1], [1, 1], [1, 1]]


@pytest.mark.parametrize(
    ("name", "value", "n"),
    [
        ("clean", 3 / 4, 4),  # 1 1 0 1
        ("perturbed", 4 / 8, 8),  # 1 0 | 0 0 | 1 0 | 1 1
        ("drop", 2 / 8, 8),  # 0 1 | 1 1 | -1 0 | 0 0
        ("pdr", 1 - (4 / 8) / (3 / 4), 4),
        ("flip_rate", 4 / 8, 8),  # answers: 0 2 vs 0 | 3 3 vs 1 | 1 2 vs 2 | 0 0 vs 0
        ("worst_case", 1 / 4, 4),  # only doc 4 is right in every copy
        ("changed", 7 / 8, 8),  # doc 0's first copy kept its text
    ],
)
def test_paired_metrics_known_answers(table_metrics: dict[str, Any], name: str, value: float, n: int) -> None:
    result = table_metrics[name]
    assert result.value == pytest.approx(value, abs=1e-12)
    assert result.n == n
    assert result.n_errors == 1
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low <= result.value <= result.ci_high


def test_paired_metric_methods_and_directions(table_metrics: dict[str, Any]) -> None:
    methods = {name: (m.ci_method, m.clusters, m.higher_is_better) for name, m in table_metrics.items()}
    assert methods == {
        "clean": ("wilson", None, True),
        "perturbed": ("cluster-robust t", 4, True),
        "drop": ("cluster-robust t", 4, False),
        "pdr": ("bootstrap percentile", None, False),
        "flip_rate": ("cluster-robust t", 4, False),
        "worst_case": ("wilson", None, True),
        "changed": ("cluster-robust t", 4, None),
    }
    # CR1 by hand for perturbed: cluster sums of (x - 1/2) are 0, -1, 0, 1; se^2 = 4/3 * 2 / 8^2
    assert table_metrics["perturbed"].stderr == pytest.approx(np.sqrt(4 / 3 * 2) / 8, abs=1e-12)


def binary_records(clean: np.ndarray, changed: np.ndarray) -> list[SampleRecord]:
    """Records of samples x copies binary scores; the answer is 0 when right, else 1 + doc_id % 3."""

    def answer(doc_id: int, right: float) -> int:
        return 0 if right else 1 + doc_id % 3

    out = []
    for doc_id, (c, row) in enumerate(zip(clean, changed, strict=True)):
        out.append(record(doc_id, "clean", float(c), answer(doc_id, c)))
        out += [record(doc_id, f"seed-{j}", float(s), answer(doc_id, s)) for j, s in enumerate(row)]
    return out


@pytest.fixture(scope="module")
def simulated() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024)
    ability = rng.random(40)  # per-sample difficulty makes copies of one sample correlated
    clean = (rng.random(40) < ability + 0.15).astype(np.float64)
    changed = (rng.random((40, 3)) < ability[:, None]).astype(np.float64)
    return clean, changed


def statsmodels_mean(values: np.ndarray, groups: np.ndarray, confidence: float) -> tuple[float, ...]:
    fit = OLS(values, np.ones_like(values)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    low, high = fit.conf_int(alpha=1 - confidence)[0]
    return float(fit.params[0]), float(fit.bse[0]), float(low), float(high)


def test_clustered_metrics_equal_statsmodels_cluster_ols(simulated: tuple[np.ndarray, np.ndarray]) -> None:
    clean, changed = simulated
    result = paired_metrics(copies(binary_records(clean, changed)), SETTINGS)
    groups = np.repeat(np.arange(40), 3)
    flips = (changed != clean[:, None]).astype(np.float64)  # answers differ exactly when scores do
    for name, values in {
        "perturbed": changed,
        "drop": clean[:, None] - changed,
        "flip_rate": flips,
    }.items():
        value, stderr, low, high = statsmodels_mean(values.ravel(), groups, 0.95)
        metric = result[name]
        assert (metric.ci_method, metric.clusters, metric.n) == ("cluster-robust t", 40, 120)
        assert metric.value == pytest.approx(value, abs=1e-12)
        assert metric.stderr == pytest.approx(stderr, rel=1e-9)
        assert metric.ci_low == pytest.approx(low, rel=1e-9)
        assert metric.ci_high == pytest.approx(high, rel=1e-9)


def test_pdr_is_one_minus_perturbed_over_clean(simulated: tuple[np.ndarray, np.ndarray]) -> None:
    clean, changed = simulated
    result = paired_metrics(copies(binary_records(clean, changed)), SETTINGS)
    pdr, perturbed, clean_mean = result["pdr"], result["perturbed"].value, result["clean"].value
    assert pdr.value is not None and perturbed is not None and clean_mean is not None
    assert pdr.value == pytest.approx(1 - changed.mean() / clean.mean(), abs=1e-12)
    assert pdr.value == pytest.approx(1 - perturbed / clean_mean, abs=1e-12)
    assert pdr.ci_low is not None and pdr.ci_high is not None
    assert pdr.ci_low < pdr.value < pdr.ci_high
    again = paired_metrics(copies(binary_records(clean, changed)), SETTINGS)["pdr"]
    assert (again.ci_low, again.ci_high) == (pdr.ci_low, pdr.ci_high)  # seeded


def test_pdr_without_a_right_clean_answer_has_no_value() -> None:
    interval = pdr_interval(np.zeros(5), np.ones(5), np.random.default_rng(0), SETTINGS)
    assert np.isnan(interval.value) and interval.method == "none"
    records = binary_records(np.zeros(5), np.ones((5, 2)))
    assert paired_metrics(copies(records), SETTINGS)["pdr"].value is None


def test_mcnemar_equals_the_binomial_test_on_the_first_copy(
    simulated: tuple[np.ndarray, np.ndarray],
) -> None:
    clean, changed = simulated
    result = mcnemar(copies(binary_records(clean, changed)))
    assert result is not None
    first = changed[:, 0]
    b = int(np.sum((clean == 1) & (first == 0)))
    c = int(np.sum((clean == 0) & (first == 1)))
    table = result.discordant
    assert (table.baseline_only, table.variant_only) == (b, c)
    assert table.both == int(np.sum((clean == 1) & (first == 1)))
    assert table.neither == int(np.sum((clean == 0) & (first == 0)))
    assert b + c > 0
    assert result.p_value == pytest.approx(binomtest(b, b + c, 0.5).pvalue, abs=1e-12)


def test_mcnemar_known_table() -> None:
    # clean vs first copy: 6 both right, 5 lost, 1 gained, 2 both wrong; p = binomtest(5, 6) = 0.21875
    clean = np.array([1] * 6 + [1] * 5 + [0] + [0] * 2, dtype=np.float64)
    first = np.array([1] * 6 + [0] * 5 + [1] + [0] * 2, dtype=np.float64)
    result = mcnemar(copies(binary_records(clean, np.stack([first, 1 - first], axis=1))))
    assert result is not None
    assert result.discordant.model_dump() == {"both": 6, "baseline_only": 5, "variant_only": 1, "neither": 2}
    assert result.p_value == pytest.approx(0.21875, abs=1e-12)


def test_a_sample_with_an_error_in_any_copy_is_left_out() -> None:
    for failing in ("clean", "seed-0", "seed-1"):
        records = [
            r
            if not (r.doc_id == 1 and r.variant == failing)
            else record(1, failing, None, None, error="boom")
            for r in binary_records(np.ones(4), np.ones((4, 2)))
        ]
        data = copies(records)
        assert data.doc_ids == [0, 2, 3]
        result = paired_metrics(data, SETTINGS)
        assert {m.n_errors for m in result.values()} == {1}
        assert result["clean"].n == 3 and result["perturbed"].n == 6


def test_a_sample_with_fewer_copies_is_not_an_error_and_keeps_the_others() -> None:
    """Samples differ in how many copies they have where questions differ in how many options they have
    (the option-order probe makes one copy per rotation). No request failed here, so nothing is an
    error, and the one short sample must not push out the three full ones."""
    records = binary_records(np.ones(3), np.ones((3, 3)))  # docs 0-2: clean + 3 copies, all right
    records += binary_records(np.ones(4), np.ones((4, 2)))[-3:]  # doc 3: clean + 2 copies, all right
    data = copies(records)
    assert data.errors == 0
    assert {0, 1, 2} <= set(data.doc_ids)
