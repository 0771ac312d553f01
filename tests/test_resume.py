"""Crash-safe resume, end to end: a run killed (SIGKILL) at any point and run again with the same cache
folder writes exactly what an uninterrupted run writes, and recomputes only what was not yet cached.

Every run is a real ``evalsuite run`` subprocess with the stories260K checkpoint, on two multiple-choice
tasks, a generation task and a sampling probe (self-consistency: sampled generations are where a resumed
run could most easily draw different answers); 271 requests, 7 chunks of at most 64. The kill points are
found by watching, from outside, the answer cache (``<cache_dir>/evalsuite-cache.sqlite``, read-only)
and the output folder:

    created   the cache file appears: no model loaded, no answer stored
    partial   some chunks are committed, not all
    answered  every answer is committed; the run is summarising, its run directory not yet begun
    writing   the run's hidden staging folder appears: the run directory is being written

A run that finishes before its kill point is seen must match the reference just the same (its Kill then
says ``killed=False``; `pytest -rP` prints each Kill). In the runs made while writing this test (2 busy
CPUs; a run takes 9-15 s, 6 s of it start-up) every point was hit in every run (5 runs of the file, 3
for ``writing``, added last):

    created   killed with 0 answers stored
    partial   killed with 64 of 271 answers stored (the first chunk, in the middle of arc_challenge_local)
    answered  killed with 271 answers stored, no run directory and no staging folder yet
    writing   killed with 271 answers stored, no run directory, and a staging folder (empty, or holding
              samples.jsonl only) that stays in the output folder beside the resumed run's directory

The resumed runs' samples.jsonl and results.json were byte-identical to the reference's, unsorted too.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite.store import FILENAME

NAME = "resume"  # every run has this name (results.json holds it), in its own output folder
HELLASWAG_LIMIT = 25
TASKS: list[dict[str, Any]] = [
    {"name": "arc_challenge_local", "limit": 40},
    {"name": "hellaswag_local", "limit": HELLASWAG_LIMIT},
    {"name": "quickstart_qa", "limit": 5},
]
PROBES: list[dict[str, Any]] = [
    {
        "kind": "self_consistency",
        "tasks": ["quickstart_qa"],
        "limit": 3,
        "samples": 2,
        "temperature": 1.0,
        "embedding": False,  # no sentence-embedding model: the probe stays offline and cheap
    }
]
TIMEOUT = 300.0  # seconds for one run; a normal one takes about 10


def write_config(folder: Path, data_dir: Path, stories: Path, tasks: list[dict[str, Any]]) -> Path:
    config = {
        "run": {
            "name": NAME,
            "output_dir": "out",
            "data_dir": str(data_dir),
            "seed": 7,
            "cache_dir": str(folder / "cache"),  # every run below overrides it with --cache-dir
        },
        "models": [
            {
                "name": "stories",
                "path": str(stories),
                "batch_size": 8,
                "generation": {"max_new_tokens": 16},
            }
        ],
        "tasks": tasks,
        "probes": PROBES,
    }
    path = folder / f"model-{len(list(folder.glob('model*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def environment() -> dict[str, str]:
    """Offline, and one thread per process: torch's default of one thread per core makes a 260K-parameter
    model several times slower on a machine whose cores are busy with other work. Every run of this file
    uses the same settings, so their numbers are comparable."""
    offline = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    threads = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    return {**os.environ, **dict.fromkeys(offline, "1"), **dict.fromkeys(threads, "1")}


@dataclass(frozen=True)
class Run:
    """Where one run writes: its run directory's parent and its cache folder."""

    config: Path
    output: Path
    cache: Path

    @property
    def run_dir(self) -> Path:
        return self.output / NAME

    def argv(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "evalsuite",
            "run",
            str(self.config),
            "--output-dir",
            str(self.output),
            "--cache-dir",
            str(self.cache),
            *extra,
        ]

    def log(self) -> Path:
        return self.output.parent / f"{self.output.name}.log"

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        self.output.mkdir(parents=True, exist_ok=True)
        with self.log().open("ab") as log:
            return subprocess.Popen(
                self.argv(*extra), stdout=log, stderr=subprocess.STDOUT, env=environment(), cwd=self.output
            )

    def complete(self, *extra: str) -> None:
        process = self.start(*extra)
        code = process.wait(timeout=TIMEOUT)
        assert code == 0, f"evalsuite run exited with {code}:\n{self.log().read_text()[-4000:]}"

    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = load_json(self.run_dir / "manifest.json")
        return manifest

    def requests(self) -> dict[str, int]:
        counts: dict[str, int] = self.manifest()["models"]["stories"]["requests"]
        return counts


