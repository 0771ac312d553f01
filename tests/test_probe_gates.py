"""The probe_change gate: judged on the probe comparison's interval (pass, fail, inconclusive, or the
point value), a comparison that could not be made is inconclusive, and every bad reference is one
ConfigError before the run."""

from __future__ import annotations

from typing import Any

import pytest

from evalsuite.config import GatePolicy, parse_config
from evalsuite.errors import ConfigError
from evalsuite.gates import check_references, evaluate, parse_policy
from evalsuite.records import ProbeComparison, Results, SkippedProbeComparison


def policy(**rule: Any) -> GatePolicy:
    base = {"kind": "probe_change", "probe": "typo", "metric": "pdr", "max_increase": 0.05}
    return parse_policy({"rules": [{**base, **rule}]}, "test")


def compared(
    difference: float, low: float, high: float, lower: float, upper: float, **changes: Any
) -> ProbeComparison:
    values: dict[str, Any] = {
        "unit": "typo/arc",
        "probe": "typo",
        "kind": "typo",
        "task": "arc",
        "metric": "pdr",
        "baseline": "base",
        "variant": "int8",
        "method": "m",
        "n": 50,
        "higher_is_better": False,
        "baseline_value": 0.1,
        "variant_value": 0.1 + difference,
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "confidence": 0.95,
        "alpha": 0.05,
        "lower_bound": lower,
        "upper_bound": upper,
        "p_value": 0.5,
    }
    return ProbeComparison(**{**values, **changes})


def checks(
    rules: GatePolicy, *comparisons: ProbeComparison, skipped: tuple[SkippedProbeComparison, ...] = ()
) -> list[tuple[str, str]]:
    results = Results(
        run="r", results=[], probe_comparisons=list(comparisons), skipped_probe_comparisons=list(skipped)
    )
    return [(c.status, c.reason) for c in evaluate(rules, results).checks]


def test_pass_when_the_one_sided_bound_is_within_the_limit() -> None:
    assert checks(policy(), compared(0.01, -0.02, 0.06, -0.01, 0.04)) == [
        ("pass", "pdr 0.1000 -> 0.1100, increase +0.0100: one-sided 95% bound +0.0400 is within 0.05")
    ]


def test_fail_when_the_whole_interval_lies_beyond_it() -> None:
    assert checks(policy(), compared(0.2, 0.1, 0.3, 0.12, 0.28)) == [
        (
            "fail",
            "pdr 0.1000 -> 0.3000, increase +0.2000: the whole 95% CI [+0.1000, +0.3000] lies above 0.05",
        )
    ]


def test_inconclusive_when_the_interval_reaches_both_sides() -> None:
    ((status, reason),) = checks(policy(), compared(0.04, -0.01, 0.09, 0.0, 0.08))
    assert status == "inconclusive"
    assert reason == (
        "pdr 0.1000 -> 0.1400, increase +0.0400: one-sided 95% bound +0.0800 is above 0.05, "
        "the 95% CI [-0.0100, +0.0900] reaches below it; more samples would decide"
    )


def test_max_decrease_reads_the_other_end() -> None:
    rules = policy(metric="perturbed", max_increase=None, max_decrease=0.05)
    drop = compared(-0.2, -0.3, -0.1, -0.28, -0.12, metric="perturbed", higher_is_better=True)
    assert [s for s, _ in checks(rules, drop)] == ["fail"]
    small = compared(-0.01, -0.07, 0.05, -0.04, 0.03, metric="perturbed", higher_is_better=True)
    ((status, reason),) = checks(rules, small)
    assert (status, reason.split(": ")[1]) == ("pass", "one-sided 95% bound +0.0400 is within 0.05")


def test_judge_on_value() -> None:
    wide = compared(0.04, -0.2, 0.3, -0.15, 0.25)
    assert checks(policy(judge_on="value"), wide) == [
        ("pass", "pdr 0.1000 -> 0.1400, increase +0.0400 meets <= 0.05 (point estimate)")
    ]
    assert [s for s, _ in checks(policy(judge_on="value", max_increase=0.03), wide)] == ["fail"]


def test_scope_by_task_and_variant() -> None:
    other = compared(0.2, 0.1, 0.3, 0.12, 0.28, variant="q4", unit="typo/sst2", task="sst2")
    mine = compared(0.0, -0.01, 0.01, -0.01, 0.01)
    assert len(checks(policy(), mine, other)) == 2
    assert [s for s, _ in checks(policy(variants=["int8"]), mine, other)] == ["pass"]
    assert [s for s, _ in checks(policy(tasks=["sst2"]), mine, other)] == ["fail"]


