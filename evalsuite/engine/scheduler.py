"""The one path every request takes to a backend: deduplicate, order, chunk, and isolate failures.

Tasks and probes hand the engine lm-eval ``Instance`` objects and never call a backend themselves.
The engine

* runs identical requests once (same request type and arguments; ``repeats`` stay distinct), within a
  call and across the calls of one engine: a probe's clean copy of a task costs nothing after the task,
* sends them longest first in chunks, so backends batch similar lengths and progress can be shown,
* turns a failure into a per-request error: a failing chunk is retried one request at a time, and only
  the requests that still fail carry an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lm_eval.api.instance import Instance

from evalsuite.models.base import Backend

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")


@dataclass(frozen=True)
class Outcome:
    """A backend's answer to one request, or why there is none."""

    value: Any = None
    error: str | None = None


def request_key(instance: Instance, repeat: int = 0) -> str:
    """Identity of a request: its type and arguments (generation settings included)."""
    return json.dumps([instance.request_type, list(instance.args), repeat], sort_keys=True, default=str)


def _keys(instance: Instance) -> list[str]:
    """One key per repeat: ``repeats`` copies of a request are distinct draws, not duplicates."""
    return [request_key(instance, r) for r in range(instance.repeats or 1)]


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _size(instance: Instance) -> int:
    return sum(len(a) for a in instance.args if isinstance(a, str))


class Engine:
    """Runs requests for one backend. ``chunk_size`` bounds the work between progress updates."""

    def __init__(self, backend: Backend, chunk_size: int = 64) -> None:
        self.backend = backend
        self.chunk_size = chunk_size
        self._answers: dict[str, Outcome] = {}  # every answer this engine has had, by request key

    def run(
        self, instances: Sequence[Instance], progress: Callable[[int], None] = lambda done: None
    ) -> list[list[Outcome]]:
        """One list of outcomes per instance, ``instance.repeats`` long, in input order."""
        unique: dict[str, Instance] = {}
        keys = [_keys(i) for i in instances]
        answers = self._answers
        for instance, instance_keys in zip(instances, keys, strict=True):
            for key in instance_keys:
                if key not in answers:
                    unique.setdefault(key, instance)
        for request_type in REQUEST_TYPES:
            todo = sorted(
                ((k, i) for k, i in unique.items() if i.request_type == request_type),
                key=lambda item: -_size(item[1]),
            )
            for start in range(0, len(todo), self.chunk_size):
                chunk = todo[start : start + self.chunk_size]
                for (key, _), outcome in zip(
                    chunk, self._call(request_type, [i for _, i in chunk]), strict=True
                ):
                    answers[key] = outcome
                progress(len(chunk))
        return [[answers[k] for k in instance_keys] for instance_keys in keys]

    def _call(self, request_type: str, chunk: list[Instance]) -> list[Outcome]:
        method = getattr(self.backend, request_type)
        try:
            values = method(chunk, disable_tqdm=True)
            if len(values) != len(chunk):
                raise RuntimeError(f"backend answered {len(values)} of {len(chunk)} requests")
            return [Outcome(value=v) for v in values]
        except Exception as error:  # a failing sample is a record with `error`, not a crashed run
            if len(chunk) == 1:
                return [Outcome(error=_describe(error))]
        return [self._call(request_type, [instance])[0] for instance in chunk]  # isolate the failures

    def count(self, instances: Sequence[Instance]) -> int:
        """How many backend requests ``run`` will make for these instances."""
        return len({key for i in instances for key in _keys(i)} - self._answers.keys())
