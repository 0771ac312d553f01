"""``evalsuite import lm-eval``: real lm-eval output of two models becomes a normal run directory.

The fixture runs lm-eval itself (``simple_evaluate`` and its own EvaluationTracker writers, as its CLI
does with ``--output_path OUT --log_samples``) on stories260K and a tiny random-init Llama with the same
tokenizer, which answers differently. Every expected value comes from lm-eval's files, read here with
``json``, or from scipy: never from evalsuite's reader or statistics.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import binomtest

from evalsuite.cli import main
from evalsuite.imports import Source
from evalsuite.records import Results, read_samples
from evalsuite.rundir import open_run
from tests.conftest import REPO

TASKS = ("arc_challenge_local", "gsm8k_local", "lambada_local")  # multiple choice, generation, log-likelihood
LIMIT = 20
# evalsuite's names for lm-eval's result keys: one filter keeps the bare metric, several add ":filter"
NAMES = {
    "arc_challenge_local": {"acc": "acc,none", "acc_norm": "acc_norm,none"},
    "gsm8k_local": {
        "exact_match:strict-match": "exact_match,strict-match",
        "exact_match:flexible-extract": "exact_match,flexible-extract",
    },
    "lambada_local": {"perplexity": "perplexity,none", "acc": "acc,none"},
}


@dataclass(frozen=True)
class Output:
    """One model's lm-eval output folder, read as plain JSON."""

    folder: Path
    results: dict[str, Any]
    samples: dict[str, list[dict[str, Any]]]  # task -> its lines

    @classmethod
    def read(cls, folder: Path) -> Output:
        (results_file,) = folder.glob("results_*.json")
        stamp = results_file.stem.removeprefix("results_")
        samples = {}
        for task in TASKS:
            text = (folder / f"samples_{task}_{stamp}.jsonl").read_text(encoding="utf-8")
            samples[task] = [json.loads(line) for line in text.splitlines()]
        return cls(folder, json.loads(results_file.read_text(encoding="utf-8")), samples)

    def lines(self, task: str, doc_id: int) -> dict[str, dict[str, Any]]:
        """A document's lines by filter."""
        return {line["filter"]: line for line in self.samples[task] if line["doc_id"] == doc_id}

    def correct(self, task: str, metric: str = "acc") -> dict[int, float]:
        return {line["doc_id"]: line[metric] for line in self.samples[task] if line["filter"] == "none"}


