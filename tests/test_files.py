"""What a run writes follows the user's umask, staged atomically; output folders are checked up front."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from evalsuite import cli
from evalsuite.errors import ConfigError
from evalsuite.files import check_folder, follow_umask, staging_folder, umask


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["umask-022", "umask-077", "umask-002"])
def user_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_is_read_without_changing_it(user_umask: int) -> None:
    assert umask() == user_umask
    assert umask() == user_umask


def test_a_staging_folder_and_what_fills_it_get_the_umasks_modes(user_umask: int, tmp_path: Path) -> None:
    folder = staging_folder(tmp_path / "new" / "parent", ".stage-")
    assert mode(folder) == 0o777 & ~user_umask
    (folder / "sub").mkdir(mode=0o700)
    (folder / "sub" / "weights.bin").write_bytes(b"x")
    (folder / "sub" / "weights.bin").chmod(0o600)
    follow_umask(folder)
    assert mode(folder / "sub") == 0o777 & ~user_umask
    assert mode(folder / "sub" / "weights.bin") == 0o666 & ~user_umask


def test_a_run_directory_follows_the_umask(user_umask: int, tmp_path: Path, data_dir: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps({"request_type": "loglikelihood", "context": "x", "continuation": "y", "logprob": -1.0})
        + "\n"
    )
    config = {
        "run": {"name": "r", "output_dir": "out", "cache_dir": "cache", "data_dir": str(data_dir)},
        "models": [{"name": "m", "backend": "replay", "path": str(answers)}],
        "tasks": [{"name": "quickstart_mc", "limit": 2}],
        "gates": {"rules": [{"kind": "threshold", "task": "quickstart_mc", "metric": "acc", "min": 0}]},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    cli.main(["run", str(tmp_path / "run.yaml")])  # every sample fails (no recorded answer): still written
    run_dir = tmp_path / "out" / "r"
    written = sorted(p.name for p in run_dir.iterdir())
    assert {
        "manifest.json",
        "samples.jsonl",
        "results.json",
        "report.html",
        "summary.md",
        "junit.xml",
    } <= set(written)
    assert mode(run_dir) == 0o777 & ~user_umask
    for path in run_dir.iterdir():
        assert mode(path) == 0o666 & ~user_umask, path.name
    assert mode(tmp_path / "cache") == 0o777 & ~user_umask


def test_umask_022_gives_a_run_directory_others_can_read(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = staging_folder(tmp_path, ".run.")
        (folder / "report.html").write_text("x")
        from evalsuite.records import write_atomic

        write_atomic(folder / "summary.md", "y")
    finally:
        os.umask(old)
    assert mode(folder) == 0o755
    assert mode(folder / "summary.md") == 0o644


def test_check_folder_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match=r"run.output_dir .*/taken is a file; name a folder"):
        check_folder(tmp_path / "taken", "run.output_dir")


def test_check_folder_refuses_a_path_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match=r"run.output_dir .*/taken/below: .*/taken is a file"):
        check_folder(tmp_path / "taken" / "below", "run.output_dir")


def test_check_folder_accepts_a_folder_it_can_create_and_leaves_nothing(tmp_path: Path) -> None:
    check_folder(tmp_path / "a" / "b" / "c", "run.output_dir")
    assert list(tmp_path.iterdir()) == []


def test_check_folder_refuses_a_read_only_place() -> None:
    with pytest.raises(ConfigError, match=r"run.cache_dir /proc/evalsuite/x: cannot write in /proc"):
        check_folder(Path("/proc/evalsuite/x"), "run.cache_dir")


def test_check_folder_refuses_a_nul_byte(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NUL byte"):
        check_folder(Path(f"{tmp_path}/a\0b"), "run.output_dir")
