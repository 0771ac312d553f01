"""``evalsuite import inspect``: real Inspect AI logs of two mock models become a normal run directory.

The fixture runs Inspect itself (``inspect_ai.eval``) on a small in-test arithmetic task with its mock
model ``mockllm/model``, given a script of answers: "strong" answers 10 of 12 questions right, "weak" 7,
and each gets one right that the other gets wrong, so the paired comparison has flips both ways. The
logs are Inspect's own files (one ``.eval``, one ``.json``). Every expected value comes from those logs,
read here with Inspect's reader and mapped with the table below, or from scipy: never from evalsuite's
reader or statistics.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Epochs, Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import EvalLog, EvalSample, read_eval_log, write_eval_log
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import Score, Target, includes, match, mean, scorer
from inspect_ai.solver import TaskState, generate
from scipy.stats import binomtest

from evalsuite.cli import main
from evalsuite.records import Results, SampleRecord, read_samples
from evalsuite.rundir import open_run

TASK = "sums"
# question number -> (a, b); the sample ids are strings, so the doc_ids are their sorted positions
QUESTIONS = {n: (n * 7 % 23, n * 5 % 17 + 1) for n in range(1, 13)}
IDS = {n: f"sum-{n}" for n in QUESTIONS}
INT_IDS = {n: 10 * n for n in QUESTIONS}  # ids of whole numbers are the doc_ids themselves
STRONG_WRONG = {3, 8}
WEAK_WRONG = {3, 5, 6, 9, 11}
SCORE = {"C": 1.0, "I": 0.0}  # match() and includes() give 'C' or 'I'; value_to_float makes them 1 and 0


def question(n: int) -> str:
    a, b = QUESTIONS[n]
    return f"What is {a} + {b}? Answer with the number only."


def answers(
    wrong: set[int], epoch_wrong: Callable[[int, int], bool] | None = None
) -> Callable[..., ModelOutput]:
    """A mock model's script: the sum, or the sum plus one where it is to be wrong (``epoch_wrong``:
    wrong depending on the question's how-manyth asking, for epochs)."""
    asked: dict[int, int] = {}

    def answer(messages: list[Any], *_: Any) -> ModelOutput:
        n = next(k for k in QUESTIONS if question(k) == messages[-1].text)
        asked[n] = asked.get(n, 0) + 1
        right = n not in wrong if epoch_wrong is None else not epoch_wrong(n, asked[n])
        a, b = QUESTIONS[n]
        output = ModelOutput.from_content(model="mockllm/model", content=str(a + b if right else a + b + 1))
        # a usage given: else the mock counts tokens with tiktoken, which downloads its vocabulary
        output.usage = ModelUsage(input_tokens=12, output_tokens=1, total_tokens=13)
        return output

    return answer


@scorer(metrics=[mean()])
def both_ways() -> Any:
    """A scorer giving a dict per sample, which an import cannot reduce to one number."""

    async def score(state: TaskState, target: Target) -> Score:
        return Score(value={"right": state.output.completion == target.text, "length": 2})

    return score


def sums_task(name: str = TASK, scorers: list[Any] | None = None, ids: dict[int, Any] = IDS) -> Task:
    dataset = MemoryDataset(
        [
            Sample(id=ids[n], input=question(n), target=str(sum(QUESTIONS[n])), metadata={"level": n % 3})
            for n in QUESTIONS
        ],
        name=name,
    )
    return Task(dataset=dataset, solver=generate(), scorer=scorers or [match(), includes()], name=name)


def run_inspect(task: Task, script: Callable[..., ModelOutput], log_dir: Path, **options: Any) -> Path:
    """Inspect's eval of the task by the mock model; the log file it wrote."""
    model = get_model("mockllm/model", custom_outputs=script)
    (log,) = inspect_eval(task, model=model, log_dir=str(log_dir), display="none", **options)
    return Path(log.location)


@dataclass(frozen=True)
class Logs:
    strong: Path
    weak: Path
    epochs: Path  # two epochs, each question right except on the askings EPOCH_WRONG names
    other_task: Path  # the same questions under another task name, with whole-number ids
    fewer: Path  # weak on eleven of the twelve samples
    errored: Path  # a sample failed: status "error"
    tolerated: Path  # the same failure in a run that tolerates failures: status "success"
    dict_scores: Path  # a scorer that gives a dict per sample


