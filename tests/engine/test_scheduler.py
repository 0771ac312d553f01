"""The engine: identical requests run once, order is restored, and one bad request stays one bad sample."""

from __future__ import annotations

from typing import Any

import pytest
from lm_eval.api.instance import Instance

from evalsuite.engine import Engine
from evalsuite.models.base import Backend, ModelInfo, Telemetry


class CountingBackend(Backend):
    """Answers loglikelihood with minus the continuation length; fails on continuations containing 'boom'."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[tuple[Any, ...]]] = []

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        self.calls.append([r.args for r in requests])
        if any("boom" in r.args[1] for r in requests):
            raise RuntimeError("boom")
        return [(-float(len(r.args[1])), False) for r in requests]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        self.calls.append([r.args for r in requests])
        return [-1.0 for _ in requests]

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        self.calls.append([r.args for r in requests])
        return [f"echo {r.args[0]}" for r in requests]

    def describe(self) -> ModelInfo:
        return ModelInfo("unknown", "counting", 0, 0, "n/a", "none", 0, "0" * 32, "none")

    def telemetry(self) -> Telemetry:
        return Telemetry(0, "none", 0, 0.0, 0, 0.0)


def ll(context: str, continuation: str, idx: int = 0) -> Instance:
    return Instance("loglikelihood", {}, (context, continuation), idx)


def test_identical_requests_reach_the_backend_once() -> None:
    backend = CountingBackend()
    requests = [ll("q", " a"), ll("q", " bb"), ll("q", " a"), ll("r", " a"), ll("q", " bb")]
    outcomes = Engine(backend).run(requests)
    sent = [args for call in backend.calls for args in call]
    assert sorted(sent) == [("q", " a"), ("q", " bb"), ("r", " a")]
    assert [o[0].value for o in outcomes] == [
        (-2.0, False),
        (-3.0, False),
        (-2.0, False),
        (-2.0, False),
        (-3.0, False),
    ]
    assert Engine(backend).count(requests) == 3


def test_generation_settings_are_part_of_a_request_identity() -> None:
    backend = CountingBackend()
    requests = [
        Instance("generate_until", {}, ("p", {"until": ["\n"]}), 0),
        Instance("generate_until", {}, ("p", {"until": ["."]}), 0),
    ]
    Engine(backend).run(requests)
    assert sum(len(c) for c in backend.calls) == 2


def test_repeats_are_not_deduplicated() -> None:
    backend = CountingBackend()
    request = Instance("generate_until", {}, ("p", {"until": ["\n"]}), 0, metadata=("t", 0, 3))
    (outcomes,) = Engine(backend).run([request])
    assert len(outcomes) == 3 and sum(len(c) for c in backend.calls) == 3


def test_a_failing_request_is_isolated_as_an_error() -> None:
    backend = CountingBackend()
    requests = [ll("q", " fine"), ll("q", " boom"), ll("q", " ok")]
    outcomes = Engine(backend).run(requests)
    assert outcomes[0][0].value == (-5.0, False) and outcomes[0][0].error is None
    assert outcomes[1][0].value is None and outcomes[1][0].error == "RuntimeError: boom"
    assert outcomes[2][0].value == (-3.0, False)


def test_progress_counts_every_unique_request_in_chunks() -> None:
    done: list[int] = []
    requests = [ll(f"q{i}", " " + "x" * i) for i in range(10)]
    Engine(CountingBackend(), chunk_size=4).run(requests, done.append)
    assert done == [4, 4, 2]


def test_the_continuations_of_one_context_stay_in_one_chunk() -> None:
    backend = CountingBackend()
    requests = [ll("short", " a"), *(ll("a longer context", f" {c}") for c in "abcde"), ll("s", " b")]
    Engine(backend, chunk_size=4).run(requests)
    assert [len(call) for call in backend.calls] == [5, 2]  # the five answers of one question together
    assert {args[0] for args in backend.calls[0]} == {"a longer context"}


def test_longest_requests_go_first() -> None:
    backend = CountingBackend()
    Engine(backend).run([ll("q", " a"), ll("q", " ccc"), ll("q", " bb")])
    assert backend.calls == [[("q", " ccc"), ("q", " bb"), ("q", " a")]]


def test_a_second_call_reuses_what_the_engine_has_already_answered() -> None:
    backend = CountingBackend()
    engine = Engine(backend)
    engine.run([ll("q", " a"), ll("q", " b")])
    assert engine.count([ll("q", " a"), ll("q", " c")]) == 1
    outcomes = engine.run([ll("q", " a"), ll("q", " c")])
    sent = [args for call in backend.calls for args in call]
    assert sorted(sent) == [("q", " a"), ("q", " b"), ("q", " c")]  # " a" went to the model once
    assert outcomes[0][0].value == (-2.0, False)


def test_a_backend_that_is_unusable_as_a_whole_stops_the_run() -> None:
    from evalsuite.errors import BackendUnavailable

    class Gone(CountingBackend):
        def loglikelihood(
            self, requests: list[Instance], disable_tqdm: bool = False
        ) -> list[tuple[float, bool]]:
            self.calls.append([r.args for r in requests])
            raise BackendUnavailable("server unreachable after 7 tries")

    backend = Gone()
    with pytest.raises(BackendUnavailable, match="7 tries"):
        Engine(backend).run([ll("Q", " a"), ll("Q", " b")])
    assert len(backend.calls) == 1  # not retried request by request: no request can succeed


def test_a_model_that_cannot_load_lazily_is_one_config_error_not_an_error_per_sample() -> None:
    from evalsuite.errors import BackendError, ConfigError
    from evalsuite.models.lazy import LazyBackend

    attempts = []

    def load() -> CountingBackend:
        attempts.append(1)
        raise BackendError("model 'm': cannot load /weights: truncated file")

    lazy = LazyBackend(load, lambda backend: None, None)
    with pytest.raises(ConfigError, match="truncated file"):
        Engine(lazy).run([ll("Q", " a"), ll("Q", " b"), ll("R", " c")])
    assert len(attempts) == 1
