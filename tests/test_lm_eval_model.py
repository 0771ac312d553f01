"""``evalsuite-hf``: evalsuite's hf backend and engine as a model of lm-eval's own command line.

The reference is lm-eval itself: its CLI with its own ``hf`` model (``python -m lm_eval run --model hf``)
on stories260K and the project's local task files, against the same CLI with ``--model evalsuite-hf``
(``python -m evalsuite.lm_eval_cli``, which registers the ``lm_eval.models`` entry points lm-eval 0.4.13
does not read and runs that CLI unchanged), then the same evalsuite-hf command again, which must answer
from the answer cache without loading the model. Each command is a fresh process, as a user's would be.

Log-likelihoods are compared within a relative 2e-6: lm-eval scores each answer after its context as
its own row and sums token log-probabilities in float32, evalsuite scores a question's answers as one
prefix-tree row and sums in float64; the sums differ by float rounding (at most 5.4e-7 of their value,
4.6e-5 on a sum of -87.5, over 80 ARC-Challenge answers measured when this was written). Everything
decided from them (greedy flags, accuracies) and every generation must be identical.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from evalsuite.errors import BackendError, ConfigError
from evalsuite.lm_eval_model import NAME, EvalsuiteHF
from evalsuite.store import FILENAME
from evalsuite.tasks.sources import local_task_files, task_dirs

REPO = Path(__file__).resolve().parents[1]
TASKS = ("arc_challenge_local", "triviaqa_local")  # multiple choice (loglikelihood) and generate_until
LIMIT = 10
REL_TOL = 2e-6  # relative: float rounding of a sum of token log-probabilities (module docstring)

Run = dict[str, Any]  # "results": lm-eval's results JSON; "samples": task -> doc_id -> sample


# -- lm-eval's own CLI, three times ------------------------------------------------------------
@pytest.fixture(scope="module")
def task_folder(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The task files as lm-eval's ``--include_path`` reads them: evalsuite's ``${data_dir}`` and
    ``${task_dir}`` written out, the ``utils_*.py`` their ``!function`` tags name copied beside them."""
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    files = local_task_files(task_dirs())
    for name in TASKS:
        path = files[name]
        text = path.read_text(encoding="utf-8").replace("${data_dir}", str(data_dir))
        (folder / path.name).write_text(text.replace("${task_dir}", str(path.parent)), encoding="utf-8")
        for helper in path.parent.glob("utils_*.py"):
            shutil.copyfile(helper, folder / helper.name)
    return folder


def lm_eval(module: str, model: str, model_args: str, tasks: Path, out: Path) -> Run:
    """``python -m <module> run ...`` as a user types it; its results JSON and per-sample files."""
    command = [sys.executable, "-m", module, "run", "--model", model, "--model_args", model_args]
    command += ["--tasks", ",".join(TASKS), "--include_path", str(tasks), "--limit", str(LIMIT)]
    command += ["--batch_size", "8", "--device", "cpu", "--log_samples", "--output_path", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=out.parent)
    assert done.returncode == 0, f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-4000:]}"
    [results] = out.rglob("results_*.json")
    samples = {}
    for path in out.rglob("samples_*.jsonl"):
        task = path.name.removeprefix("samples_").rsplit("_", 1)[0]  # samples_<task>_<timestamp>.jsonl
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        samples[task] = {row["doc_id"]: row for row in rows}
    return {"results": json.loads(results.read_text(encoding="utf-8")), "samples": samples}