def run_lm_eval(model_args: str, task_manager: Any, output: Path) -> Path:
    """lm-eval on the tasks, written as its CLI writes them; the model's output folder."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(output))
    results = simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=list(TASKS),
        num_fewshot=0,  # short prompts keep generation quick on a busy CPU
        limit=LIMIT,
        gen_kwargs="max_gen_toks=16",
        batch_size=8,
        device="cpu",
        bootstrap_iters=0,  # lm-eval's own stderr of perplexity: 100,000 resamples by default
        log_samples=True,
        evaluation_tracker=tracker,
        task_manager=task_manager,
    )
    assert results is not None
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    (folder,) = [p for p in output.iterdir() if p.is_dir() and any(p.glob("results_*.json"))]
    return folder


@pytest.fixture(scope="module")
def outputs(
    tmp_path_factory: pytest.TempPathFactory,
    data_dir: Path,
    stories: Path,
    tiny_model: Callable[[str], Path],
) -> tuple[Output, Output]:
    """lm-eval output of stories260K and of a random-init Llama, each in its own ``--output_path``.
    The project's task files name their data ``${data_dir}``, which lm-eval does not know: they are
    copied with the data folder written in."""
    root = tmp_path_factory.mktemp("lm-eval")
    tasks_dir = root / "tasks"
    tasks_dir.mkdir()
    for task in TASKS:
        text = (REPO / "tasks" / f"{task}.yaml").read_text(encoding="utf-8")
        (tasks_dir / f"{task}.yaml").write_text(text.replace("${data_dir}", str(data_dir)), encoding="utf-8")
    import torch
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks_dir))  # indexes all of lm-eval's tasks: once
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on two busy cores wait on each other: 4x slower here
    try:
        base = run_lm_eval(f"pretrained={stories},dtype=float32", manager, root / "stories")
        other = run_lm_eval(f"pretrained={tiny_model('llama')},dtype=float32", manager, root / "tiny")
    finally:
        torch.set_num_threads(threads)
    return Output.read(base), Output.read(other)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def evalsuite(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def import_args(outputs: tuple[Output, Output], out: Path, *extra: str) -> list[str]:
    base, other = outputs
    return [
        "import",
        "lm-eval",
        f"stories={base.folder}",
        f"tiny={other.folder}",
        "--name",
        "imported",
        "--output-dir",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def run_dir(outputs: tuple[Output, Output], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("imported")
    assert main(import_args(outputs, out)) == 0
    yield out / "imported"


def results_of(run_dir: Path) -> Results:
    return Results.model_validate_json((run_dir / "results.json").read_text(encoding="utf-8"))


def test_every_record_is_lm_eval_sample(outputs: tuple[Output, Output], run_dir: Path) -> None:
    records = list(read_samples(run_dir / "samples.jsonl"))
    assert len(records) == 2 * len(TASKS) * LIMIT
    for name, output in zip(("stories", "tiny"), outputs, strict=True):
        for record in (r for r in records if r.model == name):
            lines = output.lines(record.task, record.doc_id)
            first = next(iter(lines.values()))
            assert record.doc == first["doc"]
            assert record.prompt == first["arguments"]["gen_args_0"]["arg_0"]
            assert record.error is None
            expected = {
                ours: lines[theirs.split(",")[1]][theirs.split(",")[0]]
                for ours, theirs in NAMES[record.task].items()
            }
            assert record.metrics == expected
            if record.task == "arc_challenge_local":
                assert record.target == int(first["target"])
                assert record.choices is not None
                assert [c.text for c in record.choices] == first["doc"]["choices"]
                assert [c.loglikelihood for c in record.choices] == [float(r[0][0]) for r in first["resps"]]
                assert [c.is_greedy for c in record.choices] == [r[0][1] == "True" for r in first["resps"]]
            elif record.task == "gsm8k_local":
                assert record.target == first["target"]
                assert record.generation == first["resps"][0][0]
                assert record.filtered == {f: line["filtered_resps"][0] for f, line in lines.items()}
            else:  # a log-likelihood task keeps no answer beyond its metrics, as a run's record
                assert record.target == first["target"]
                assert (record.choices, record.generation, record.loglikelihood) == (None, None, None)
        docs = {(r.task, r.doc_id) for r in records if r.model == name}
        assert docs == {(t, line["doc_id"]) for t in TASKS for line in output.samples[t]}


def test_task_values_are_lm_eval_aggregates(outputs: tuple[Output, Output], run_dir: Path) -> None:
    results = results_of(run_dir)
    for name, output in zip(("stories", "tiny"), outputs, strict=True):
        for task, names in NAMES.items():
            (result,) = [r for r in results.results if r.model == name and r.task == task]
            assert set(result.metrics) == set(names)
            for ours, theirs in names.items():
                reported = output.results["results"][task][theirs]
                if ours == "perplexity":  # exp(-mean): numpy's pairwise sum may round the last bit otherwise
                    assert result.metrics[ours].value == pytest.approx(reported, rel=1e-12)
                    assert result.metrics[ours].ci_method == "bootstrap percentile"
                else:
                    assert result.metrics[ours].value == reported
                assert result.metrics[ours].n == LIMIT
            assert result.num_fewshot == output.results["n-shot"][task] == 0
        assert results_of(run_dir).results[0].primary_metric == "acc"


def test_intervals_are_wilson_as_a_run_gives(outputs: tuple[Output, Output], run_dir: Path) -> None:
    results = results_of(run_dir)
    for name, output in zip(("stories", "tiny"), outputs, strict=True):
        for metric in ("acc", "acc_norm"):
            successes = sum(int(v) for v in output.correct("arc_challenge_local", metric).values())
            low, high = binomtest(successes, LIMIT).proportion_ci(confidence_level=0.95, method="wilson")
            (result,) = [r for r in results.results if r.model == name and r.task == "arc_challenge_local"]
            interval = result.metrics[metric]
            assert interval.ci_method == "wilson"
            assert interval.ci_low == pytest.approx(low, abs=1e-12)
            assert interval.ci_high == pytest.approx(high, abs=1e-12)


def test_paired_comparison_counts_flips_from_both_samples_files(
    outputs: tuple[Output, Output], run_dir: Path
) -> None:
    base, other = (output.correct("arc_challenge_local") for output in outputs)
    both = sum(base[d] == 1 and other[d] == 1 for d in base)
    baseline_only = sum(base[d] == 1 and other[d] == 0 for d in base)
    variant_only = sum(base[d] == 0 and other[d] == 1 for d in base)
    assert baseline_only + variant_only > 0, "the two models should answer some documents differently"
    (comparison,) = [c for c in results_of(run_dir).comparisons if c.task == "arc_challenge_local"]
    assert (comparison.baseline, comparison.variant, comparison.metric) == ("stories", "tiny", "acc")
    assert comparison.n == LIMIT
    assert comparison.discordant is not None
    assert comparison.discordant.both == both
    assert comparison.discordant.baseline_only == baseline_only
    assert comparison.discordant.variant_only == variant_only
    assert comparison.shift is not None and comparison.shift.questions == LIMIT  # choices were kept
    assert {c.task for c in results_of(run_dir).comparisons} == set(TASKS)


def test_run_directory_checks_and_serves_report_compare_gate(
    run_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = open_run(run_dir)
    assert run.config.model("tiny").backend == "imported"
    assert run.manifest.models["tiny"].loaded is False
    extra = run.manifest.models["tiny"].model_extra or {}
    assert extra["imported"]["lm_eval_version"] and extra["imported"]["model_args"].startswith("pretrained=")
    assert Path(extra["imported"]["results"]).is_file()
    (run_dir / "report.html").unlink()
    assert evalsuite(capsys, "report", str(run_dir)).code == 0
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "tiny" in page and "arc_challenge_local" in page
    assert evalsuite(capsys, "compare", str(run_dir)).code == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  - {kind: non_inferiority, tasks: [arc_challenge_local], margin: 1.0}\n", encoding="utf-8"
    )
    assert evalsuite(capsys, "gate", str(run_dir), "--policy", str(policy)).code == 0
    open_run(run_dir)  # still what evalsuite wrote


PASSING = "rules:\n  - {kind: threshold, task: arc_challenge_local, min: 0.0, judge_on: value}\n" + (
    "  - {kind: non_inferiority, tasks: [arc_challenge_local], margin: 1.0}\n"
)
FAILING = "rules:\n  - {kind: threshold, task: arc_challenge_local, metric: acc, min: 0.95}\n"


@pytest.mark.parametrize(("policy", "code"), [(PASSING, 0), (FAILING, 1)])
def test_gate_policy_decides_the_exit_code(
    outputs: tuple[Output, Output],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    policy: str,
    code: int,
) -> None:
    for output in outputs:  # at n=20, a Wilson interval of an accuracy below 0.5 ends below 0.95
        assert output.results["results"]["arc_challenge_local"]["acc,none"] < 0.5
    path = tmp_path / "gates.yaml"
    path.write_text(policy, encoding="utf-8")
    result = evalsuite(capsys, *import_args(outputs, tmp_path / "out", "--policy", str(path)))
    assert result.code == code, result.err
    run_dir = tmp_path / "out" / "imported"
    verdict = results_of(run_dir).gates
    assert verdict is not None and verdict.passed is (code == 0)
    assert (run_dir / "junit.xml").is_file()
    assert evalsuite(capsys, "gate", str(run_dir)).code == code  # the stored policy, re-applied


def test_config_gives_stats_and_task_settings(
    outputs: tuple[Output, Output], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "model.yaml"
    config.write_text(
        "run: {name: elsewhere, seed: 7}\n"
        "models: [{name: whatever, path: /nowhere}]\n"
        "stats: {confidence: 0.9, margin: 0.05}\n"
        "tasks:\n  - {name: arc_challenge_local, metric: acc_norm, margin: 0.1}\n",
        encoding="utf-8",
    )
    result = evalsuite(capsys, *import_args(outputs, tmp_path / "out", "--config", str(config)))
    assert result.code == 0, result.err
    results = results_of(tmp_path / "out" / "imported")
    arc = next(c for c in results.comparisons if c.task == "arc_challenge_local")
    gsm = next(c for c in results.comparisons if c.task == "gsm8k_local")
    assert (arc.metric, arc.non_inferiority.margin, arc.confidence) == ("acc_norm", 0.1, 0.9)
    assert (gsm.metric, gsm.non_inferiority.margin) == ("exact_match:strict-match", 0.05)
    assert all(m.confidence == 0.9 for r in results.results for m in r.metrics.values())
    assert open_run(tmp_path / "out" / "imported").manifest.seed == 7


def test_default_names_baseline_and_one_results_file(
    outputs: tuple[Output, Output], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, other = outputs
    names = [Path(o.results["model_name"]).name for o in outputs]  # the checkpoint folders' names
    (results_file,) = base.folder.glob("results_*.json")
    argv = ["import", "lm-eval", str(results_file), str(other.folder.parent), "--baseline", names[1]]
    result = evalsuite(capsys, *argv, "--name", "named", "--output-dir", str(tmp_path))
    assert result.code == 0, result.err
    comparisons = results_of(tmp_path / "named").comparisons
    assert {(c.baseline, c.variant) for c in comparisons} == {(names[1], names[0])}


def test_source_names() -> None:
    assert Source.parse("base=out/x") == Source("base", Path("out/x"))
    assert Source.parse("out/x") == Source(None, Path("out/x"))
    assert Source.parse("/a/b=c/d") == Source(None, Path("/a/b=c/d"))  # not a name before '='


# Each bad input: (what to do to a copy of the second model's folder, the message). The copy is what
# the import reads for model "tiny"; "stories" stays as lm-eval wrote it.
Mutation = Callable[[Path], None]


def _results_file(folder: Path) -> Path:
    (path,) = folder.glob("results_*.json")
    return path


def _samples_file(folder: Path, task: str) -> Path:
    (path,) = folder.glob(f"samples_{task}_*.jsonl")
    return path


def _edit_results(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = _results_file(folder)
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _edit_lines(folder: Path, task: str, edit: Callable[[list[str]], list[str]]) -> None:
    path = _samples_file(folder, task)
    path.write_text(
        "".join(edit(path.read_text(encoding="utf-8").splitlines(keepends=True))), encoding="utf-8"
    )


def no_results(folder: Path) -> None:
    _results_file(folder).unlink()


def no_samples(folder: Path) -> None:
    for path in folder.glob("samples_*.jsonl"):
        path.unlink()


def one_task_without_samples(folder: Path) -> None:
    _samples_file(folder, "gsm8k_local").unlink()


def without_a_task(folder: Path) -> None:
    def drop(data: dict[str, Any]) -> None:
        for key in ("results", "configs", "n-shot", "n-samples", "higher_is_better", "versions"):
            data[key].pop("gsm8k_local")

    _edit_results(folder, drop)
    _samples_file(folder, "gsm8k_local").unlink()


def fewer_documents(folder: Path) -> None:
    _edit_lines(
        folder, "arc_challenge_local", lambda lines: [x for x in lines if json.loads(x)["doc_id"] != 19]
    )

    def count(data: dict[str, Any]) -> None:
        data["n-samples"]["arc_challenge_local"]["effective"] = LIMIT - 1

    _edit_results(folder, count)


def other_few_shot(folder: Path) -> None:
    def shots(data: dict[str, Any]) -> None:
        data["n-shot"]["arc_challenge_local"] = 1
        data["configs"]["arc_challenge_local"]["num_fewshot"] = 1

    _edit_results(folder, shots)


def other_generation_settings(folder: Path) -> None:
    def longer(data: dict[str, Any]) -> None:
        data["configs"]["gsm8k_local"]["generation_kwargs"]["max_gen_toks"] = 64

    _edit_results(folder, longer)


def duplicate_document(folder: Path) -> None:
    _edit_lines(folder, "arc_challenge_local", lambda lines: [*lines, lines[0]])


def broken_line(folder: Path) -> None:
    _edit_lines(folder, "arc_challenge_local", lambda lines: [*lines[:2], lines[2][:40] + "\n", *lines[3:]])


def cut_short(folder: Path) -> None:
    _edit_lines(folder, "arc_challenge_local", lambda lines: lines[:-1])


def edited_metric(folder: Path) -> None:
    def flip(lines: list[str]) -> list[str]:
        first = json.loads(lines[0])
        first["acc"] = 1.0 - first["acc"]
        return [json.dumps(first) + "\n", *lines[1:]]

    _edit_lines(folder, "arc_challenge_local", flip)


def two_results_files(folder: Path) -> None:
    shutil.copy(_results_file(folder), folder / "results_2099-01-01T00-00-00.000000.json")


def not_lm_eval_results(folder: Path) -> None:
    _results_file(folder).write_text('{"schema": "evalsuite.results/1", "run": "x"}', encoding="utf-8")


def unchanged(folder: Path) -> None:
    pass


BAD_INPUTS = [
    pytest.param(no_results, (), "no lm-eval results file (results_<time>.json)", id="no-results-file"),
    pytest.param(no_samples, (), "lm-eval writes them only with --log_samples", id="no-samples"),
    pytest.param(
        one_task_without_samples, (), "no samples file for task 'gsm8k_local'", id="task-samples-missing"
    ),
    pytest.param(without_a_task, (), "model 'tiny'", id="task-missing-for-one-model"),
    pytest.param(fewer_documents, (), "were evaluated on different documents (20 and 19", id="doc-sets"),
    pytest.param(other_few_shot, (), "different few-shot counts (0 and 1)", id="num-fewshot"),
    pytest.param(
        other_generation_settings,
        (),
        "generation_kwargs.max_gen_toks is 16 for 'stories' and 64 for 'tiny'",
        id="task-config",
    ),
    pytest.param(duplicate_document, (), "a second line for document 0 (filter 'none')", id="duplicate-doc"),
    pytest.param(broken_line, (), ".jsonl:3: not valid JSON", id="not-json"),
    pytest.param(
        cut_short, (), "19 documents, but the results file says lm-eval evaluated 20", id="cut-short"
    ),
    pytest.param(edited_metric, (), "samples give acc 0.", id="metric-differs"),
    pytest.param(two_results_files, (), "2 lm-eval results files", id="two-results-files"),
    pytest.param(not_lm_eval_results, (), "not lm-eval results", id="not-lm-eval"),
    pytest.param(
        unchanged, ("--baseline", "tiyn"), "--baseline 'tiyn': no such model (did you mean", id="baseline"
    ),
    pytest.param(
        unchanged,
        ("--task", "boolq_local"),
        "no task 'boolq_local'; lm-eval evaluated arc_challenge_local",
        id="unknown-task",
    ),
]


@pytest.mark.parametrize(("mutate", "extra", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_and_writes_nothing(
    outputs: tuple[Output, Output],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: Mutation,
    extra: tuple[str, ...],
    message: str,
) -> None:
    base, other = outputs
    copy = tmp_path / "tiny"
    shutil.copytree(other.folder, copy)
    mutate(copy)
    out = tmp_path / "out"
    argv = [
        "import",
        "lm-eval",
        f"stories={base.folder}",
        f"tiny={copy}",
        "--name",
        "x",
        "--output-dir",
        str(out),
    ]
    result = evalsuite(capsys, *argv, *extra)
    assert result.code == 2, result.err
    assert result.err.count("\n") == 1, f"not one line: {result.err!r}"
    assert message in result.err
    assert result.out == ""
    assert not out.exists() or not any(out.iterdir())


def test_task_option_imports_the_tasks_both_have(
    outputs: tuple[Output, Output], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, other = outputs
    copy = tmp_path / "tiny"
    shutil.copytree(other.folder, copy)
    without_a_task(copy)
    argv = ["import", "lm-eval", f"stories={base.folder}", f"tiny={copy}", "--name", "arc"]
    result = evalsuite(capsys, *argv, "--task", "arc_challenge_local", "--output-dir", str(tmp_path / "out"))
    assert result.code == 0, result.err
    run = open_run(tmp_path / "out" / "arc")
    assert set(run.manifest.tasks) == {"arc_challenge_local"}
    assert {r.task for r in run.samples} == {"arc_challenge_local"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import", "lm_eval"], "unknown import format 'lm_eval' (did you mean 'lm-eval'?)"),
        (["import", "lm-eval", "--name", "bad name"], "run.name"),
    ],
)
def test_bad_command_line(
    outputs: tuple[Output, Output],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    base, other = outputs
    full = [*argv[:2], str(base.folder), str(other.folder), *argv[2:]]
    if "--name" not in full:
        full += ["--name", "x"]
    result = evalsuite(capsys, *full, "--output-dir", str(tmp_path / "out"))
    assert result.code == 2
    assert result.err.count("\n") == 1 and message in result.err, result.err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_same_default_names_are_refused(
    outputs: tuple[Output, Output], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = outputs
    argv = [
        "import",
        "lm-eval",
        str(base.folder),
        str(base.folder),
        "--name",
        "x",
        "--output-dir",
        str(tmp_path),
    ]
    result = evalsuite(capsys, *argv)
    assert result.code == 2 and "two models are named 'hf'" in result.err and "NAME=PATH" in result.err
    assert not any(tmp_path.iterdir())