def test_a_comparison_that_could_not_be_made_is_inconclusive() -> None:
    skipped = SkippedProbeComparison(
        unit="typo/arc", probe="typo", task="arc", metric="pdr", baseline="base", variant="int8", reason="why"
    )
    assert checks(policy(), skipped=(skipped,)) == [("inconclusive", "not compared: why")]


def test_regating_a_run_that_lacks_what_the_gate_names_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"the run has no probe comparisons .*evalsuite compare RUN_DIR"):
        checks(policy())
    with pytest.raises(
        ConfigError, match="no probe comparison with probe 'tyop' \\(did you mean 'typo'\\?\\)"
    ):
        checks(policy(probe="tyop"), compared(0, 0, 0, 0, 0))
    with pytest.raises(
        ConfigError, match="no probe comparison with variant 'int4' \\(did you mean 'int8'\\?\\)"
    ):
        checks(policy(variants=["int4"]), compared(0, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"max_decrease": 0.1}, "exactly one of 'max_increase' and 'max_decrease'"),
        ({"max_increase": None}, "exactly one of 'max_increase' and 'max_decrease'"),
        ({"max_increase": -0.1}, "greater than or equal to 0"),
        ({"metric": None}, "metric: required key is missing"),
    ],
)
def test_malformed_gates(rule: dict[str, Any], message: str) -> None:
    data = {"kind": "probe_change", "probe": "typo", "metric": "pdr", "max_increase": 0.05, **rule}
    with pytest.raises(ConfigError, match=message):
        parse_policy({"rules": [{k: v for k, v in data.items() if v is not None}]}, "test")


CONFIG = {
    "models": [{"name": "base", "path": "x"}, {"name": "int8", "path": "x", "baseline": "base"}],
    "probes": [{"kind": "typo", "tasks": ["arc", "sst2"]}, {"kind": "fabricated"}],
}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"probe": "tpyo"}, "gate 1 (probe_change): the run has no probe 'tpyo' (did you mean 'typo'?)"),
        (
            {"metric": "pdrr"},
            "probe 'typo' compares no metric 'pdrr' (did you mean 'pdr'?); "
            "it compares pdr, perturbed, flip_rate",
        ),
        ({"metric": "drop"}, "compares no metric 'drop'"),  # reported, but not compared
        (
            {"metric": "perturbed"},
            "'perturbed' is better higher, so max_increase limits an improvement; "
            "limit how far it gets worse with max_decrease",
        ),
        (
            {"max_increase": None, "max_decrease": 0.1},
            "'pdr' is better lower, so max_decrease limits an improvement; limit how far it gets worse with "
            "max_increase",
        ),
        ({"tasks": ["ssst2"]}, "probe 'typo' probes no task 'ssst2' (did you mean 'sst2'?)"),
        (
            {"probe": "fabricated", "metric": "hallucination_rate", "tasks": ["arc"]},
            "probe 'fabricated' probes no task 'arc' (it brings its own data)",
        ),
        ({"variants": ["int9"]}, "the run has no model 'int9' (did you mean 'int8'?)"),
        ({"variants": ["base"]}, "model 'base' has no baseline to compare with"),
    ],
)
def test_references_are_checked_before_the_run(rule: dict[str, Any], message: str) -> None:
    data = {"kind": "probe_change", "probe": "typo", "metric": "pdr", "max_increase": 0.05, **rule}
    config = parse_config({**CONFIG, "gates": {"rules": [{k: v for k, v in data.items() if v is not None}]}})
    assert config.gates is not None
    models = {m.name: m.baseline for m in config.models}
    with pytest.raises(ConfigError) as error:
        check_references(config.gates, models, {}, probes=config.probes)
    assert message in str(error.value)


def test_a_valid_gate_passes_the_checks() -> None:
    config = parse_config(
        {
            **CONFIG,
            "gates": {
                "rules": [
                    {
                        "kind": "probe_change",
                        "probe": "fabricated",
                        "metric": "hallucination_rate",
                        "max_increase": 0.02,
                    }
                ]
            },
        }
    )
    assert config.gates is not None
    check_references(config.gates, {m.name: m.baseline for m in config.models}, {}, probes=config.probes)


def test_without_any_baseline() -> None:
    config = parse_config(
        {
            "models": [{"name": "base", "path": "x"}],
            "probes": CONFIG["probes"],
            "gates": {
                "rules": [{"kind": "probe_change", "probe": "typo", "metric": "pdr", "max_increase": 0.05}]
            },
        }
    )
    assert config.gates is not None
    with pytest.raises(ConfigError, match="no model has a baseline to compare with"):
        check_references(config.gates, {"base": None}, {}, probes=config.probes)
