"""The engine with a persistent cache: cache hits skip the model, and a killed run resumes identically."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from evalsuite.engine import Engine
from evalsuite.engine.scheduler import AnswerCache, Counts
from evalsuite.store import Store
from tests.engine.test_scheduler import CountingBackend, ll

IDENTITY = "weights-sha/bf16/none/counting"


def rolling(text: str) -> Instance:
    return Instance("loglikelihood_rolling", {}, (text,), 0)


def generation(prompt: str) -> Instance:
    return Instance("generate_until", {}, (prompt, {"until": ["\n"], "do_sample": True}), 0)


def sent(backend: CountingBackend) -> list[tuple[Any, ...]]:
    """Every request the backend was asked, in order."""
    return [args for call in backend.calls for args in call]


def values(outcomes: list[list[Any]]) -> list[Any]:
    assert all(o.error is None for repeats in outcomes for o in repeats)
    return [o.value for repeats in outcomes for o in repeats]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "cache")
    yield opened
    opened.close()


def engine(backend: CountingBackend, store: Store, identity: str = IDENTITY, **options: Any) -> Engine:
    """A new engine: nothing answered in memory, only what the store holds."""
    return Engine(backend, cache=AnswerCache(store, identity), **options)


MIXED = [
    ll("Q: 2+2?", " 4"),
    ll("Q: 2+2?", " five"),
    ll("Q: capital?", " Paris"),
    rolling("a whole document"),
    rolling("another"),
    generation("Once upon"),
    generation("Hello"),
]


def test_cache_hits_skip_the_model(store: Store, tmp_path: Path) -> None:
    first_backend = CountingBackend()
    first = engine(first_backend, store)
    computed = first.run(MIXED)
    assert len(sent(first_backend)) == len(MIXED)
    assert first.counts == Counts(computed=len(MIXED), cached=0, failed=0)

    reopened = Store(tmp_path / "cache")  # another process on the same folder: only the file is shared
    second_backend = CountingBackend()
    second = engine(second_backend, reopened)
    cached = second.run(MIXED)
    reopened.close()

    assert second_backend.calls == []  # the model was not asked anything
    assert second.counts == Counts(computed=0, cached=len(MIXED), failed=0)
    assert values(cached) == values(computed)
    lls, rolls, generations = values(cached)[:3], values(cached)[3:5], values(cached)[5:]
    assert lls == [(-2.0, False), (-5.0, False), (-6.0, False)]
    assert all(type(v) is tuple and type(v[0]) is float and type(v[1]) is bool for v in lls)
    assert rolls == [-1.0, -1.0] and all(type(v) is float for v in rolls)
    assert generations == ["echo Once upon", "echo Hello"] and all(type(v) is str for v in generations)


def test_another_model_identity_does_not_see_the_answers(store: Store) -> None:
    engine(CountingBackend(), store).run(MIXED)
    other_backend = CountingBackend()
    other = engine(other_backend, store, identity="weights-sha/int8/torchao/counting")
    other.run(MIXED)
    assert sorted(sent(other_backend), key=repr) == sorted((i.args for i in MIXED), key=repr)
    assert other.counts == Counts(computed=len(MIXED), cached=0, failed=0)
    assert store.count(IDENTITY) == store.count("weights-sha/int8/torchao/counting") == len(MIXED)


def test_a_new_task_computes_only_its_own_requests(store: Store) -> None:
    task_a = [ll(f"a{i}", f" answer {i}") for i in range(6)] + [rolling("doc a")]
    task_b = [ll(f"b{i}", f" reply {i}") for i in range(3)] + [generation("b prompt")]
    engine(CountingBackend(), store, chunk_size=4).run(task_a)

    backend = CountingBackend()
    both = engine(backend, store, chunk_size=4)
    outcomes = both.run(task_a + task_b)
    assert sorted(sent(backend), key=repr) == sorted((i.args for i in task_b), key=repr)
    assert both.counts == Counts(computed=len(task_b), cached=len(task_a), failed=0)
    assert values(outcomes)[len(task_a) :] == [(-8.0, False), (-8.0, False), (-8.0, False), "echo b prompt"]


def test_failed_requests_are_not_cached_and_a_later_run_retries_them(store: Store) -> None:
    requests = [ll("q", " fine"), ll("q", " boom"), ll("q", " ok")]
    first = engine(CountingBackend(), store)
    outcomes = first.run(requests)
    assert outcomes[1][0].error == "RuntimeError: boom"
    assert first.counts == Counts(computed=3, cached=0, failed=1)
    assert store.count(IDENTITY) == 2

    backend = CountingBackend()
    later = engine(backend, store)
    outcomes = later.run(requests)
    assert backend.calls == [[("q", " boom")]]  # only the failed request goes to the model again
    assert later.counts == Counts(computed=1, cached=2, failed=1)
    assert [o[0].error for o in outcomes] == [None, "RuntimeError: boom", None]
    assert store.count(IDENTITY) == 2


def test_generations_are_cached_per_seed(store: Store) -> None:
    request = [generation("Once upon")]
    backend = CountingBackend()
    engine(backend, store, seed=1).run(request)
    engine(backend, store, seed=2).run(request)
    assert len(sent(backend)) == 2  # another seed is another sample: computed again

    again = engine(backend, store, seed=1)
    assert values(again.run(request)) == ["echo Once upon"]
    assert len(sent(backend)) == 2 and again.counts == Counts(computed=0, cached=1, failed=0)
    assert store.count(IDENTITY) == 2


def test_scores_are_cached_across_seeds(store: Store) -> None:
    request = [ll("q", " a"), rolling("doc")]
    engine(CountingBackend(), store, seed=1).run(request)
    backend = CountingBackend()
    other_seed = engine(backend, store, seed=2)
    other_seed.run(request)
    assert backend.calls == [] and other_seed.counts == Counts(computed=0, cached=2, failed=0)


class Killed(BaseException):
    """The process dies: not an Exception, so the engine does not turn it into a per-request error."""


class KilledOnSecondCall(CountingBackend):
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        if len(self.calls) == 1:
            raise Killed
        return super().loglikelihood(requests, disable_tqdm)


def test_a_killed_run_resumes_with_the_chunks_of_an_uninterrupted_run(tmp_path: Path) -> None:
    # 10 contexts with 1 to 4 continuations each (23 requests); a context's continuations share a chunk.
    requests = [
        ll(f"context {i}" + "!" * i, f" option {j}" + "?" * j) for i in range(10) for j in range(1 + i % 4)
    ]

    uninterrupted = CountingBackend()
    fresh = Store(tmp_path / "fresh")
    expected = engine(uninterrupted, fresh, chunk_size=6).run(requests)
    fresh.close()
    assert len(uninterrupted.calls) >= 4  # chunks after the first one to compare

    store = Store(tmp_path / "resumed")
    killed = KilledOnSecondCall()
    with pytest.raises(Killed):
        engine(killed, store, chunk_size=6).run(requests)
    assert killed.calls == uninterrupted.calls[:1]
    first_chunk = len(uninterrupted.calls[0])
    assert store.count(IDENTITY) == first_chunk  # the first chunk was committed, nothing of the second

    resumed_backend = CountingBackend()
    resumed = engine(resumed_backend, store, chunk_size=6)
    outcomes = resumed.run(requests)
    store.close()
    assert resumed_backend.calls == uninterrupted.calls[1:]  # the very same batches, in the same order
    assert outcomes == expected
    assert resumed.counts == Counts(computed=len(requests) - first_chunk, cached=first_chunk, failed=0)
