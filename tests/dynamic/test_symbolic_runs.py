"""`evalsuite run` with the gsm_symbolic probe on scripted models (tests/dynamic/scripted.py): the exact
metrics a reasoner and a memorizer get, the paired test by template, the Min-K%++ signal, records that pair
by template, the gate on the original-to-fresh drop passing and failing, and bad configs refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evalsuite.records import SampleRecord, read_samples
from tests.dynamic.scripted import model, run_cli, write_config

TEMPLATES = 12
SETS = 3
PROBE = {"kind": "gsm_symbolic", "limit": TEMPLATES, "sets": SETS}
DROP_GATE = {"kind": "threshold", "name": "fresh", "task": "gsm_symbolic", "metric": "drop", "max": 0.1}


@pytest.fixture(scope="module")
def run_dir(scripted_backend: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("symbolic-run")
    body = {
        "models": [model("reasoner"), model("memorizer", baseline="reasoner")],
        "probes": [PROBE],
        "gates": {"rules": [DROP_GATE]},
    }
    assert run_cli(folder, write_config(folder, "symbolic", body, data_dir)) == 1  # the memorizer fails
    return folder / "out" / "symbolic"


@pytest.fixture(scope="module")
def results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def records(run_dir: Path) -> list[SampleRecord]:
    return list(read_samples(run_dir / "samples.jsonl"))


def unit(results: dict[str, Any], behaviour: str) -> dict[str, Any]:
    (result,) = [r for r in results["results"] if r["model"] == behaviour and r["task"] == "gsm_symbolic"]
    return result  # type: ignore[no-any-return]


def test_records_pair_each_original_with_its_fresh_instances(records: list[SampleRecord]) -> None:
    for behaviour in ("reasoner", "memorizer"):
        mine = [r for r in records if r.model == behaviour]
        assert len(mine) == TEMPLATES * (1 + SETS)
        assert all(r.error is None for r in mine)
        assert {r.variant for r in mine} == {"original", "set-1", "set-2", "set-3"}
        assert {r.doc_id for r in mine} == set(range(TEMPLATES))
        by_template: dict[int, set[str]] = {}
        for r in mine:
            assert r.probe is not None
            by_template.setdefault(r.doc_id, set()).add(r.probe.original)
        # the original and three fresh questions of each template all differ
        assert all(len(questions) == 1 + SETS for questions in by_template.values())
    # both models were asked the same questions
    asked = {(r.doc_id, r.variant, r.prompt) for r in records if r.model == "reasoner"}
    assert asked == {(r.doc_id, r.variant, r.prompt) for r in records if r.model == "memorizer"}


def test_a_reasoner_loses_nothing_on_fresh_instances(results: dict[str, Any]) -> None:
    metrics = unit(results, "reasoner")["metrics"]
    assert metrics["original_accuracy"]["value"] == 1.0
    assert metrics["fresh_accuracy"]["value"] == 1.0
    assert metrics["drop"]["value"] == 0.0
    assert (metrics["drop"]["ci_low"], metrics["drop"]["ci_high"]) == (0.0, 0.0)
    assert metrics["fresh_set_sd"]["value"] == 0.0
    assert metrics["minkpp_gap"]["value"] == 0.0
    probe = unit(results, "reasoner")["probe"]
    assert probe["sets"] == [1.0, 1.0, 1.0]
    assert probe["tests"]["drop"]["p_value"] == 1.0
    assert probe["notes"] == []


def test_a_memorizer_drops_everything_and_shows_the_contamination_signal(results: dict[str, Any]) -> None:
    metrics = unit(results, "memorizer")["metrics"]
    assert metrics["original_accuracy"]["value"] == 1.0
    assert metrics["original_accuracy"]["n"] == TEMPLATES
    assert metrics["fresh_accuracy"]["value"] == 0.0
    assert metrics["fresh_accuracy"]["n"] == TEMPLATES * SETS
    assert metrics["drop"]["value"] == 1.0
    assert metrics["drop"]["n"] == TEMPLATES
    # scripted scores: +1 on GSM8K's own questions, -1 on fresh ones
    assert metrics["minkpp_gap"]["value"] == pytest.approx(2.0)
    tests = unit(results, "memorizer")["probe"]["tests"]
    assert tests["drop"]["p_value"] == 0.0 and tests["drop"]["templates"] == TEMPLATES
    assert tests["minkpp_gap"]["p_value"] == 0.0


def test_the_drop_gate_passes_the_reasoner_and_fails_the_memorizer(results: dict[str, Any]) -> None:
    checks = {(c["target"], c["status"]) for c in results["gates"]["checks"]}
    assert checks == {
        ("reasoner on gsm_symbolic (drop)", "pass"),
        ("memorizer on gsm_symbolic (drop)", "fail"),
    }


def test_the_memorizer_is_compared_with_its_baseline(results: dict[str, Any]) -> None:
    compared = {c["metric"]: c for c in results["probe_comparisons"] if c["unit"] == "gsm_symbolic"}
    assert set(compared) == {"original_accuracy", "fresh_accuracy", "drop"}
    assert compared["fresh_accuracy"]["difference"] == -1.0
    assert compared["drop"]["difference"] == 1.0
    assert compared["original_accuracy"]["difference"] == 0.0


def test_the_report_has_the_dynamic_section(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="dynamic"' in html and 'id="symbolic-table"' in html
    assert html.count('class="symbolic-row"') == 2
    assert "original right, 3 of 3 fresh instances wrong" in html  # the memorizer's worst templates


def test_a_backend_without_distributions_is_noted(
    scripted_backend: str, data_dir: Path, tmp_path: Path
) -> None:
    body = {"models": [model("reasoner", plain=True)], "probes": [{**PROBE, "limit": 2, "sets": 1}]}
    assert run_cli(tmp_path, write_config(tmp_path, "plain", body, data_dir)) == 0
    results = json.loads((tmp_path / "out" / "plain" / "results.json").read_text(encoding="utf-8"))
    result = unit(results, "reasoner")
    assert "minkpp_gap" not in result["metrics"]
    assert result["probe"]["notes"] == [
        "Min-K%++ not measured: the model's backend shows no next-token distributions "
        "(backends hf and llamacpp do)"
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sets": 0}, "sets"),
        ({"min_k": 0}, "min_k"),
        ({"tasks": ["gsm8k_local"]}, "brings its own data"),
        ({"severity": "high"}, "'severity' does not apply to kind 'gsm_symbolic'"),
    ],
)
def test_bad_configs_are_refused_before_any_model_loads(
    scripted_backend: str,
    data_dir: Path,
    tmp_path: Path,
    change: dict[str, Any],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {"models": [model("reasoner")], "probes": [{**PROBE, **change}]}
    assert run_cli(tmp_path, write_config(tmp_path, "bad", body, data_dir)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_gsm8k_data_is_one_clear_error(
    scripted_backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    body = {"models": [model("reasoner")], "probes": [PROBE]}
    assert run_cli(tmp_path, write_config(tmp_path, "nodata", body, empty)) == 2
    assert "gsm8k/test.jsonl does not exist" in capsys.readouterr().err
