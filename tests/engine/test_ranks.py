"""Data parallelism: ranks share an engine's chunks, every rank ends with every answer, and a run
under ``torchrun`` (gloo, 2 processes) writes the run directory a single process writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite.engine import Engine
from evalsuite.engine.ranks import SINGLE, from_environment
from evalsuite.errors import BackendUnavailable, ConfigError
from tests.engine.test_scheduler import CountingBackend, ll


class ThreadRanks:
    """Ranks as threads of one process: ``all_gather`` meets at a barrier, like a collective."""

    def __init__(self, rank: int, world: int, board: list[Any], barrier: threading.Barrier) -> None:
        self.rank, self.world = rank, world
        self._board, self._barrier = board, barrier

    def all_gather(self, value: Any) -> list[Any]:
        self._board[self.rank] = value
        self._barrier.wait()
        gathered = list(self._board)
        self._barrier.wait()  # nobody writes the next round before everyone has read this one
        return gathered


def in_ranks(world: int, work: Callable[[int, Any], Any]) -> list[Any]:
    """Run ``work(rank, ranks)`` on ``world`` threads; what each returned, or the exception it raised."""
    board: list[Any] = [None] * world
    barrier = threading.Barrier(world, timeout=30)
    results: list[Any] = [None] * world

    def target(rank: int) -> None:
        try:
            results[rank] = work(rank, ThreadRanks(rank, world, board, barrier))
        except Exception as error:
            results[rank] = error

    threads = [threading.Thread(target=target, args=(r,)) for r in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


REQUESTS = [ll(f"Question {i}: " + "x" * (40 - i), f" answer {j}") for i in range(12) for j in range(3)]


def test_ranks_split_the_chunks_and_all_end_with_every_answer() -> None:
    backends = [CountingBackend(), CountingBackend()]

    def work(rank: int, ranks: Any) -> tuple[list[Any], Any]:
        engine = Engine(backends[rank], chunk_size=6, ranks=ranks)
        return [o[0].value for o in engine.run(REQUESTS)], engine.counts

    (values_0, counts_0), (values_1, counts_1) = in_ranks(2, work)
    single = CountingBackend()
    alone = Engine(single, chunk_size=6)
    expected = [o[0].value for o in alone.run(REQUESTS)]
    assert values_0 == values_1 == expected
    assert counts_0 == counts_1 == alone.counts  # totals over the ranks
    assert [len(b.calls) for b in backends] == [3, 3]  # six chunks, alternately
    assert backends[0].calls + backends[1].calls != []
    assert sorted(map(str, backends[0].calls + backends[1].calls)) == sorted(map(str, single.calls))


def test_a_failure_on_one_rank_is_raised_on_every_rank() -> None:
    class Unreachable(CountingBackend):
        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            raise BackendUnavailable("server gone")

    def work(rank: int, ranks: Any) -> Any:
        backend = Unreachable() if rank == 1 else CountingBackend()
        return Engine(backend, chunk_size=6, ranks=ranks).run(REQUESTS)

    results = in_ranks(2, work)
    assert all(isinstance(r, BackendUnavailable) and "server gone" in str(r) for r in results)


def test_without_a_launcher_there_is_one_rank() -> None:
    assert from_environment({}) is SINGLE
    assert from_environment({"WORLD_SIZE": "1"}) is SINGLE
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        from_environment({"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "1"})


# -- torchrun ---------------------------------------------------------------------------------------

VOLATILE = ("created", "finished", "hardware", "git_sha", "ranks")  # when and how, not what


def comparable_manifest(run_dir: Path) -> dict[str, Any]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for key in VOLATILE:
        manifest.pop(key, None)
    for model in manifest["models"].values():
        model["telemetry"] = {
            k: v
            for k, v in model["telemetry"].items()
            if not k.endswith(("seconds", "second", "memory_bytes"))
        }
    return manifest


def launched(command: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """Run a command in its own process group; on a timeout the whole group (torchrun's ranks) dies."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.mark.slow
def test_two_gloo_ranks_write_the_run_directory_one_process_writes(
    stories: Path, data_dir: Path, tmp_path: Path
) -> None:
    def config(name: str) -> Path:
        model = {
            "name": "stories",
            "path": str(stories),
            "batch_size": 4,
            "generation": {"max_new_tokens": 8},
        }
        body = {
            "run": {
                "name": name,
                "output_dir": "out",
                "data_dir": str(data_dir),
                "seed": 5,
                "cache_dir": f"cache-{name}",
            },
            "models": [model],
            "tasks": [
                {"name": "quickstart_mc", "limit": 12},
                {"name": "quickstart_qa", "limit": 6},
                {"name": "wikitext2_local", "limit": 2},
            ],
            "probes": [
                {
                    "kind": "self_consistency",
                    "tasks": ["quickstart_qa"],
                    "limit": 3,
                    "samples": 3,
                    "embedding": False,
                }
            ],
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(body))
        return path

    one = launched([sys.executable, "-m", "evalsuite", "run", str(config("one")), "--name", "same"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    (tmp_path / "out" / "same").rename(tmp_path / "out" / "single")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    two = launched([*launch, "-m", "evalsuite", "run", str(config("two")), "--name", "same"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "data parallel: 2 ranks" in two.stderr
    single, ranked = tmp_path / "out" / "single", tmp_path / "out" / "same"
    assert (single / "samples.jsonl").read_bytes() == (ranked / "samples.jsonl").read_bytes()
    assert (single / "results.json").read_bytes() == (ranked / "results.json").read_bytes()
    assert comparable_manifest(single) == {
        **comparable_manifest(ranked),
        "config": comparable_manifest(single)["config"],
    }
    assert json.loads((ranked / "manifest.json").read_text())["ranks"] == 2
    assert sorted(p.name for p in single.iterdir()) == sorted(p.name for p in ranked.iterdir())
