"""`evalsuite run` with the dyval probes on scripted models (tests/dynamic/scripted.py): exact accuracies
per level for a model that solves everything, one that solves only the smallest graphs and one that solves
nothing, item sets that follow the seed, the difficulty curve in the report, gates and bad configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from evalsuite.records import SampleRecord, read_samples
from tests.dynamic.scripted import model, run_cli, write_config

ITEMS = 5  # per level
PROBES: list[dict[str, Any]] = [
    {"kind": "dyval_arithmetic", "limit": ITEMS},
    {"kind": "dyval_deduction", "limit": ITEMS, "levels": [1, 2]},
]
LEVEL_GATE = {"kind": "threshold", "task": "dyval_arithmetic", "metric": "level_1", "min": 0.5}


@pytest.fixture(scope="module")
def run_dir(scripted_backend: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dyval-run")
    body = {
        "models": [
            model("reasoner"),
            model("shallow", baseline="reasoner"),
            model("memorizer", baseline="reasoner"),
        ],
        "probes": PROBES,
        "gates": {"rules": [LEVEL_GATE]},
    }
    assert run_cli(folder, write_config(folder, "dyval", body, data_dir)) == 1  # the memorizer fails
    return folder / "out" / "dyval"


@pytest.fixture(scope="module")
def results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def records(run_dir: Path) -> list[SampleRecord]:
    return list(read_samples(run_dir / "samples.jsonl"))


def metrics(results: dict[str, Any], behaviour: str, unit: str) -> dict[str, dict[str, Any]]:
    (result,) = [r for r in results["results"] if r["model"] == behaviour and r["task"] == unit]
    return result["metrics"]  # type: ignore[no-any-return]


def values(results: dict[str, Any], behaviour: str, unit: str) -> dict[str, float]:
    return {name: m["value"] for name, m in metrics(results, behaviour, unit).items()}


def test_every_level_has_its_items(records: list[SampleRecord]) -> None:
    for behaviour in ("reasoner", "shallow", "memorizer"):
        arithmetic = [r for r in records if r.model == behaviour and r.task == "dyval_arithmetic"]
        assert len(arithmetic) == 4 * ITEMS and all(r.error is None for r in arithmetic)
        details = [r.probe.details for r in arithmetic if r.probe is not None]
        assert [d["level"] for d in details] == [1] * ITEMS + [2] * ITEMS + [3] * ITEMS + [4] * ITEMS
        nodes = {d["level"]: d["nodes"] for d in details}
        assert nodes == {1: 6, 2: 10, 3: 18, 4: 29}
        deduction = [r for r in records if r.model == behaviour and r.task == "dyval_deduction"]
        assert len(deduction) == 2 * ITEMS


def test_a_model_that_solves_everything(results: dict[str, Any]) -> None:
    assert values(results, "reasoner", "dyval_arithmetic") == {
        "accuracy": 1.0,
        "level_1": 1.0,
        "level_2": 1.0,
        "level_3": 1.0,
        "level_4": 1.0,
    }
    assert values(results, "reasoner", "dyval_deduction") == {"accuracy": 1.0, "level_1": 1.0, "level_2": 1.0}


def test_a_model_that_solves_only_the_smallest_graphs(results: dict[str, Any]) -> None:
    assert values(results, "shallow", "dyval_arithmetic") == {
        "accuracy": 0.25,
        "level_1": 1.0,
        "level_2": 0.0,
        "level_3": 0.0,
        "level_4": 0.0,
    }
    level = metrics(results, "shallow", "dyval_arithmetic")["level_2"]
    interval = stats.binomtest(0, ITEMS).proportion_ci(confidence_level=0.95, method="wilson")
    assert (level["ci_method"], level["n"]) == ("wilson", ITEMS)
    assert level["ci_low"] == pytest.approx(interval.low, abs=1e-12)
    assert level["ci_high"] == pytest.approx(interval.high, abs=1e-12)


def test_a_model_that_solves_nothing(results: dict[str, Any]) -> None:
    assert set(values(results, "memorizer", "dyval_arithmetic").values()) == {0.0}


def test_the_level_gate(results: dict[str, Any]) -> None:
    checks = {c["target"]: c["status"] for c in results["gates"]["checks"]}
    assert checks == {
        "reasoner on dyval_arithmetic (level_1)": "pass",
        "shallow on dyval_arithmetic (level_1)": "pass",
        "memorizer on dyval_arithmetic (level_1)": "fail",
    }


def test_variants_are_compared_with_their_base_level_by_level(results: dict[str, Any]) -> None:
    compared = {
        (c["variant"], c["metric"]): c["difference"]
        for c in results["probe_comparisons"]
        if c["unit"] == "dyval_arithmetic"
    }
    assert compared[("shallow", "level_1")] == 0.0
    assert compared[("shallow", "level_2")] == -1.0
    assert compared[("shallow", "accuracy")] == -0.75
    assert compared[("memorizer", "accuracy")] == -1.0


def test_the_report_draws_a_difficulty_curve_per_family(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count('class="difficulty-curve"') == 2  # arithmetic and deduction
    assert html.count('class="difficulty-series"') == 6  # three models each
    assert "shallow · level 1: 1.000" in html


def prompts(folder: Path, data_dir: Path, probe: dict[str, Any], seed: int = 3) -> list[str]:
    body = {"models": [model("reasoner")], "probes": [probe]}
    name = f"seed-{seed}-{probe.get('seed')}"
    folder.mkdir(exist_ok=True)
    assert run_cli(folder, write_config(folder, name, body, data_dir, seed=seed)) == 0
    return [r.prompt for r in read_samples(folder / "out" / name / "samples.jsonl")]


def test_item_sets_follow_the_seed(scripted_backend: str, data_dir: Path, tmp_path: Path) -> None:
    probe = {"kind": "dyval_boolean", "limit": 3, "levels": [2]}
    first = prompts(tmp_path, data_dir, probe)
    assert len(set(first)) == 3
    assert prompts(tmp_path / "again", data_dir, probe) == first
    assert not set(prompts(tmp_path / "run-seed", data_dir, probe, seed=4)) & set(first)
    assert not set(prompts(tmp_path / "own-seed", data_dir, {**probe, "seed": 11})) & set(first)


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ({"kind": "dyval_arithmetic", "levels": [5]}, "levels are some of [1, 2, 3, 4], not [5]"),
        ({"kind": "dyval_arithmetic", "levels": []}, "levels are some of [1, 2, 3, 4], not []"),
        ({"kind": "dyval_arith"}, "did you mean 'dyval_arithmetic'"),
        ({"kind": "dyval_boolean", "tasks": ["arc_challenge_local"]}, "brings its own data"),
        ({"kind": "dyval_boolean", "sets": 2}, "'sets' does not apply to kind 'dyval_boolean'"),
    ],
)
def test_bad_configs_are_refused_before_any_model_loads(
    scripted_backend: str,
    data_dir: Path,
    tmp_path: Path,
    probe: dict[str, Any],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {"models": [model("reasoner")], "probes": [probe]}
    assert run_cli(tmp_path, write_config(tmp_path, "bad", body, data_dir)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