def load_json(path: Path) -> Any:
    # NaN stays the string "NaN": float("nan") != float("nan") would make equal files compare unequal
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=str)


def sample_lines(run_dir: Path) -> list[bytes]:
    return sorted((run_dir / "samples.jsonl").read_bytes().splitlines(keepends=True))


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sample_lines(run_dir)]


def stored_answers(cache: Path) -> int | None:
    """Answers committed to the cache, read-only; None while there is no cache file, 0 while it is being
    created (its tables may not exist yet)."""
    path = cache / FILENAME
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.Error:
        return 0


@dataclass(frozen=True)
class Reference:
    run: Run
    total: int  # unique requests of the run: all computed, none cached


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def config(workspace: Path, data_dir: Path, stories: Path) -> Path:
    return write_config(workspace, data_dir, stories, TASKS)


@pytest.fixture(scope="module")
def reference(workspace: Path, config: Path) -> Reference:
    """An uninterrupted run with a fresh cache."""
    run = Run(config, workspace / "reference", workspace / "reference-cache")
    run.complete()
    counts = run.requests()
    assert counts["cached"] == 0 and counts["failed"] == 0 and counts["computed"] > 0
    assert stored_answers(run.cache) == counts["computed"]
    lines = sample_lines(run.run_dir)
    keys = {(r["model"], r["task"], r["doc_id"], r["variant"]) for r in records(run.run_dir)}
    manifest = run.manifest()
    expected = sum(t["samples"] for t in manifest["tasks"].values())
    expected += sum(p["variants"] for p in manifest["probes"].values())
    assert len(lines) == len(keys) == expected
    assert not [r for r in records(run.run_dir) if r["error"] is not None]
    return Reference(run, counts["computed"])


def staging_folders(output: Path) -> set[str]:
    """Hidden folders in an output folder: a run's staging folder while it writes its run directory."""
    return {p.name for p in output.iterdir() if p.name.startswith(".")} if output.is_dir() else set()


def assert_same_output(run: Run, reference: Reference, left_by_kill: frozenset[str] = frozenset()) -> None:
    """Byte-identical records (in sorted order), none lost or duplicated, and equal results."""
    expected = reference.run.run_dir
    mine = sample_lines(run.run_dir)
    assert mine == sample_lines(expected)
    keys = [(r["model"], r["task"], r["doc_id"], r["variant"]) for r in records(run.run_dir)]
    assert len(keys) == len(set(keys)) == len(sample_lines(expected))
    # results.json holds no timings (those are in manifest.json): it must be equal as a whole
    assert load_json(run.run_dir / "results.json") == load_json(expected / "results.json")
    # a completed run leaves no staging folder of its own (one a SIGKILL interrupted stays, see below)
    assert staging_folders(run.output) == left_by_kill


@dataclass(frozen=True)
class Kill:
    """What a kill found: whether the process was still running, and how far it had come."""

    point: str
    killed: bool  # False: the run completed before the kill point was seen
    stored: int  # answers in the cache after the kill
    run_dir_written: bool
    staging: frozenset[str]  # the staging folder the kill interrupted, if any


# When to kill a run, given what it has written so far and the reference's number of requests.
KILL_POINTS: dict[str, Callable[[Run, int], bool]] = {
    "created": lambda run, total: (run.cache / FILENAME).exists(),
    "partial": lambda run, total: 0 < (stored_answers(run.cache) or 0) < total,
    "answered": lambda run, total: (stored_answers(run.cache) or 0) >= total,
    "writing": lambda run, total: bool(staging_folders(run.output)),
}