EPOCH_WRONG = {1: {2}, 4: {1, 2}, 7: {2}}  # question -> the askings it answers wrong


@contextmanager
def process_kept(root: Path) -> Iterator[None]:
    """Inspect's eval sets process-wide state for its display: a handler on the root logger (and its
    own logger's) that writes to the stderr of that moment, logger levels, sys.excepthook, warning
    filters. The logs are made inside this, and the state is put back after, so the tests that follow in
    this process find it as it was; Inspect's traces and buffers go to the test's folder, not the user's."""
    loggers = [logging.getLogger(name) for name in ("", "inspect_ai", "httpx", "httpx2")]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    hook = sys.excepthook
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_DATA_HOME", str(root / "data"))
    try:
        with warnings.catch_warnings():
            yield
    finally:
        patch.undo()
        sys.excepthook = hook
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Logs:
    root = tmp_path_factory.mktemp("inspect")

    def failing(messages: list[Any], *rest: Any) -> ModelOutput:
        if messages[-1].text == question(4):
            raise RuntimeError("the provider is down")
        return answers(set())(messages, *rest)

    with process_kept(root):
        return Logs(
            strong=run_inspect(sums_task(), answers(STRONG_WRONG), root / "strong"),
            weak=run_inspect(sums_task(), answers(WEAK_WRONG), root / "weak", log_format="json"),
            epochs=run_inspect(
                sums_task(),
                answers(set(), lambda n, k: k in EPOCH_WRONG.get(n, set())),
                root / "epochs",
                epochs=Epochs(2, "mean"),
            ),
            other_task=run_inspect(sums_task("products", ids=INT_IDS), answers(set()), root / "other"),
            fewer=run_inspect(
                sums_task(), answers(WEAK_WRONG), root / "fewer", sample_id=[IDS[n] for n in range(1, 12)]
            ),
            errored=run_inspect(sums_task(), failing, root / "errored"),
            tolerated=run_inspect(sums_task(), failing, root / "tolerated", fail_on_error=False),
            dict_scores=run_inspect(sums_task(scorers=[both_ways()]), answers(set()), root / "dict"),
        )


def read(path: Path) -> EvalLog:
    return read_eval_log(str(path))


def scores_of(path: Path) -> dict[str, dict[str, float]]:
    """sample id -> scorer -> its value as a number, literally from the log's samples (one epoch)."""
    samples = read(path).samples or []
    return {str(s.id): {k: SCORE[str(v.value)] for k, v in (s.scores or {}).items()} for s in samples}


def reported(path: Path, scorer_name: str, metric: str = "accuracy") -> float:
    results = read(path).results
    assert results is not None
    (score,) = [s for s in results.scores if s.scorer == scorer_name]
    return float(score.metrics[metric].value)


