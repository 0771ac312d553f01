"""``python -m evalsuite.ci_action`` and the composite action around it (action.yml).

The script runs against real evalsuite runs of replay models (recorded answers: no model to download)
in a simulated GitHub Actions environment: $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY, $GITHUB_WORKSPACE and
$RUNNER_TEMP are files and folders in tmp_path, as the runner makes them. action.yml is checked as
data (every input and output it uses is declared and written) and its shell steps are run with bash
as the runner runs them, with the inputs put in by the rules of GitHub's expressions, so the command
line it passes is the one the script's parser reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import ci_action
from evalsuite.ci_action import OUTPUT_NAMES, Report, build_parser, evalsuite_command, github_output
from tests.test_compare import BASE, WORSE, replay_rows, scripted_run

REPO = Path(__file__).resolve().parents[1]
ACTION = REPO / "action.yml"
PASSING = {"rules": [{"kind": "non_inferiority", "margin": 0.45, "name": "no big regression"}]}
FAILING = {
    "rules": [{"kind": "non_inferiority", "variants": ["worse"], "margin": 0.02, "name": "no regression"}]
}
# longer than 80 columns and with spaces: rich would wrap the "run directory:" line at a terminal's width
LONG_FOLDER = "evaluation runs in a folder whose name is long enough to wrap at eighty columns"


# --- the GitHub Actions side, simulated ---


def parse_github_output(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        block = re.fullmatch(r"([A-Za-z0-9_-]+)<<(.+)", line)
        if block:
            value = []
            for inner in lines:
                if inner == block[2]:
                    break
                value.append(inner)
            else:
                raise AssertionError(f"unterminated block for {block[1]!r}")
            outputs[block[1]] = "\n".join(value)
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z0-9_-]+", name), f"not an output line: {line!r}"
        outputs[name] = value
    return outputs


@dataclass(frozen=True)
class Github:
    """The files and folders the runner gives a step."""

    workspace: Path
    output: Path
    summary: Path
    temp: Path

    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "RUNNER_TEMP": str(self.temp),
        }

    def outputs(self) -> dict[str, str]:
        return parse_github_output(self.output.read_text(encoding="utf-8"))

    def step_summary(self) -> str:
        return self.summary.read_text(encoding="utf-8")


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Github:
    temp = tmp_path / "runner_temp"
    gh = Github(tmp_path / "workspace", temp / "github_output", temp / "step_summary", temp)
    gh.workspace.mkdir()
    temp.mkdir()
    gh.output.touch()
    gh.summary.touch()
    monkeypatch.chdir(gh.workspace)  # a step starts in the workspace
    return gh


@dataclass(frozen=True)
class Called:
    code: int
    out: str
    err: str


def call(capsys: pytest.CaptureFixture[str], environ: Mapping[str, str], *argv: str) -> Called:
    code = ci_action.main(list(argv), environ)
    captured = capsys.readouterr()
    return Called(code, captured.out, captured.err)


def without_github() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}


# --- real runs of replay models ---


@pytest.fixture(scope="module")
def answers(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base answers 30 of quickstart_mc's 40 right; worse loses 8 of those and gains 1."""
    folder = tmp_path_factory.mktemp("answers")
    for name, correct in {"base": BASE, "worse": WORSE}.items():
        rows = replay_rows(data_dir, correct)
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "none.jsonl").write_text("", encoding="utf-8")
    return folder


def write_config(
    workspace: Path,
    answers: Path,
    gates: dict[str, Any] | None,
    *,
    task: str = "quickstart_mc",
    **models: str,
) -> Path:
    """model.yaml in the workspace: replay models (model name = answers file), run 'pr-check' in
    LONG_FOLDER; base is the baseline of the others."""
    entries = [
        {"name": name, "backend": "replay", "path": str(answers / f"{file}.jsonl")}
        | ({} if name == "base" else {"baseline": "base"})
        for name, file in (models or {"base": "base", "worse": "worse"}).items()
    ]
    config: dict[str, Any] = {
        "run": {"name": "pr-check", "output_dir": LONG_FOLDER},
        "stats": {"resamples": 500},
        "models": entries,
        "tasks": [task],
    }
    if gates is not None:
        config["gates"] = gates
    path = workspace / "model.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def junit_cases(path: Path) -> list[tuple[str, bool]]:
    """(test case name, failed) for each test case of a junit.xml."""
    root = ET.parse(path).getroot()
    return [(case.attrib["name"], case.find("failure") is not None) for case in root.iter("testcase")]