def run_and_kill(run: Run, point: str, total: int) -> Kill:
    """Start the run and SIGKILL it as soon as the kill point is seen (polling every 5 ms)."""
    process = run.start()
    wanted = KILL_POINTS[point]
    deadline = time.monotonic() + TIMEOUT
    killed = False
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if wanted(run, total):
                process.kill()
                killed = True
                break
            time.sleep(0.005)
    finally:
        process.kill()  # nothing happens if it has exited
        code = process.wait(timeout=TIMEOUT)
    if not (killed and code == -9):
        assert code == 0, f"evalsuite run exited with {code}:\n{run.log().read_text()[-4000:]}"
    staging = frozenset(staging_folders(run.output))
    return Kill(point, code == -9, stored_answers(run.cache) or 0, run.run_dir.exists(), staging)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_run_resumes_to_the_same_result(
    workspace: Path, config: Path, reference: Reference, point: str
) -> None:
    run = Run(config, workspace / f"killed-{point}", workspace / f"killed-{point}-cache")
    kill = run_and_kill(run, point, reference.total)
    print(f"kill point {point}: {kill}")  # shown with `pytest -rP`: which point was actually hit
    assert kill.stored <= reference.total
    run.complete()
    # SIGKILL gives the runner no chance to remove its staging folder; the resumed run ignores it
    assert_same_output(run, reference, kill.staging)
    counts = run.requests()
    # the resumed run reads back exactly what was committed before the kill and computes the rest
    assert counts == {"computed": reference.total - kill.stored, "cached": kill.stored, "failed": 0}
    assert stored_answers(run.cache) == reference.total


def test_fully_cached_rerun_loads_no_model(workspace: Path, config: Path, reference: Reference) -> None:
    run = Run(config, workspace / "cached", reference.run.cache)
    run.complete()
    assert_same_output(run, reference)
    model = run.manifest()["models"]["stories"]
    assert model["loaded"] is False
    assert model["requests"] == {"computed": 0, "cached": reference.total, "failed": 0}
    assert model["info"] == reference.run.manifest()["models"]["stories"]["info"]  # from the cache
    assert stored_answers(run.cache) == reference.total


def test_changed_limit_recomputes_only_that_task(
    workspace: Path, data_dir: Path, stories: Path, reference: Reference
) -> None:
    # a copy of the reference's cache: the other tests still see the reference's answers only
    cache = workspace / "limit-cache"
    cache.mkdir()
    with (
        contextlib.closing(sqlite3.connect(reference.run.cache / FILENAME)) as source,
        contextlib.closing(sqlite3.connect(cache / FILENAME)) as target,
    ):
        source.backup(target)
    more = HELLASWAG_LIMIT + 5
    tasks = [dict(t, limit=more) if t["name"] == "hellaswag_local" else t for t in TASKS]
    run = Run(write_config(workspace, data_dir, stories, tasks), workspace / "limit", cache)
    run.complete()
    model = run.manifest()["models"]["stories"]
    assert model["loaded"] is True
    assert run.manifest()["tasks"]["hellaswag_local"]["samples"] == more
    # the new requests: one per ending of each added hellaswag document, counted from the records
    added = [
        r for r in records(run.run_dir) if r["task"] == "hellaswag_local" and r["doc_id"] >= HELLASWAG_LIMIT
    ]
    assert len(added) == more - HELLASWAG_LIMIT
    new_requests = sum(len(r["choices"]) for r in added)
    assert model["requests"] == {"computed": new_requests, "cached": reference.total, "failed": 0}
    assert stored_answers(cache) == reference.total + new_requests
    # every record of the reference is unchanged, and the added documents are the only new records
    mine = set(sample_lines(run.run_dir))
    assert set(sample_lines(reference.run.run_dir)) <= mine
    assert len(mine) == len(sample_lines(reference.run.run_dir)) + len(added)


def test_no_answer_cache_computes_everything_and_stores_nothing(
    workspace: Path, config: Path, reference: Reference
) -> None:
    run = Run(config, workspace / "uncached", workspace / "uncached-cache")
    run.complete("--no-answer-cache")
    assert_same_output(run, reference)
    model = run.manifest()["models"]["stories"]
    assert model["loaded"] is True
    assert model["requests"] == {"computed": reference.total, "cached": 0, "failed": 0}
    assert not list(run.cache.glob(f"{FILENAME}*"))