@pytest.fixture(scope="module")
def runs(stories: Path, task_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """lm-eval's hf model; evalsuite-hf on an empty answer cache; evalsuite-hf again on that cache."""
    root = tmp_path_factory.mktemp("lm-eval-runs")
    ours = f"pretrained={stories},dtype=float32,cache_dir={root / 'cache'}"
    return {
        "hf": lm_eval("lm_eval", "hf", f"pretrained={stories},dtype=float32", task_folder, root / "hf"),
        "first": lm_eval("evalsuite.lm_eval_cli", NAME, ours, task_folder, root / "first"),
        "rerun": lm_eval("evalsuite.lm_eval_cli", NAME, ours, task_folder, root / "rerun"),
    }


def test_every_aggregated_metric_equals_lm_eval_hf(runs: dict[str, Run]) -> None:
    theirs, ours = runs["hf"]["results"], runs["first"]["results"]
    assert sorted(theirs["results"]) == sorted(TASKS)
    assert ours["results"] == theirs["results"]  # every metric and its standard error, exactly
    assert ours["n-samples"] == theirs["n-samples"]


def test_every_sample_scores_as_lm_eval_hf(runs: dict[str, Run]) -> None:
    """Same documents, prompts and targets; same per-sample metrics; the same generations; each answer's
    log-likelihood within float rounding and the same greedy flag."""
    theirs, ours = runs["hf"]["samples"], runs["first"]["samples"]
    assert sorted(ours) == sorted(theirs) == sorted(TASKS)
    metrics = {"arc_challenge_local": ("acc", "acc_norm"), "triviaqa_local": ("exact_match",)}
    for task, names in metrics.items():
        assert sorted(ours[task]) == sorted(theirs[task]) == list(range(LIMIT))
        for doc_id, their in theirs[task].items():
            mine = ours[task][doc_id]
            for key in ("doc_hash", "prompt_hash", "target_hash", "arguments", *names):
                assert mine[key] == their[key], (task, doc_id, key)
            if task == "triviaqa_local":
                assert mine["resps"] == their["resps"] and mine["filtered_resps"] == their["filtered_resps"]
                continue
            assert len(mine["resps"]) == len(their["resps"]) == 4  # one per choice
            for [[my_ll, my_greedy]], [[their_ll, their_greedy]] in zip(
                mine["resps"], their["resps"], strict=True
            ):
                assert math.isclose(float(my_ll), float(their_ll), rel_tol=REL_TOL), (doc_id, my_ll, their_ll)
                assert my_greedy == their_greedy


def test_each_distinct_request_is_computed_once(runs: dict[str, Run]) -> None:
    """The first evalsuite-hf run computed exactly the distinct requests lm-eval made (counted from
    lm-eval's own samples file): 4 answers per ARC question, one generation per TriviaQA question."""
    distinct = {
        json.dumps(arguments, sort_keys=True)
        for task in TASKS
        for sample in runs["hf"]["samples"][task].values()
        for arguments in sample["arguments"].values()
    }
    info = runs["first"]["results"]["config"]["evalsuite"]
    assert (info["computed"], info["cached"], info["failed"]) == (len(distinct), 0, 0)
    assert info["model_loaded"] is True


def test_second_invocation_answers_from_the_cache_without_loading_the_model(runs: dict[str, Run]) -> None:
    first, rerun = runs["first"], runs["rerun"]
    before, after = first["results"]["config"]["evalsuite"], rerun["results"]["config"]["evalsuite"]
    assert after["identity"] == before["identity"] and after["answer_cache"] == before["answer_cache"]
    assert (after["computed"], after["cached"], after["failed"]) == (0, before["computed"], 0)
    assert after["model_loaded"] is False
    assert after["model"] == before["model"]  # the description comes from the cache
    assert rerun["results"]["results"] == first["results"]["results"]
    for task in TASKS:  # cached answers are the computed ones to the last bit, not merely close
        for doc_id, sample in first["samples"][task].items():
            assert rerun["samples"][task][doc_id]["resps"] == sample["resps"]


# -- the request contract, in-process -----------------------------------------------------------
@pytest.fixture(scope="module")
def models(stories: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, EvalsuiteHF]:
    """lm-eval's HFLM and evalsuite-hf on stories260K, at the same settings."""
    from lm_eval.models.huggingface import HFLM

    cache = tmp_path_factory.mktemp("contract-cache")
    settings = {"pretrained": str(stories), "dtype": "float32", "device": "cpu", "batch_size": 4}
    return HFLM(**settings), EvalsuiteHF(**settings, cache_dir=str(cache))


def ll(context: str, continuation: str) -> Instance:
    return Instance("loglikelihood", {}, (context, continuation), 0)


def test_loglikelihoods_in_request_order(models: tuple[Any, EvalsuiteHF]) -> None:
    """Answers come back in the order asked, also for a request listed twice and for two requests with
    the same arguments (which the engine answers once)."""
    theirs, ours = models
    question = ll("Lily saw a big dog. The dog was", " happy.")
    requests = [
        question,
        ll("Lily saw a big dog. The dog was", " sad."),
        ll("Tom had a red ball.", " He threw it."),
        question,
        ll("Lily saw a big dog. The dog was", " happy."),
        ll("", " Once upon a time"),
    ]
    expected = theirs.loglikelihood(requests, disable_tqdm=True)
    answers = ours.loglikelihood(requests, disable_tqdm=True)
    assert len(answers) == len(requests)
    assert len({round(value, 3) for value, _ in expected}) == 4  # the order is visible in the values
    for (value, greedy), (their_value, their_greedy) in zip(answers, expected, strict=True):
        assert math.isclose(value, their_value, rel_tol=REL_TOL), (value, their_value)
        assert greedy == their_greedy


def test_rolling_loglikelihoods_in_request_order(models: tuple[Any, EvalsuiteHF]) -> None:
    """lm-eval's rolling windows, one text longer than the model's 512 tokens."""
    theirs, ours = models
    story = "Once upon a time, there was a little girl named Lily. She liked to play in the park. "
    texts = [story * 20, "The cat sat on the mat.", story]
    requests = [Instance("loglikelihood_rolling", {}, (text,), 0) for text in texts]
    assert len(ours.backend.backend().tok_encode(texts[0])) > 512
    expected = theirs.loglikelihood_rolling(requests, disable_tqdm=True)
    answers = ours.loglikelihood_rolling(requests, disable_tqdm=True)
    assert len(answers) == len(requests)
    for value, their_value in zip(answers, expected, strict=True):
        assert math.isclose(value, their_value, rel_tol=REL_TOL), (value, their_value)


def test_generations_and_repeated_listings(
    models: tuple[Any, EvalsuiteHF], stories: Path, tmp_path: Path
) -> None:
    """lm-eval lists a request with ``repeats: 3`` three times (the same object): the listings get three
    distinct draws, the ones evalsuite's hf backend itself draws for three copies of the request (its
    occurrence seeds); a greedy request listed between them gets lm-eval's own generation."""
    from evalsuite.config import ModelConfig
    from evalsuite.models import BACKENDS, LoadContext

    theirs, ours = models
    sampled = Instance(
        "generate_until",
        {},
        ("Once upon a time", {"until": ["\n"], "do_sample": True, "temperature": 1.0, "max_gen_toks": 12}),
        0,
        metadata=("t", 0, 3),
    )
    greedy = Instance("generate_until", {}, ("Lily and Tom went to", {"until": ["."], "max_gen_toks": 16}), 0)
    answers = ours.generate_until([sampled, greedy, sampled, sampled], disable_tqdm=True)

    backend = BACKENDS.get("hf")(
        ModelConfig(name="stories", path=str(stories), device="cpu", batch_size=4),
        LoadContext(tmp_path, seed=ours.seed),
    )
    draws = backend.generate_until([sampled, sampled, sampled])
    assert len(set(draws)) == 3  # three distinct draws, so a mix-up would show
    [their_greedy] = theirs.generate_until([greedy], disable_tqdm=True)
    assert answers == [draws[0], their_greedy, draws[1], draws[2]]


# -- model_args ----------------------------------------------------------------------------------
def test_default_cache_is_evalsuite_runs(stories: Path, isolated_answer_cache: Path) -> None:
    """No cache_dir: ``$EVALSUITE_CACHE_DIR`` (the tests point it at a folder of the session), as
    ``evalsuite run`` picks it; nothing is loaded before a request needs it."""
    model = EvalsuiteHF(pretrained=str(stories), dtype="float32", device="cpu")
    assert model.store is not None and model.store.path == isolated_answer_cache.resolve() / FILENAME
    assert model.get_model_info()["evalsuite"]["model_loaded"] is False


def test_answer_cache_false_keeps_no_cache(stories: Path, tmp_path: Path) -> None:
    model = EvalsuiteHF(pretrained=str(stories), device="cpu", cache_dir=str(tmp_path), answer_cache=False)
    assert model.store is None and not (tmp_path / FILENAME).exists()
    assert model.get_model_info()["evalsuite"]["answer_cache"] is None


@pytest.mark.parametrize(
    ("model_args", "message"),
    [
        pytest.param(
            {"dtyp": "float32"},
            "unknown model_args dtyp (did you mean 'dtype'?); it takes pretrained, cache_dir",
            id="unknown-key",
        ),
        pytest.param({"max_batch_size": 64}, "max_batch_size is not supported", id="max-batch-size"),
        pytest.param({"dtype": "float8"}, "evalsuite-hf model_args: dtype: ", id="bad-dtype"),
        pytest.param({"batch_size": 0}, "evalsuite-hf model_args: batch_size: ", id="bad-batch-size"),
        pytest.param({"seed": "one"}, "model_args seed should be int (got 'one')", id="bad-seed"),
        pytest.param({"answer_cache": "maybe"}, "answer_cache should be bool", id="bad-answer-cache"),
    ],
)
def test_bad_model_args_fail_in_one_line(
    stories: Path, tmp_path: Path, model_args: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        EvalsuiteHF(pretrained=str(stories), cache_dir=str(tmp_path), **model_args)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_pretrained_or_weights(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs pretrained="):
        EvalsuiteHF(dtype="float32", cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="is neither an existing folder nor a hub id"):
        EvalsuiteHF(pretrained=str(tmp_path / "missing"), cache_dir=str(tmp_path))


# -- the entry point -----------------------------------------------------------------------------
def test_entry_point_is_declared_and_installed() -> None:
    """pyproject.toml declares evalsuite-hf in lm-eval's ``lm_eval.models`` group, naming this class,
    and the installed metadata says the same (else reinstall: ``pip install --no-deps -e .``)."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"]
    value = declared["lm_eval.models"][NAME]
    assert EntryPoint(NAME, value, "lm_eval.models").load() is EvalsuiteHF
    installed = {point.name: point.value for point in entry_points(group="lm_eval.models")}
    assert installed.get(NAME) == value, f"installed metadata is stale ({installed}): pip install -e ."


def test_a_failing_request_stops_the_call_and_names_the_cache(models: tuple[Any, EvalsuiteHF]) -> None:
    """lm-eval has no per-sample errors: a request the backend cannot answer (an empty continuation)
    fails the call, saying where the answers computed before it are."""
    _, ours = models
    assert ours.store is not None
    with pytest.raises(BackendError) as caught:
        ours.loglikelihood([ll("Lily saw a cat.", " It ran."), ll("Lily saw a cat.", "")], disable_tqdm=True)
    message = str(caught.value)
    assert "1 loglikelihood request(s) failed, the first with BackendError: empty continuation" in message
    assert f"the answer cache {ours.store.path}, rerun to resume" in message


def test_chat_templates_are_refused_by_name(models: tuple[Any, EvalsuiteHF]) -> None:
    """lm-eval asks for a template only under --apply_chat_template; the refusal says what to do."""
    _, ours = models
    assert ours.chat_template(False) == ""
    with pytest.raises(ConfigError, match="does not apply chat templates: leave out --apply_chat_template"):
        ours.chat_template(True)
    with pytest.raises(ConfigError, match="leave out --apply_chat_template"):
        _ = ours.tokenizer_name
