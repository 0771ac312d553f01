"""A baseline recorded in an earlier run (``from_run``, ``--baseline DIR``): the release's records stand in
for evaluating it, checked against this run's prompts; a non-inferiority gate against it passes and fails
with scripted candidates; and every mismatch is one clear error before any model loads.

Models are the scripted ones of tests/probes/hallucination/scripted.py on ARC-Challenge: ``oracle`` and
``certain`` give the gold option the highest log-likelihood (all right), ``maybe`` gives every option the
same (the first option is chosen: right only where the gold answer is the first, 4 of these 20)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import cli
from evalsuite.records import read_samples
from tests.probes.hallucination import scripted
from tests.probes.hallucination.scripted import model

ARC = {"name": "arc_challenge_local", "limit": 20}
GATE = {"kind": "non_inferiority", "margin": 0.5}
RELEASE_ACCURACY = 1.0


def write(folder: Path, name: str, body: dict[str, Any], data_dir: Path) -> Path:
    run = {"name": name, "output_dir": str(folder / "out"), "data_dir": str(data_dir)}
    config = {"run": run, "stats": {"resamples": 200, "interval_resamples": 200}, **body}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cli(folder: Path, config: Path, *extra: str) -> int:
    return cli.main(["run", str(config), "--cache-dir", str(folder / "cache"), *extra])


def results(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / "out" / name / "results.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def scripted_backend(data_dir: Path) -> Iterator[str]:
    scripted.register(data_dir)
    try:
        yield scripted.BACKEND
    finally:
        scripted.unregister()


@pytest.fixture(scope="module")
def release(scripted_backend: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model's run: oracle on twenty ARC questions."""
    folder = tmp_path_factory.mktemp("release")
    assert (
        run_cli(folder, write(folder, "release", {"models": [model("oracle")], "tasks": [ARC]}, data_dir))
        == 0
    )
    return folder / "out" / "release"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The behaviours whose scripted model is loaded in this test."""
    loaded: list[str] = []
    original = scripted.ScriptedBackend.__init__

    def counting(self: scripted.ScriptedBackend, behaviour: str, data: Any) -> None:
        loaded.append(behaviour)
        original(self, behaviour, data)

    monkeypatch.setattr(scripted.ScriptedBackend, "__init__", counting)
    return loaded


@pytest.mark.parametrize(("candidate", "code", "status"), [("certain", 0, "pass"), ("maybe", 1, "fail")])
def test_a_candidate_is_gated_against_the_release_without_evaluating_it(
    release: Path, data_dir: Path, tmp_path: Path, loads: list[str], candidate: str, code: int, status: str
) -> None:
    body = {
        "models": [{"name": "oracle", "from_run": str(release)}, {**model(candidate), "baseline": "oracle"}],
        "tasks": [ARC],
        "gates": {"rules": [GATE]},
    }
    assert run_cli(tmp_path, write(tmp_path, "candidate", body, data_dir)) == code
    assert loads == [candidate]  # the release was never loaded
    found = results(tmp_path, "candidate")
    (check,) = found["gates"]["checks"]
    assert (check["target"], check["status"]) == (
        f"{candidate} vs oracle on arc_challenge_local (acc)",
        status,
    )
    (comparison,) = found["comparisons"]
    assert (comparison["baseline"], comparison["variant"], comparison["n"]) == ("oracle", candidate, 20)
    accuracy = {r["model"]: r["metrics"]["acc"]["value"] for r in found["results"]}
    assert accuracy == {"oracle": RELEASE_ACCURACY, candidate: 1.0 if candidate == "certain" else 0.2}
    run_dir = tmp_path / "out" / "candidate"
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["models"]["oracle"]["from_run"] == f"{release} (oracle)"
    # the release's records, renamed into this run, are the same answers
    mine = [r for r in read_samples(run_dir / "samples.jsonl") if r.model == "oracle"]
    theirs = list(read_samples(release / "samples.jsonl"))
    assert [(r.doc_id, r.prompt, r.choices) for r in mine] == [
        (r.doc_id, r.prompt, r.choices) for r in theirs
    ]
    # the written run reads back: the gate re-applied from its records gives the same verdict
    assert cli.main(["gate", str(run_dir)]) == code


def test_the_command_line_baseline_makes_the_release_every_unbaselined_models_baseline(
    release: Path, data_dir: Path, tmp_path: Path, loads: list[str]
) -> None:
    body = {"models": [model("maybe")], "tasks": [ARC], "gates": {"rules": [GATE]}}
    assert run_cli(tmp_path, write(tmp_path, "cli", body, data_dir), "--baseline", str(release)) == 1
    assert loads == ["maybe"]
    (comparison,) = results(tmp_path, "cli")["comparisons"]
    assert (comparison["baseline"], comparison["variant"]) == ("oracle", "maybe")
    assert run_cli(tmp_path, write(tmp_path, "named", body, data_dir), "--baseline", f"{release}:oracle") == 1


def test_a_smaller_release_run_is_refused(
    release: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "models": [{"name": "oracle", "from_run": str(release)}, {**model("maybe"), "baseline": "oracle"}],
        "tasks": [{**ARC, "limit": 22}],
    }
    assert run_cli(tmp_path, write(tmp_path, "more", body, data_dir)) == 2
    assert "'arc_challenge_local' document 20 was not evaluated there" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ({"tasks": [{**ARC, "num_fewshot": 2}]}, (), "document 0 was asked another prompt there"),
        (
            {"models": [{"name": "orcale", "from_run": "RELEASE"}]},
            (),
            "has no model 'orcale' (did you mean 'oracle'?)",
        ),
        (
            {
                "models": [{"name": "oracle", "from_run": "RELEASE", "run_model": "oracle"}],
                "stats": {"sequential": {}},
            },
            (),
            "drop stats.sequential",
        ),
        (
            {"models": [{"name": "oracle", "from_run": "RELEASE", "dtype": "bfloat16"}]},
            (),
            "'dtype' cannot apply",
        ),
        ({"models": [{"name": "oracle", "from_run": "/nowhere"}]}, (), "/nowhere: no such run directory"),
        (
            {"models": [model("oracle")]},
            ("--baseline", "RELEASE"),
            "this config has a model named 'oracle' too",
        ),
        ({}, ("--baseline", "/nowhere"), "--baseline /nowhere: no such run directory"),
    ],
)
def test_mismatches_are_one_clear_error_before_any_model_loads(
    release: Path,
    data_dir: Path,
    tmp_path: Path,
    loads: list[str],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    extra: tuple[str, ...],
    message: str,
) -> None:
    models = change.get("models", [{"name": "oracle", "from_run": "RELEASE"}])
    body: dict[str, Any] = {
        "models": [*models, {**model("maybe"), **({"baseline": models[0]["name"]} if not extra else {})}],
        "tasks": [ARC],
        **{k: v for k, v in change.items() if k != "models"},
    }
    text = yaml.safe_dump(body).replace("RELEASE", str(release))
    body = yaml.safe_load(text)
    arguments = tuple(a.replace("RELEASE", str(release)) for a in extra)
    assert run_cli(tmp_path, write(tmp_path, "bad", body, data_dir), *arguments) == 2
    assert message in capsys.readouterr().err
    assert loads == []
    assert not (tmp_path / "out").exists()
