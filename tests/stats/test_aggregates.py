"""lm-eval's aggregations as ratio statistics, the interval each metric gets, and paired ratio tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from lm_eval.api.metrics import bits_per_byte, mean, perplexity, weighted_perplexity
from numpy.typing import NDArray

from evalsuite.stats.aggregates import AGGREGATES, paired_ratio_test, summarize
from evalsuite.stats.paired import bootstrap_interval_of_mean, permutation_pvalue

Array = NDArray[np.float64]


def loglik_pairs(rng: np.random.Generator, size: int, scale: float = 1.0) -> list[tuple[float, int]]:
    """(log-likelihood, words or bytes) per document, as lm-eval's items."""
    lengths = rng.integers(3, 60, size=size)
    return [(float(-rng.gamma(2.0, scale) * n), int(n)) for n in lengths]


def columns(aggregation: str, items: list[Any]) -> tuple[Array, Array]:
    return AGGREGATES[aggregation].columns(items)


def test_ratio_aggregates_equal_lm_evals_functions() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(300).tolist()
    logliks = (-rng.gamma(2.0, 1.5, size=300)).tolist()
    pairs = loglik_pairs(rng, 300)
    cases = [
        ("mean", scores, mean),
        ("perplexity", logliks, perplexity),
        ("weighted_perplexity", pairs, weighted_perplexity),
        ("bits_per_byte", pairs, bits_per_byte),
        ("weighted_perplexity", [list(p) for p in pairs], weighted_perplexity),  # JSON gives lists
    ]
    for name, items, reference in cases:
        aggregate = AGGREGATES[name]
        assert float(aggregate(*aggregate.columns(items))) == pytest.approx(reference(items), rel=1e-12)


def test_ratio_aggregates_vectorize_over_resamples() -> None:
    pairs = loglik_pairs(np.random.default_rng(1), 50)
    num, den = columns("bits_per_byte", pairs)
    index = np.random.default_rng(2).integers(0, 50, size=(7, 50))
    batched = AGGREGATES["bits_per_byte"](num[index], den[index])
    assert batched.shape == (7,)
    for row, idx in zip(batched, index, strict=True):
        assert row == pytest.approx(bits_per_byte([pairs[i] for i in idx]), rel=1e-12)


def test_summarize_picks_the_method_from_the_data() -> None:
    rng = np.random.default_rng(3)
    binary = (rng.random(200) < 0.4).astype(float).tolist()
    continuous = rng.random(200).tolist()
    clusters = [i // 10 for i in range(200)]
    assert summarize(binary, "mean", None, rng).method == "wilson"
    assert summarize(continuous, "mean", None, rng).method == "normal"
    clustered = summarize(binary, "mean", None, rng, clusters=clusters)
    assert (clustered.method, clustered.clusters) == ("cluster-robust t", 20)
    ppl = summarize((-rng.gamma(2.0, 1.0, size=200)).tolist(), "perplexity", None, rng, resamples=500)
    assert ppl.method == "bootstrap percentile"
    assert ppl.low is not None and ppl.high is not None
    assert ppl.low < ppl.value < ppl.high


def test_summarize_bootstraps_other_aggregations_with_their_function() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=100).tolist()

    def median(items: list[Any]) -> float:
        return float(np.median(items))

    interval = summarize(values, "median", median, rng, resamples=300)
    assert interval.method == "bootstrap percentile"
    assert interval.value == pytest.approx(float(np.median(values)))
    assert interval.low is not None and interval.high is not None
    assert interval.low < interval.value < interval.high
    with pytest.raises(ValueError, match="no way to aggregate 'median'"):
        summarize(values, "median", None, rng)


def test_other_aggregations_draw_every_resample_asked_for() -> None:
    """No cap of its own (it once took at most 1,000): the aggregation runs on the data, then once per
    resample."""
    calls: list[int] = []

    def corpus_metric(items: list[Any]) -> float:
        calls.append(len(items))
        return float(np.mean(items))

    values = np.random.default_rng(6).normal(size=20).tolist()
    summarize(values, "corpus_metric", corpus_metric, np.random.default_rng(7), resamples=2500)
    assert calls == [20] * (1 + 2500)


def test_paired_ratio_test_of_identical_models() -> None:
    rng = np.random.default_rng(5)
    cols = columns("weighted_perplexity", loglik_pairs(rng, 200))
    result = paired_ratio_test(AGGREGATES["weighted_perplexity"], cols, cols, rng, resamples=2000)
    assert result.difference == 0.0
    assert (result.low, result.high) == (0.0, 0.0)
    assert result.p_value >= 0.9


def test_paired_ratio_test_finds_a_clear_difference() -> None:
    rng = np.random.default_rng(6)
    pairs = loglik_pairs(rng, 300)
    worse = [(ll - 0.1 * n * abs(rng.normal(1.0, 0.5)), n) for ll, n in pairs]  # 0.1 nats/word worse
    aggregate = AGGREGATES["bits_per_byte"]
    result = paired_ratio_test(
        aggregate, columns("bits_per_byte", pairs), columns("bits_per_byte", worse), rng
    )
    assert result.difference == pytest.approx(bits_per_byte(worse) - bits_per_byte(pairs), rel=1e-12)
    assert result.difference > 0  # variant - baseline: the worse variant has more bits per byte
    assert result.p_value < 0.001
    assert 0 < result.low < result.difference < result.high


def test_paired_ratio_test_of_a_mean_agrees_with_the_paired_mean_tests() -> None:
    rng = np.random.default_rng(7)
    base = rng.random(400)
    variant = base + rng.normal(0.035, 0.2, size=400)
    cols = (base, np.ones(400)), (variant, np.ones(400))
    result = paired_ratio_test(AGGREGATES["mean"], *cols, np.random.default_rng(8), 0.95, 10_000)
    assert result.difference == pytest.approx(float(np.mean(variant - base)), abs=1e-12)
    p = permutation_pvalue(base, variant, np.random.default_rng(9), 9999)
    assert 0.02 < p < 0.5  # not a trivial case
    assert result.p_value == pytest.approx(p, abs=0.02)
    low, high = bootstrap_interval_of_mean(variant - base, np.random.default_rng(10), 0.95, 10_000)
    assert (result.low, result.high) == pytest.approx((low, high), abs=0.003)
    assert math.isclose(result.high - result.low, high - low, rel_tol=0.1)
