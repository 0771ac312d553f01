"""Data parallelism: the processes of one run, started by ``torchrun`` or ``accelerate launch``.

Every rank plans the same run (same tasks, same seeds, so the same requests) and hands its engine the
same chunks; chunk *i* is computed by rank ``i % world`` (one model replica per rank: a GPU each, or a
process each on CPU), and after every engine call the ranks exchange their answers, so each rank holds
all of them and scores, aggregates and compares exactly as a single process would. Only rank 0 writes
the run directory. Chunks are what a single process would send its backend too, so the answers, and
the run directory, are identical to a single-process run.

``torch.distributed`` carries the exchange (``all_gather_object`` over a gloo group, also when the
ranks use NCCL for anything else): it is already a dependency and is what both launchers set up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.distributed as dist

from evalsuite.errors import ConfigError


class Ranks(Protocol):
    """The processes of a run; ``all_gather`` is a collective: every rank must call it in turn."""

    @property
    def rank(self) -> int: ...

    @property
    def world(self) -> int: ...

    def all_gather(self, value: Any) -> list[Any]: ...


@dataclass(frozen=True)
class SingleProcess:
    rank: int = 0
    world: int = 1

    def all_gather(self, value: Any) -> list[Any]:
        return [value]


SINGLE = SingleProcess()


class TorchRanks:
    """The default process group of ``torch.distributed``, initialised from the launcher's variables."""

    def __init__(self, group: Any) -> None:
        self._group = group

    @property
    def rank(self) -> int:
        return int(dist.get_rank())

    @property
    def world(self) -> int:
        return int(dist.get_world_size())

    def all_gather(self, value: Any) -> list[Any]:
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, value, group=self._group)
        return gathered

    def close(self) -> None:
        dist.destroy_process_group()


def from_environment(environ: Mapping[str, str]) -> Ranks:
    """The ranks a launcher set up (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``), or a single process when there is none."""
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        local_rank = int(environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ConfigError("WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world <= 1:
        return SINGLE
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: "
            "start the ranks with torchrun or accelerate launch"
        )
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())  # "cuda" now means this rank's GPU
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return TorchRanks(dist.new_group(backend="gloo") if cuda else dist.group.WORLD)