def doc_id(sample_id: str) -> int:
    return sorted(IDS.values()).index(sample_id)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def evalsuite(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def import_args(logs: Logs, out: Path, *extra: str) -> list[str]:
    names = ["--name", "imported", "--output-dir", str(out)]
    return ["import", "inspect", f"strong={logs.strong}", f"weak={logs.weak}", *names, *extra]


@pytest.fixture(scope="module")
def run_dir(logs: Logs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imported")
    assert main(import_args(logs, out)) == 0
    return out / "imported"


def results_of(run_dir: Path) -> Results:
    return Results.model_validate_json((run_dir / "results.json").read_text(encoding="utf-8"))


def records_of(run_dir: Path, model: str) -> list[SampleRecord]:
    return [r for r in read_samples(run_dir / "samples.jsonl") if r.model == model]


def test_the_mock_models_answered_as_scripted(logs: Logs) -> None:
    """The fixture's premise, from the logs: who is right where, and a real .eval and .json log."""
    strong, weak = scores_of(logs.strong), scores_of(logs.weak)
    assert {n for n in QUESTIONS if strong[IDS[n]]["match"] == 0.0} == STRONG_WRONG
    assert {n for n in QUESTIONS if weak[IDS[n]]["match"] == 0.0} == WEAK_WRONG
    assert (logs.strong.suffix, logs.weak.suffix) == (".eval", ".json")
    assert read(logs.errored).status == "error"


def test_every_record_is_an_inspect_sample(logs: Logs, run_dir: Path) -> None:
    for name, path in (("strong", logs.strong), ("weak", logs.weak)):
        samples: dict[str, EvalSample] = {str(s.id): s for s in read(path).samples or []}
        records = records_of(run_dir, name)
        assert len(records) == len(samples) == 12
        for record in records:
            sample = samples[str(record.doc["id"])]
            assert record.doc_id == doc_id(str(sample.id))
            assert record.task == TASK
            assert record.prompt == sample.input
            assert record.target == sample.target
            assert record.generation == sample.output.completion
            assert record.error is None
            assert record.metrics == {k: SCORE[str(v.value)] for k, v in (sample.scores or {}).items()}
            assert record.filtered == {k: v.answer for k, v in (sample.scores or {}).items()}
            assert record.doc == {
                "id": sample.id,
                "input": sample.input,
                "target": sample.target,
                "level": sample.metadata["level"],
            }


def test_task_values_are_inspect_accuracies(logs: Logs, run_dir: Path) -> None:
    results = results_of(run_dir)
    for name, path in (("strong", logs.strong), ("weak", logs.weak)):
        (result,) = [r for r in results.results if r.model == name]
        assert result.primary_metric == "match"
        assert set(result.metrics) == {"match", "includes"}
        for scorer_name in ("match", "includes"):
            assert result.metrics[scorer_name].value == pytest.approx(reported(path, scorer_name), abs=1e-12)
            assert result.metrics[scorer_name].n == 12
            assert result.metrics[scorer_name].higher_is_better is True
    assert results.results[0].metrics["match"].value == pytest.approx(10 / 12)  # the script's count


def test_intervals_are_wilson(logs: Logs, run_dir: Path) -> None:
    results = results_of(run_dir)
    for name, path in (("strong", logs.strong), ("weak", logs.weak)):
        right = sum(int(s["match"]) for s in scores_of(path).values())
        low, high = binomtest(right, 12).proportion_ci(confidence_level=0.95, method="wilson")
        (result,) = [r for r in results.results if r.model == name]
        interval = result.metrics["match"]
        assert interval.ci_method == "wilson"
        assert interval.ci_low == pytest.approx(low, abs=1e-12)
        assert interval.ci_high == pytest.approx(high, abs=1e-12)


def test_paired_comparison_counts_flips_from_both_logs(logs: Logs, run_dir: Path) -> None:
    strong, weak = scores_of(logs.strong), scores_of(logs.weak)
    both = sum(strong[i]["match"] == 1 and weak[i]["match"] == 1 for i in strong)
    strong_only = sum(strong[i]["match"] == 1 and weak[i]["match"] == 0 for i in strong)
    weak_only = sum(strong[i]["match"] == 0 and weak[i]["match"] == 1 for i in strong)
    assert (both, strong_only, weak_only) == (6, 4, 1)  # the script, counted from the logs
    (comparison,) = results_of(run_dir).comparisons
    assert (comparison.baseline, comparison.variant, comparison.task, comparison.metric) == (
        "strong",
        "weak",
        TASK,
        "match",
    )
    assert comparison.n == 12
    assert comparison.discordant is not None
    assert comparison.discordant.both == both
    assert comparison.discordant.baseline_only == strong_only
    assert comparison.discordant.variant_only == weak_only


def test_run_directory_serves_report_and_keeps_provenance(
    logs: Logs, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = open_run(run_dir)
    assert run.config.model("weak").backend == "imported"
    assert run.config.model("weak").path == str(logs.weak)
    assert run.manifest.models["weak"].loaded is False
    extra = run.manifest.models["weak"].model_extra or {}
    (log_file,) = extra["imported"]["logs"]
    assert log_file["path"] == str(logs.weak) and log_file["eval_id"] == read(logs.weak).eval.eval_id
    assert extra["imported"]["model"] == "mockllm/model"
    assert extra["imported"]["inspect_ai_version"] == read(logs.weak).eval.packages["inspect_ai"]
    (run_dir / "report.html").unlink()
    assert evalsuite(capsys, "report", str(run_dir)).code == 0
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "strong" in page and "weak" in page and TASK in page
    assert evalsuite(capsys, "compare", str(run_dir)).code == 0
    open_run(run_dir)  # still what evalsuite wrote


PASSING = "rules:\n  - {kind: threshold, task: sums, metric: match, min: 0.5, judge_on: value}\n"
FAILING = "rules:\n  - {kind: threshold, task: sums, metric: match, min: 0.95, judge_on: value}\n"


@pytest.mark.parametrize(("policy", "code"), [(PASSING, 0), (FAILING, 1)])
def test_gate_policy_decides_the_exit_code(
    logs: Logs, tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, code: int
) -> None:
    for path in (logs.strong, logs.weak):  # both between the two limits, as the logs report them
        assert 0.5 <= reported(path, "match") < 0.95
    path = tmp_path / "gates.yaml"
    path.write_text(policy, encoding="utf-8")
    result = evalsuite(capsys, *import_args(logs, tmp_path / "out", "--policy", str(path)))
    assert result.code == code, result.err
    verdict = results_of(tmp_path / "out" / "imported").gates
    assert verdict is not None and verdict.passed is (code == 0)
    assert (tmp_path / "out" / "imported" / "report.html").is_file()


def test_epochs_are_reduced_per_sample(
    logs: Logs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two epochs: one record per sample, its value the mean over the epochs (Inspect's default
    reducer), counted here from each epoch's sample in the log; the output is the first epoch's."""
    samples = read(logs.epochs).samples or []
    assert len(samples) == 24
    by_id: dict[str, list[EvalSample]] = {}
    for sample in samples:
        by_id.setdefault(str(sample.id), []).append(sample)
    argv = ["import", "inspect", f"twice={logs.epochs}", "--name", "epochs"]
    result = evalsuite(capsys, *argv, "--output-dir", str(tmp_path))
    assert result.code == 0, result.err
    records = records_of(tmp_path / "epochs", "twice")
    assert len(records) == 12
    for record in records:
        epochs = sorted(by_id[str(record.doc["id"])], key=lambda s: s.epoch)
        assert [s.epoch for s in epochs] == [1, 2]
        expected = sum(SCORE[str((s.scores or {})["match"].value)] for s in epochs) / 2
        assert record.metrics["match"] == expected
        assert record.generation == epochs[0].output.completion
    halves = {r.doc["id"]: r.metrics["match"] for r in records if r.metrics["match"] == 0.5}
    assert halves == {IDS[1]: 0.5, IDS[7]: 0.5}  # the script: wrong on one of two askings
    (twice,) = [r for r in results_of(tmp_path / "epochs").results if r.model == "twice"]
    assert twice.metrics["match"].value == pytest.approx(reported(logs.epochs, "match"), abs=1e-12)


def test_a_failed_sample_is_a_record_with_its_error(
    logs: Logs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that tolerated a failure: the failed sample is a record with Inspect's error and no metrics,
    left out of the values as Inspect leaves it out of its accuracy."""
    log = read(logs.tolerated)
    assert log.status == "success"
    (failed,) = [s for s in log.samples or [] if s.error is not None]
    argv = ["import", "inspect", f"strong={logs.strong}", f"flaky={logs.tolerated}", "--name", "flaky"]
    result = evalsuite(capsys, *argv, "--output-dir", str(tmp_path))
    assert result.code == 0, result.err
    (record,) = [r for r in records_of(tmp_path / "flaky", "flaky") if r.doc["id"] == failed.id]
    assert failed.error is not None and record.error == failed.error.message
    assert record.metrics == {}
    (flaky,) = [r for r in results_of(tmp_path / "flaky").results if r.model == "flaky"]
    assert (flaky.metrics["match"].n, flaky.metrics["match"].n_errors) == (11, 1)
    assert flaky.metrics["match"].value == pytest.approx(reported(logs.tolerated, "match"), abs=1e-12)
    (comparison,) = results_of(tmp_path / "flaky").comparisons
    assert comparison.n == 11  # pairs where both models have a value


def test_logs_of_one_model_are_its_tasks(
    logs: Logs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Logs without a name group by Inspect's model: one model "model" (from mockllm/model) with two
    tasks; given one NAME, two logs are that model's tasks."""
    argv = ["import", "inspect", str(logs.weak), str(logs.other_task), "--name", "one", "--output-dir"]
    result = evalsuite(capsys, *argv, str(tmp_path))
    assert result.code == 0, result.err
    run = open_run(tmp_path / "one")
    assert [m.name for m in run.config.models] == ["model"]
    assert set(run.manifest.tasks) == {TASK, "products"}
    assert {(r.doc_id, r.doc["id"]) for r in run.samples if r.task == "products"} == {
        (i, i) for i in INT_IDS.values()
    }
    argv = ["import", "inspect", f"a={logs.strong}", f"a={logs.other_task}", f"b={logs.weak}"]
    result = evalsuite(capsys, *argv, "--task", TASK, "--name", "two", "--output-dir", str(tmp_path))
    assert result.code == 0, result.err
    assert {(c.baseline, c.variant, c.task) for c in results_of(tmp_path / "two").comparisons} == {
        ("a", "b", TASK)
    }


def cancelled(logs: Logs, folder: Path) -> Path:
    """The strong log as Inspect writes one that was cancelled (its own writer, status changed)."""
    log = read(logs.strong)
    log.status = "cancelled"
    path = folder / "cancelled.eval"
    write_eval_log(log, str(path))
    return path


def not_a_log(logs: Logs, folder: Path) -> Path:
    path = folder / "results.json"
    path.write_text('{"schema": "evalsuite.results/1", "run": "x"}', encoding="utf-8")
    return path


def text_file(logs: Logs, folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("not a log\n", encoding="utf-8")
    return path


# (the second model's log, extra arguments, the message)
BAD_INPUTS: list[Any] = [
    pytest.param(not_a_log, (), "not an Inspect log Inspect can read", id="not-a-log"),
    pytest.param(text_file, (), "not an Inspect log (Inspect writes .eval and .json logs)", id="suffix"),
    pytest.param(lambda logs, _: logs.errored, (), "has status 'error' (", id="status-error"),
    pytest.param(cancelled, (), "has status 'cancelled'", id="status-cancelled"),
    pytest.param(lambda logs, _: logs.other_task, (), "the logs share no task", id="different-tasks"),
    pytest.param(
        lambda logs, _: logs.fewer,
        (),
        "were evaluated on different samples (12 and 11; sample 'sum-12' only in",
        id="sample-ids",
    ),
    pytest.param(lambda logs, _: logs.dict_scores, (), "is not one number", id="dict-scores"),
    pytest.param(
        lambda logs, _: logs.epochs, (), "epochs is 1 for 'strong' and 2 for 'other'", id="epochs-differ"
    ),
    pytest.param(
        lambda logs, folder: folder / "missing.eval", (), "missing.eval: no such file", id="missing"
    ),
    pytest.param(
        lambda logs, _: logs.weak, ("--task", "sum"), "no log of task 'sum' (did you mean 'sums'?)", id="task"
    ),
]


@pytest.mark.parametrize(("second", "extra", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_and_writes_nothing(
    logs: Logs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    second: Callable[[Logs, Path], Path],
    extra: tuple[str, ...],
    message: str,
) -> None:
    out = tmp_path / "out"
    argv = ["import", "inspect", f"strong={logs.strong}", f"other={second(logs, tmp_path)}"]
    result = evalsuite(capsys, *argv, "--name", "x", "--output-dir", str(out), *extra)
    assert result.code == 2, result.err
    assert result.err.count("\n") == 1, f"not one line: {result.err!r}"
    assert message in result.err
    assert result.out == ""
    assert not out.exists() or not any(out.iterdir())


def test_two_logs_of_one_task_need_names(
    logs: Logs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "import",
        "inspect",
        str(logs.strong),
        str(logs.weak),
        "--name",
        "x",
        "--output-dir",
        str(tmp_path),
    ]
    result = evalsuite(capsys, *argv)
    assert result.code == 2
    assert "two logs of task 'sums' for model 'model'" in result.err and "NAME=LOG" in result.err


def test_without_inspect_installed_the_extra_is_named(
    logs: Logs, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # what a missing package raises on import
    result = evalsuite(capsys, *import_args(logs, tmp_path / "out"))
    assert result.code == 2
    assert "pip install 'evalsuite[inspect]'" in result.err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
