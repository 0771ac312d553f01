"""The one path every request takes to a backend: deduplicate, cache, order, chunk, and isolate failures.

Tasks and probes hand the engine lm-eval ``Instance`` objects and never call a backend themselves.
The engine

* runs identical requests once (same request type and arguments; ``repeats`` stay distinct), within a
  call and across the calls of one engine: a probe's clean copy of a task costs nothing after the task,
* keeps every answer in the persistent cache (``AnswerCache``) when it has one, so a rerun, or a run
  resumed after its process was killed, computes only what no earlier run finished,
* sends requests longest first, the continuations of one context side by side (so the backend can run
  the context once), in chunks that are the unit of caching: a chunk's answers are committed together,
* turns a failure into a per-request error: a failing chunk is retried one request at a time, and only
  the requests that still fail carry an error (errors are never cached). Errors that concern the
  backend as a whole (an unreachable server, a model that cannot load) stop the run instead; what was
  answered before is in the cache.

Chunks are formed from the requests this process has not yet answered, before the cache is consulted.
A killed run therefore resumes with the very same chunks, and the backend sees the very same batches,
as the uninterrupted run would have: resumed results are identical, not merely close.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, replace
from typing import Any

from lm_eval.api.instance import Instance

from evalsuite.engine.ranks import SINGLE, Ranks
from evalsuite.errors import BackendError, EvalsuiteError
from evalsuite.models.base import Backend
from evalsuite.store import Store, request_hash

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")


@dataclass(frozen=True)
class Outcome:
    """A backend's answer to one request, or why there is none."""

    value: Any = None
    error: str | None = None


@dataclass
class Counts:
    """Where this engine's answers came from."""

    computed: int = 0  # sent to the backend
    cached: int = 0  # read from the persistent cache
    failed: int = 0  # the backend raised on them


class AnswerCache:
    """One model's answers in a :class:`Store`, encoded as JSON (floats round-trip exactly)."""

    def __init__(self, store: Store, identity: str) -> None:
        self.store = store
        self.identity = identity

    def get(self, keys: Sequence[str], request_type: str) -> dict[str, Any]:
        hashes = {request_hash(k): k for k in keys}
        found = self.store.answers(self.identity, list(hashes))
        return {hashes[h]: decode(request_type, value) for h, value in found.items()}

    def put(self, answers: Sequence[tuple[str, Any]]) -> None:
        self.store.put_answers(self.identity, [(request_hash(k), json.dumps(v)) for k, v in answers])


def decode(request_type: str, value: str) -> Any:
    """JSON back to what lm-eval's tasks expect: ``(logprob, is_greedy)`` tuples for loglikelihood."""
    loaded = json.loads(value)
    return (float(loaded[0]), bool(loaded[1])) if request_type == "loglikelihood" else loaded


def request_key(instance: Instance, repeat: int = 0, seed: int | None = None) -> str:
    """Identity of a request: its type and arguments (generation settings included). Generations also
    carry the run's seed, which sampled answers depend on; scores do not."""
    parts: list[Any] = [instance.request_type, list(instance.args), repeat]
    if instance.request_type == "generate_until" and seed is not None:
        parts.append(seed)
    return json.dumps(parts, sort_keys=True, default=str)