def assert_reported_run(github: Github, run_dir: Path, code: int, verdict: str) -> dict[str, str]:
    """The outputs name the run directory and its files; the step summary is summary.md under a
    heading with the verdict."""
    outputs = github.outputs()
    assert list(outputs) == list(OUTPUT_NAMES)
    assert outputs["exit-code"] == str(code) and outputs["verdict"] == verdict
    assert Path(outputs["run-dir"]) == run_dir and run_dir.is_dir()
    assert Path(outputs["report"]) == run_dir / "report.html" and (run_dir / "report.html").is_file()
    summary = github.step_summary()
    assert summary.startswith(f"## evalsuite: {ci_action.ICONS[verdict]} {verdict} (exit {code}: ")
    assert (run_dir / "summary.md").read_text(encoding="utf-8") in summary
    return outputs


def test_a_run_whose_gates_pass_exits_0_and_reports_its_run_directory(
    github: Github, answers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(github.workspace, answers, PASSING)
    result = call(capsys, github.environ(), "--config", "model.yaml")
    assert result.code == 0, result.out + result.err
    run_dir = github.workspace / LONG_FOLDER / "pr-check"
    assert len(f"run directory: {run_dir}") > 80 and " " in str(run_dir)
    outputs = assert_reported_run(github, run_dir, 0, "pass")
    assert "**Verdict: pass**" in github.step_summary()
    assert "`evalsuite run model.yaml`" in github.step_summary()
    assert Path(outputs["junit"]) == run_dir / "junit.xml"
    assert junit_cases(run_dir / "junit.xml") == [("worse vs base on quickstart_mc (acc)", False)]
    # evalsuite's own output is echoed, with GitHub's workflow commands off while it is
    stop = re.search(r"^::stop-commands::([0-9a-f]{32})$", result.out, re.M)
    assert stop is not None
    echoed = result.out[stop.end() : result.out.index(f"::{stop[1]}::")]
    assert f"run directory: {run_dir}\n" in echoed and "gates: PASS" in echoed
    assert "evalsuite: pass (exit 0: every gate passed)" in result.out


def test_a_run_whose_gate_fails_exits_1_with_the_failed_check_everywhere(
    github: Github, answers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(github.workspace, answers, FAILING)
    result = call(capsys, github.environ(), "--config=model.yaml", "--args=--name gated --no-answer-cache")
    assert result.code == 1, result.out + result.err
    run_dir = github.workspace / LONG_FOLDER / "gated"  # --name from --args
    outputs = assert_reported_run(github, run_dir, 1, "fail")
    summary = github.step_summary()
    assert "(exit 1: a gate failed)" in summary and "**Verdict: fail**" in summary
    assert "| ❌ fail | no regression |" in summary
    assert "`evalsuite run model.yaml --name gated --no-answer-cache`" in summary
    assert junit_cases(Path(outputs["junit"])) == [("worse vs base on quickstart_mc (acc)", True)]


def test_a_bad_config_exits_2_and_an_earlier_run_of_that_name_is_not_reported(
    github: Github, answers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(github.workspace, answers, PASSING, task="quickstart_mq")
    stale = github.workspace / LONG_FOLDER / "pr-check"  # what an earlier run (or a cache) left
    stale.mkdir(parents=True)
    (stale / "summary.md").write_text("# an earlier run's summary\n", encoding="utf-8")
    result = call(capsys, github.environ(), "--config", "model.yaml")
    assert result.code == 2
    assert github.outputs() == {
        "exit-code": "2",
        "verdict": "error",
        "run-dir": "",
        "report": "",
        "junit": "",
    }
    summary = github.step_summary()
    assert summary.startswith("## evalsuite: ⚠️ error (exit 2: usage, configuration or input error)")
    assert "evalsuite wrote no run directory, so there is no summary.md" in summary
    block = re.search(r"```text\n(.*)\n```", summary, re.S)
    assert block is not None and "quickstart_mq" in block[1] and "unknown task" in block[1]
    assert "earlier run" not in summary


def test_a_run_that_measured_nothing_is_an_error_with_its_run_directory(
    github: Github, answers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(github.workspace, answers, None, base="none")  # no recorded answer: every sample fails
    result = call(capsys, github.environ(), "--config", "model.yaml")
    assert result.code == 4
    outputs = assert_reported_run(github, github.workspace / LONG_FOLDER / "pr-check", 4, "error")
    assert outputs["junit"] == ""  # no gates, no junit.xml
    assert "(exit 4: nothing measured" in github.step_summary()


def test_a_killed_evalsuite_is_an_error_with_the_signal_named(
    github: Github, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dying = tmp_path / "dying"
    dying.write_text("#!/bin/sh\necho 'loading the model'\nkill -9 $$\n", encoding="utf-8")
    dying.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(dying))  # what ci_action runs evalsuite with
    (github.workspace / "model.yaml").touch()
    result = call(capsys, github.environ(), "--config", "model.yaml")
    assert result.code == 137
    assert github.outputs()["verdict"] == "error" and github.outputs()["run-dir"] == ""
    summary = github.step_summary()
    assert "(exit 137: killed by SIGKILL)" in summary and "loading the model" in summary


# --- gate mode: an existing run directory ---


@pytest.fixture(scope="module")
def finished(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run without gates: base and worse on quickstart_mc."""
    folder = tmp_path_factory.mktemp("finished")
    return scripted_run(folder, data_dir, {"base": BASE, "worse": WORSE}, name="finished")


@pytest.fixture
def run_copy(finished: Path, github: Github) -> Path:
    """A copy in the workspace (gating rewrites the views), with the two policies beside it."""
    copy = github.workspace / "runs" / "release"
    shutil.copytree(finished, copy)
    for name, policy in {"pass": PASSING, "fail": FAILING}.items():
        (github.workspace / f"{name}.yaml").write_text(yaml.safe_dump({"gates": policy}), encoding="utf-8")
    return copy


def test_gate_mode_regates_a_finished_run_with_a_policy(
    github: Github, run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = call(capsys, github.environ(), "--run-dir", "runs/release", "--policy", "pass.yaml")
    assert result.code == 0, result.out + result.err
    outputs = assert_reported_run(github, run_copy, 0, "pass")
    assert junit_cases(Path(outputs["junit"])) == [("worse vs base on quickstart_mc (acc)", False)]
    assert "`evalsuite gate runs/release --policy pass.yaml`" in github.step_summary()

    github.output.write_text("", encoding="utf-8")  # a second step: new files
    github.summary.write_text("", encoding="utf-8")
    result = call(capsys, github.environ(), "--run-dir=runs/release", "--policy=fail.yaml")
    assert result.code == 1
    outputs = assert_reported_run(github, run_copy, 1, "fail")
    assert "| ❌ fail | no regression |" in github.step_summary()
    assert junit_cases(Path(outputs["junit"])) == [("worse vs base on quickstart_mc (acc)", True)]


def test_gate_mode_on_an_edited_run_reports_no_verdict_and_not_its_old_summary(
    github: Github, run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = run_copy / "results.json"
    results.write_text(results.read_text(encoding="utf-8").replace('"run"', '"run" ', 1), encoding="utf-8")
    result = call(capsys, github.environ(), "--run-dir", "runs/release", "--policy", "pass.yaml")
    assert result.code == 2
    # the judged directory is named (worth uploading to see what changed), its old views are not
    assert github.outputs() == {
        "exit-code": "2",
        "verdict": "error",
        "run-dir": str(run_copy),
        "report": "",
        "junit": "",
    }
    summary = github.step_summary()
    assert "evalsuite did not judge the run directory" in summary
    assert "results.json: changed since evalsuite wrote it" in summary
    assert (run_copy / "summary.md").read_text(encoding="utf-8") not in summary


def test_outside_github_the_outputs_are_printed_and_the_exit_code_passed_through(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = call(capsys, without_github(), "--run-dir", "runs/release", "--policy", "fail.yaml")
    assert result.code == 1
    assert "::stop-commands::" not in result.out  # workflow commands are GitHub's alone
    printed = result.out[result.out.index("(GITHUB_OUTPUT is not set; the outputs are:)\n") :].split("\n", 1)[
        1
    ]
    assert parse_github_output(printed) == {
        "exit-code": "1",
        "verdict": "fail",
        "run-dir": str(run_copy),
        "report": str(run_copy / "report.html"),
        "junit": str(run_copy / "junit.xml"),
    }
    assert f"no step summary was written; the run's is {run_copy / 'summary.md'}" in result.out


def test_exit_zero_leaves_the_verdict_to_a_later_step(
    github: Github, run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = call(
        capsys, github.environ(), "--run-dir", "runs/release", "--policy", "fail.yaml", "--exit-zero"
    )
    assert result.code == 0
    assert github.outputs()["exit-code"] == "1" and github.outputs()["verdict"] == "fail"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--config", "m.yaml", "--run-dir", "runs/x"],
            "give --config (evaluate with evalsuite run) or --run-dir",
        ),
        ([], "give --config MODEL_YAML (evaluate) or --run-dir RUN_DIR"),
        (["--config=", "--run-dir="], "give --config MODEL_YAML (evaluate) or --run-dir RUN_DIR"),
        (["--config", "m.yaml", "--policy", "p.yaml"], "--policy goes with --run-dir"),
        (["--run-dir", "runs/x", "--data-dir", "data"], "--data-dir goes with --config"),
        (["--config", "m.yaml", "--args=--name 'pr 1"], "No closing quotation"),
    ],
    ids=["both", "neither", "both-empty", "policy-with-config", "data-dir-with-run-dir", "unclosed-quote"],
)
def test_options_that_do_not_fit_are_exit_2_and_run_nothing(
    argv: list[str],
    message: str,
    github: Github,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("evalsuite was run")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    result = call(capsys, github.environ(), *argv)
    assert result.code == 2
    assert result.err.count("\n") == 1 and message in result.err
    assert github.outputs() == {
        "exit-code": "2",
        "verdict": "error",
        "run-dir": "",
        "report": "",
        "junit": "",
    }
    assert "evalsuite was not run" in github.step_summary() and message in github.step_summary()


# --- the pieces ---


def test_only_a_run_directory_written_by_this_run_is_reported(tmp_path: Path) -> None:
    """The printed path must hold a run written since evalsuite started: not an old folder that a
    path mangled on its way to the log (or a reused name) happens to point at."""
    run_dir = tmp_path / "runs" / "pr"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text("{}", encoding="utf-8")
    command = ci_action.Command("run", ("run", "model.yaml"))
    now = (run_dir / "manifest.json").stat().st_mtime
    fresh = ci_action.report_of(command, ci_action.Finished(0, run_dir, (), started=now - 1))
    assert fresh.run_dir == run_dir and fresh.wrote and fresh.note == ""
    os.utime(run_dir / "manifest.json", (now - 3600, now - 3600))  # written an hour before this run
    stale = ci_action.report_of(command, ci_action.Finished(0, run_dir, (), started=now))
    assert stale.run_dir is None and not stale.wrote
    assert stale.note == (
        f"evalsuite printed 'run directory: {run_dir}', which holds no run written just now, "
        "so no run directory is reported"
    )
    assert stale.outputs()["run-dir"] == "" and stale.outputs()["report"] == ""
    silent = ci_action.report_of(command, ci_action.Finished(1, None, (), started=now))
    assert (
        silent.note
        == "evalsuite exited 1 but printed no 'run directory: PATH' line, so no run directory is reported"
    )
    assert ci_action.report_of(command, ci_action.Finished(2, None, (), started=now)).note == ""


def test_an_output_with_a_line_break_is_a_delimited_block() -> None:
    values = {"exit-code": "0", "run-dir": "/runs/two\nlines", "report": "x<<y", "junit": ""}
    text = github_output(values)
    assert "exit-code=0\n" in text and "junit=\n" in text
    assert re.search(r"^run-dir<<(ghadelimiter_[0-9a-f-]{36})\n/runs/two\nlines\n\1\n", text, re.M)
    assert parse_github_output(text) == values


def test_a_summary_larger_than_a_step_summary_holds_is_cut_at_a_line(tmp_path: Path) -> None:
    lines = [f"| row {i} | {'x' * 50} |" for i in range(400)]
    (tmp_path / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = ci_action.Command("gate", ("gate", str(tmp_path)), judged=tmp_path)
    text = ci_action.step_summary(command, Report(1, tmp_path, wrote=True), (), limit=8000)
    assert len(text.encode()) <= 8000
    body, note = text.split("\n\n> summary.md is ")
    kept = body.split("\n")[4:]  # after the heading, a blank line, the command and a blank line
    assert 50 < len(kept) < 400 and kept == lines[: len(kept)]
    assert note.startswith(f"{len(chr(10).join(lines)) + 1:,} bytes, more than a step summary holds (8,000)")
    # under the limit: the file as it is
    whole = ci_action.step_summary(command, Report(1, tmp_path, wrote=True), ())
    assert whole.endswith("\n".join(lines) + "\n")


def test_markdown_quoting_holds_any_backticks() -> None:
    assert ci_action.code_span("run.yaml") == "`run.yaml`"
    assert ci_action.code_span("a `b` c") == "`` a `b` c ``"
    block = ci_action.code_block(["error: ```not a fence```"])
    assert block.startswith("````text\n") and block.endswith("\n````")


# --- action.yml ---


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    document = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def steps(action: dict[str, Any]) -> list[dict[str, Any]]:
    return list(action["runs"]["steps"])


def step(action: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [s for s in steps(action) if s.get("name") == name]
    return found


def strings(value: Any) -> Iterator[str]:
    """Every string in a YAML document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_action_yml_uses_only_what_it_declares_and_the_script_writes(action: dict[str, Any]) -> None:
    inputs = set(action["inputs"])
    runs = action["runs"]
    assert runs["using"] == "composite"
    expressions = [e for s in strings(runs) for e in re.findall(r"\$\{\{(.*?)\}\}", s)]
    expressions += [s["if"] for s in steps(action) if "if" in s]  # an if: is an expression without ${{ }}
    used = {name for e in expressions for name in re.findall(r"\binputs\.([A-Za-z0-9_-]+)", e)}
    assert used == inputs  # every input used is declared, and every declared input is used
    ids = [s.get("id") for s in steps(action)]
    for i, s in enumerate(steps(action)):
        for e in [*re.findall(r"\$\{\{(.*?)\}\}", "\n".join(strings(s))), s.get("if", "")]:
            for step_id, output in re.findall(r"\bsteps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", e):
                assert step_id in ids[:i], f"step {s['name']!r} reads step {step_id!r} before it runs"
                assert output in OUTPUT_NAMES, f"step {s['name']!r} reads {output!r}, which no step writes"
            assert set(re.findall(r"\bgithub\.([A-Za-z0-9_]+)", e)) <= {"action_path"}
    assert list(action["outputs"]) == list(OUTPUT_NAMES)
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.evalsuite.outputs.{name} }}}}"
        assert output["description"]
    for name, spec in action["inputs"].items():
        assert spec["description"] and isinstance(spec.get("default"), str), name  # '' not null


def test_action_yml_steps_are_runnable_as_written(action: dict[str, Any]) -> None:
    uses = []
    for s in steps(action):
        assert s.get("name"), s
        if "run" in s:
            assert s.get("shell") == "bash", f"{s['name']}: a composite run step needs shell:"
            # inputs reach the shell through env: only, never spliced into the script
            assert "${{" not in s["run"], s["name"]
        else:
            assert re.fullmatch(r"[a-z0-9-]+/[a-z0-9-]+@v\d+", s["uses"]), s["uses"]
            uses.append(s["uses"])
    assert uses == [
        "actions/setup-python@v5",
        "actions/upload-artifact@v4",
        "mikepenz/action-junit-report@v4",
    ]
    # the reports and the verdict come also when a gate failed or an earlier step broke
    for name in ("Upload the run directory", "Publish the gate checks", "Verdict"):
        assert step(action, name)["if"].startswith("always()"), name
    assert steps(action)[-1]["name"] == "Verdict"
    assert step(action, "Run evalsuite")["id"] == "evalsuite"
    upload = step(action, "Upload the run directory")["with"]
    assert upload["path"] == "${{ steps.evalsuite.outputs.run-dir }}"


# Running the shell steps as the runner does: `bash --noprofile --norc -eo pipefail FILE`, with the
# step's env: evaluated. `python` on PATH is a shim that logs its arguments (and runs the real Python
# where asked), so what the steps pass is what the tests read.

SHIM = """#!{python}
import json, os, sys
with open(os.environ["SHIM_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if os.environ.get("SHIM_REAL") == "1":
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
sys.exit(int(os.environ.get("SHIM_RC", "0")))
"""


@dataclass(frozen=True)
class Shell:
    code: int
    out: str
    calls: list[list[str]]  # the arguments of each `python` the step ran


def evaluate(value: Any, context: Mapping[str, Any]) -> str:
    """An env: value: a literal, or one ``${{ a.b.c }}`` looked up in ``context``."""
    text = str(value)
    whole = re.fullmatch(r"\$\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}", text)
    if whole is None:
        assert "${{" not in text, f"not a single lookup: {text!r}"
        return text
    found: Any = context
    for part in whole[1].split("."):
        found = found[part]
    return str(found)


def run_step(
    action: dict[str, Any],
    name: str,
    tmp_path: Path,
    given: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Shell:
    """Run one `run:` step of action.yml with bash, its inputs ``given`` (else their defaults)."""
    bin_dir = tmp_path / "shim-bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "python"
    shim.write_text(SHIM.format(python=sys.executable), encoding="utf-8")
    shim.chmod(0o755)
    log = tmp_path / "shim.log"
    log.write_text("", encoding="utf-8")
    inputs = {key: spec["default"] for key, spec in action["inputs"].items()}
    unknown = set(given or {}) - set(inputs)
    assert not unknown, f"not inputs of action.yml: {unknown}"
    inputs.update(given or {})
    context = {
        "inputs": inputs,
        "steps": {"evalsuite": {"outputs": dict(outputs or {})}},
        "github": {"action_path": str(REPO)},
    }
    s = step(action, name)
    env = {
        **os.environ,
        **(extra_env or {}),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SHIM_LOG": str(log),
        **{key: evaluate(value, context) for key, value in s.get("env", {}).items()},
    }
    script = tmp_path / "step.sh"
    script.write_text(s["run"], encoding="utf-8")
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        cwd=Path.cwd(),
        capture_output=True,
        text=True,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return Shell(done.returncode, done.stdout + done.stderr, calls)


@pytest.mark.parametrize(
    ("given", "config", "run_dir", "words"),
    [
        (
            {"config": "evals/model.yaml", "data-dir": "data dir", "args": "--name 'pr 7' --no-answer-cache"},
            "evals/model.yaml",
            "",
            ("run", "evals/model.yaml", "--data-dir", "data dir", "--name", "pr 7", "--no-answer-cache"),
        ),
        (
            {"run-dir": "runs/v1.4", "policy": "release gates.yaml", "args": "--accept-edits"},
            "",
            "runs/v1.4",
            ("gate", "runs/v1.4", "--policy", "release gates.yaml", "--accept-edits"),
        ),
    ],
    ids=["run", "gate"],
)
def test_the_run_step_passes_the_inputs_to_the_scripts_real_command_line(
    action: dict[str, Any],
    tmp_path: Path,
    given: dict[str, str],
    config: str,
    run_dir: str,
    words: tuple[str, ...],
) -> None:
    shell = run_step(action, "Run evalsuite", tmp_path, given)
    assert shell.code == 0, shell.out
    ((module_flag, module, *argv),) = shell.calls
    assert (module_flag, module) == ("-m", "evalsuite.ci_action")
    args = build_parser().parse_args(argv)  # exits (a failed test) on anything the parser lacks
    assert (args.config, args.run_dir, args.exit_zero) == (config, run_dir, True)
    assert evalsuite_command(args).words == words


def test_the_action_run_and_verdict_steps_end_to_end(
    action: dict[str, Any], github: Github, run_copy: Path, tmp_path: Path
) -> None:
    """The run step runs the real script (real Python behind the shim) on a finished run; the verdict
    step then fails the job with exit 1, named as a gate failure; with a passing policy it passes."""
    for policy, code, line in (
        ("fail.yaml", 1, "::error title=evalsuite: a gate failed::verdict fail (exit 1)"),
        ("pass.yaml", 0, "evalsuite: pass (exit 0): every gate passed"),
    ):
        github.output.write_text("", encoding="utf-8")
        given = {"run-dir": "runs/release", "policy": policy}
        shell = run_step(
            action, "Run evalsuite", tmp_path, given, extra_env={**github.environ(), "SHIM_REAL": "1"}
        )
        assert shell.code == 0, shell.out  # --exit-zero: the verdict is the last step's
        outputs = github.outputs()
        assert outputs["exit-code"] == str(code) and outputs["run-dir"] == str(run_copy)
        verdict = run_step(action, "Verdict", tmp_path, outputs=outputs)
        assert verdict.code == code and line in verdict.out, verdict.out


@pytest.mark.parametrize(
    ("code", "expected", "title"),
    [
        ("0", 0, ""),
        ("1", 1, "::error title=evalsuite: a gate failed::"),
        ("2", 2, "::error title=evalsuite: bad input::"),
        ("4", 4, "::error title=evalsuite: error::exit 4, no verdict"),
        ("137", 137, "::error title=evalsuite: error::exit 137"),
        ("", 1, "::error title=evalsuite did not run::"),
    ],
)
def test_the_verdict_step_keeps_the_exit_codes_apart(
    action: dict[str, Any], tmp_path: Path, code: str, expected: int, title: str
) -> None:
    verdict = {"0": "pass", "1": "fail", "": ""}.get(code, "error")
    shell = run_step(
        action, "Verdict", tmp_path, outputs={"exit-code": code, "verdict": verdict, "run-dir": ""}
    )
    assert shell.code == expected
    assert title in shell.out if title else "::error" not in shell.out


IMPORT_CHECK = [
    "-c",
    "import importlib.metadata as m, evalsuite.ci_action; print('evalsuite', m.version('evalsuite'))",
]


@pytest.mark.parametrize(
    ("given", "pip"),
    [
        ({}, ["-m", "pip", "install", str(REPO)]),
        (
            {"extras": "quant", "pip-args": "--extra-index-url https://download.pytorch.org/whl/cpu"},
            [
                "-m",
                "pip",
                "install",
                "--extra-index-url",
                "https://download.pytorch.org/whl/cpu",
                f"{REPO}[quant]",
            ],
        ),
        ({"install": "pypi", "evalsuite-version": "0.1.0"}, ["-m", "pip", "install", "evalsuite==0.1.0"]),
        (
            {"install": "pypi", "extras": "quant,llamacpp"},
            ["-m", "pip", "install", "evalsuite[quant,llamacpp]"],
        ),
        ({"install": "none"}, None),
        # split on whitespace and never globbed: '.[quant]' stays as written though a file '.q' exists
        (
            {"install": "-e .[quant] -c constraints.txt"},
            ["-m", "pip", "install", "-e", ".[quant]", "-c", "constraints.txt"],
        ),
    ],
    ids=["action", "action-extras-pip-args", "pypi-version", "pypi-extras", "none", "pip-arguments"],
)
def test_the_install_step(
    action: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    given: dict[str, str],
    pip: list[str] | None,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".q").touch()
    shell = run_step(action, "Install evalsuite", tmp_path, given)
    assert shell.code == 0, shell.out
    assert shell.calls == ([] if pip is None else [pip]) + [IMPORT_CHECK]


@pytest.mark.parametrize(
    ("given", "rc", "message"),
    [
        (
            {"evalsuite-version": "0.1.0"},
            "0",
            "evalsuite-version applies to install: pypi (install is 'action')",
        ),
        (
            {"install": "none", "extras": "quant"},
            "0",
            "extras apply to install: action or pypi (install is 'none')",
        ),
        ({"install": ""}, "0", "install is empty"),
        ({"install": "none"}, "1", "evalsuite (with evalsuite.ci_action) is not importable by"),
    ],
    ids=["version-without-pypi", "extras-with-none", "empty", "not-importable"],
)
def test_the_install_step_refuses_in_one_annotation(
    action: dict[str, Any], tmp_path: Path, given: dict[str, str], rc: str, message: str
) -> None:
    shell = run_step(action, "Install evalsuite", tmp_path, given, extra_env={"SHIM_RC": rc})
    assert shell.code == 2
    assert f"::error title=evalsuite action::{message}" in shell.out
    assert not any(call[:2] == ["-m", "pip"] for call in shell.calls)
