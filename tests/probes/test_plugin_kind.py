"""A probe kind added in one file (examples/probe_kind/upper_case.py) and installed through the
``evalsuite.probe_kinds`` entry-point group: the config accepts it, the run probes with it, the records
carry its details, the report shows its table, and a run directory of it still renders where the plugin
is not installed. Each run is a fresh process, as a user's would be."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, STORIES

EXAMPLE = REPO / "examples" / "probe_kind"
METRICS = {"pdr", "clean", "perturbed", "drop", "flip_rate", "worst_case", "changed"}


def install(site: Path, module: str = "upper_case") -> Path:
    """A distribution's metadata naming the kind module in the entry-point group, as pip would leave it."""
    info = site / "upper_case_kind-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: upper-case-kind\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[evalsuite.probe_kinds]\nupper_case = {module}\n")
    return site


def evalsuite(*args: str, path: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*path, REPO]))}
    return subprocess.run(
        [sys.executable, "-m", "evalsuite", *args], capture_output=True, text=True, env=env, check=False
    )


def write_config(folder: Path, data_dir: Path, probe: dict[str, Any]) -> Path:
    config = {
        "run": {"name": "plugin", "output_dir": str(folder / "out"), "data_dir": str(data_dir), "seed": 3},
        "stats": {"resamples": 200, "interval_resamples": 200},
        "models": [{"name": "stories", "path": str(STORIES), "batch_size": 8}],
        "probes": [probe],
    }
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_a_kind_in_one_file_runs_end_to_end(tmp_path: Path, data_dir: Path, stories: Path) -> None:
    site = install(tmp_path / "site")
    config = write_config(
        tmp_path, data_dir, {"kind": "upper_case", "tasks": ["arc_challenge_local"], "limit": 4}
    )
    done = evalsuite("run", str(config), path=[site, EXAMPLE])
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "out" / "plugin"

    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    (unit,) = results["results"]
    assert unit["task"] == "upper_case/arc_challenge_local" and set(unit["metrics"]) == METRICS
    assert unit["probe"]["kind"] == "upper_case" and unit["probe"]["samples"] == 4

    records = [
        json.loads(line) for line in (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    upper = [r for r in records if r["variant"] == "upper"]
    assert len(upper) == 4 and len(records) == 8  # a clean copy and a capitalised one per sample
    for record in upper:
        probe = record["probe"]
        assert probe["details"] == {"fields": ["query"]}  # ARC's question field
        # the question in capitals; the template around it ("\nAnswer:") as it was
        question, cue = probe["perturbed"].rsplit("\n", 1)
        assert question == question.upper() and cue == "Answer:"
        assert probe["perturbed"].upper() == probe["original"].upper() != probe["perturbed"]

    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="probe-upper_case"' in page and ">Upper case<" in page

    # without the plugin, the run directory still renders: its unit stays out of every table
    (run_dir / "report.html").unlink()
    plain = evalsuite("report", str(run_dir), path=[])
    assert plain.returncode == 0, plain.stderr
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="probe-upper_case"' not in page


def test_a_plugin_that_fails_to_import_is_named_where_its_kind_is_used(
    tmp_path: Path, data_dir: Path
) -> None:
    site = install(tmp_path / "site", module="no_such_module_here")
    uses = write_config(tmp_path, data_dir, {"kind": "upper_case", "tasks": ["arc_challenge_local"]})
    done = evalsuite("run", str(uses), "--dry-run", path=[site])
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "probes[0].kind: " in line and "(got 'upper_case')" in line
    assert line.endswith(
        "the plugin naming it failed to load: no_such_module_here: "
        "ModuleNotFoundError: No module named 'no_such_module_here'"
    )
    # a run that does not use the kind is not stopped by the broken plugin
    other = write_config(tmp_path, data_dir, {"kind": "tautology", "tasks": ["arc_challenge_local"]})
    assert evalsuite("run", str(other), "--dry-run", path=[site]).returncode == 0
    assert not (tmp_path / "out").exists()