def valid_text(value: Any) -> Any:
    """A generation as text that can be written: a lone surrogate (``"\\ud800"`` is valid JSON, and a served
    model can send it) becomes U+FFFD, the replacement character, as a UTF-8 decoder would make it.
    Anything that is not a string passes unchanged."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value)
    return value


def _portable(error: Exception | None) -> Exception | None:
    """An exception that survives pickling to another rank (evalsuite's own do; others as text)."""
    if error is None or isinstance(error, EvalsuiteError):
        return error
    return RuntimeError(f"on another rank: {_describe(error)}")


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


Pending = tuple[str, Instance]  # (request key, instance)


def ordered_groups(request_type: str, pending: Sequence[Pending]) -> list[list[Pending]]:
    """Requests in the order the backend should see them, as groups that must stay in one chunk.

    Log-likelihood requests are grouped by context (a multiple-choice question's answers), groups
    longest first; generation requests are grouped by settings, since backends batch equal settings.
    """
    groups: dict[str, list[Pending]] = {}
    for key, instance in pending:
        args = instance.args
        group = args[0] if request_type == "loglikelihood" else ""
        if request_type == "generate_until":
            group = json.dumps(args[1], sort_keys=True, default=str)
        groups.setdefault(group, []).append((key, instance))
    if request_type == "loglikelihood":
        ordered = sorted(groups.values(), key=_row_order(groups))
        return [sorted(g, key=lambda item: -len(item[1].args[1])) for g in ordered]
    return [[item] for g in groups.values() for item in sorted(g, key=lambda item: -len(item[1].args[0]))]


SIGNATURE = 128  # characters: questions whose contexts start alike are scored side by side


def _row_order(groups: dict[str, list[Pending]]) -> Callable[[list[Pending]], tuple[str, int]]:
    """Sort key for a question's requests: questions that share the start of their context (few-shot
    examples, an instruction, a passage) side by side, so the backend can run the shared part once; the
    others, and the questions within each such cluster, longest row first, so batches need little
    padding."""
    starts: dict[str, int] = {}
    for context in groups:
        starts[context[:SIGNATURE]] = starts.get(context[:SIGNATURE], 0) + 1

    def key(group: list[Pending]) -> tuple[str, int]:
        context = group[0][1].args[0]
        signature = (
            context[:SIGNATURE] if len(context) > SIGNATURE and starts[context[:SIGNATURE]] > 1 else ""
        )
        return signature, -len(context) - sum(len(i.args[1]) for _, i in group)

    return key


class Engine:
    """Runs requests for one backend. ``chunk_size`` (in requests) bounds the work between cache commits
    and progress updates; a context's continuations are never split across chunks."""

    def __init__(
        self,
        backend: Backend,
        chunk_size: int = 128,
        cache: AnswerCache | None = None,
        seed: int | None = None,
        ranks: Ranks = SINGLE,
    ) -> None:
        self.backend = backend
        self.chunk_size = chunk_size
        self.cache = cache
        self.seed = seed
        self.ranks = ranks
        self.counts = Counts()
        self._answers: dict[str, Outcome] = {}  # every answer this engine has had, by request key

    def run(
        self, instances: Sequence[Instance], progress: Callable[[int], None] = lambda done: None
    ) -> list[list[Outcome]]:
        """One list of outcomes per instance, ``instance.repeats`` long, in input order."""
        unique: dict[str, Instance] = {}
        keys = [self._keys(i) for i in instances]
        for instance, instance_keys in zip(instances, keys, strict=True):
            for key in instance_keys:
                if key not in self._answers:
                    unique.setdefault(key, instance)
        chunks = []
        for request_type in REQUEST_TYPES:
            pending = [(k, i) for k, i in unique.items() if i.request_type == request_type]
            chunks += [(request_type, chunk) for chunk in self._chunks(ordered_groups(request_type, pending))]
        if self.ranks.world == 1:
            for request_type, chunk in chunks:
                self._answer(request_type, chunk)
                progress(len(chunk))
        else:
            self._run_sharded(chunks, progress)
        return [[self._answers[k] for k in instance_keys] for instance_keys in keys]

    def _run_sharded(self, chunks: list[tuple[str, list[Pending]]], progress: Callable[[int], None]) -> None:
        """Chunk i is this rank's when i % world == rank; then every rank gets every answer. A failure
        on any rank is raised on all of them (the others would otherwise wait for it forever)."""
        rank, world = self.ranks.rank, self.ranks.world
        before = replace(self.counts)
        failure: Exception | None = None
        mine = [c for i, c in enumerate(chunks) if i % world == rank]
        try:
            for request_type, chunk in mine:
                self._answer(request_type, chunk)
                progress(len(chunk))
        except Exception as error:
            failure = error
        answers = {key: self._answers[key] for _, chunk in mine for key, _ in chunk if key in self._answers}
        done = Counts(*(now - then for now, then in zip(astuple(self.counts), astuple(before), strict=True)))
        gathered = self.ranks.all_gather((answers, done, _portable(failure)))
        for other, (their_answers, _, their_failure) in enumerate(gathered):
            if their_failure is not None:
                if other == rank and failure is not None:
                    raise failure
                raise their_failure
            self._answers.update(their_answers)
        total = Counts(*(sum(c) for c in zip(*(astuple(g[1]) for g in gathered), strict=True)))
        self.counts = Counts(*(a + b for a, b in zip(astuple(before), astuple(total), strict=True)))
        progress(sum(len(chunk) for i, (_, chunk) in enumerate(chunks) if i % world != rank))

    def _chunks(self, groups: list[list[Pending]]) -> list[list[Pending]]:
        chunks: list[list[Pending]] = [[]]
        for group in groups:
            if chunks[-1] and len(chunks[-1]) + len(group) > self.chunk_size:
                chunks.append([])
            chunks[-1].extend(group)
        return [c for c in chunks if c]

    def _answer(self, request_type: str, chunk: list[Pending]) -> None:
        """Answer a chunk from the cache where it can, else from the backend, and cache what is new."""
        stored = self.cache.get([k for k, _ in chunk], request_type) if self.cache else {}
        todo = [(k, i) for k, i in chunk if k not in stored]
        for key, value in stored.items():
            self._answers[key] = Outcome(value=valid_text(value))
        self.counts.cached += len(stored)
        if not todo:
            return
        outcomes = self._call(request_type, [i for _, i in todo])
        fresh = []
        for (key, _), outcome in zip(todo, outcomes, strict=True):
            self._answers[key] = outcome
            if outcome.error is None:
                fresh.append((key, outcome.value))
        self.counts.computed += len(todo)
        self.counts.failed += len(todo) - len(fresh)
        if self.cache is not None:
            self.cache.put(fresh)

    def _call(self, request_type: str, chunk: list[Instance]) -> list[Outcome]:
        method = getattr(self.backend, request_type)
        try:
            values = method(chunk, disable_tqdm=True)
            if len(values) != len(chunk):
                raise RuntimeError(f"backend answered {len(values)} of {len(chunk)} requests")
            return [Outcome(value=valid_text(v)) for v in values]
        except EvalsuiteError as error:
            if not isinstance(error, BackendError):  # the backend as a whole is unusable: stop the run
                raise
            if len(chunk) == 1:
                return [Outcome(error=_describe(error))]
        except Exception as error:  # a failing sample is a record with `error`, not a crashed run
            if len(chunk) == 1:
                return [Outcome(error=_describe(error))]
        return [self._call(request_type, [instance])[0] for instance in chunk]  # isolate the failures

    def _keys(self, instance: Instance) -> list[str]:
        """One key per repeat: ``repeats`` copies of a request are distinct draws, not duplicates."""
        return [request_key(instance, r, self.seed) for r in range(instance.repeats or 1)]

    def count(self, instances: Sequence[Instance]) -> int:
        """How many requests ``run`` will answer for these instances (from the backend or the cache)."""
        return len({key for i in instances for key in self._keys(i)} - self._answers.keys())
