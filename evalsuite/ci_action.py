"""``python -m evalsuite.ci_action``: evalsuite as one CI step, for GitHub Actions and any other CI.

It runs ``evalsuite run CONFIG`` (``--config``) or ``evalsuite gate RUN_DIR [--policy FILE]``
(``--run-dir``) in a child process of the interpreter that runs it, echoes the child's output, and then
reports what a CI job needs:

- the run directory: ``evalsuite run`` prints ``run directory: PATH`` once it has written one (read
  from that line, never guessed from the config); ``gate`` judges the directory it is given;
- ``$GITHUB_STEP_SUMMARY``: a heading naming the verdict, then the run's summary.md; when evalsuite
  wrote no summary (bad input, a crash), why, with the end of its output;
- ``$GITHUB_OUTPUT``: ``exit-code``, ``verdict`` (pass, fail or error), ``run-dir``, ``report``
  (report.html) and ``junit`` (junit.xml, written when gates are declared), each empty when there is
  none;
- its exit code: evalsuite's own (0 pass, 1 a gate failed, 2 bad input, ...), or 0 with
  ``--exit-zero`` for a CI that decides in a later step (action.yml does).

Without those variables (GitLab CI, a terminal) it prints the outputs as ``name=value`` lines instead,
so the same command serves every CI. action.yml at the repository root runs it; docs/ci.md shows both.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

EXIT_OK, EXIT_GATE_FAILED, EXIT_INPUT_ERROR = 0, 1, 2

#: What each exit code of evalsuite means (evalsuite/cli.py, docs/report-and-gates.md#exit-codes).
MEANINGS = {
    0: "every gate passed",
    1: "a gate failed",
    2: "usage, configuration or input error",
    3: "a backend became unusable mid-run; rerunning resumes",
    4: "nothing measured: every sample of some model and task failed",
    5: "internal error in evalsuite; the log names the file with the traceback",
    130: "interrupted",
}
#: The outputs written to $GITHUB_OUTPUT, in this order (action.yml maps its outputs to them).
OUTPUT_NAMES = ("exit-code", "verdict", "run-dir", "report", "junit")
#: GitHub keeps at most 1 MiB of step summary per step; what is appended stays under it.
STEP_SUMMARY_LIMIT = 1024 * 1024
#: Lines of evalsuite's output shown in the step summary when it wrote no summary.md.
TAIL_LINES = 30
#: The child's console width: wide enough that rich never wraps the ``run directory:`` line (a path
#: is at most 4096 bytes on Linux), and tables in the log stay as wide as their content.
CHILD_COLUMNS = "10000"
#: Leeway for file times: a run directory counts as this invocation's when its manifest.json is no
#: older than the start of evalsuite less this (file systems with coarse or skewed time stamps).
MTIME_SLACK_S = 2.0

RUN_DIR_LINE = re.compile(r"^run directory: (?P<path>.+)$")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
ICONS = {"pass": "✅", "fail": "❌", "error": "⚠️"}

Verdict = Literal["pass", "fail", "error"]


class UsageError(Exception):
    """The options given to this script cannot work together (exit 2, like evalsuite's own)."""


@dataclass(frozen=True)
class Command:
    """The evalsuite command to run: ``mode`` is ``run`` or ``gate``; ``words`` its arguments."""

    mode: Literal["run", "gate"]
    words: tuple[str, ...]
    judged: Path | None = None  # gate: the run directory it judges

    @property
    def display(self) -> str:
        return shlex.join(["evalsuite", *self.words])


@dataclass(frozen=True)
class Finished:
    """What the evalsuite child process left: its exit code (128 + N when signal N killed it), the run
    directory it said it wrote, the last lines of its output, and when it started (time.time())."""

    code: int
    printed_run_dir: Path | None
    tail: tuple[str, ...]
    started: float = 0.0


@dataclass(frozen=True)
class Report:
    """What is reported: the verdict, and the run directory with the files this command wrote."""

    code: int
    run_dir: Path | None
    wrote: bool  # this command wrote the run directory's summary.md, report.html and junit.xml
    note: str = ""  # something the reader should know beyond the verdict

    @property
    def verdict(self) -> Verdict:
        return verdict(self.code)

    def file(self, name: str) -> Path | None:
        """A view this command wrote in the run directory, if it exists."""
        if not self.wrote or self.run_dir is None:
            return None
        path = self.run_dir / name
        return path if path.is_file() else None

    def outputs(self) -> dict[str, str]:
        found = {name: self.file(name) for name in ("report.html", "junit.xml")}
        return {
            "exit-code": str(self.code),
            "verdict": self.verdict,
            "run-dir": "" if self.run_dir is None else str(self.run_dir),
            "report": str(found["report.html"] or ""),
            "junit": str(found["junit.xml"] or ""),
        }


def verdict(code: int) -> Verdict:
    """0 passes and 1 fails (a gate said so); anything else is an error, with no verdict."""
    return "pass" if code == EXIT_OK else "fail" if code == EXIT_GATE_FAILED else "error"


def meaning(code: int) -> str:
    if code in MEANINGS:
        return MEANINGS[code]
    if code > 128:
        try:
            return f"killed by {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    return "an exit code evalsuite does not use"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evalsuite.ci_action",
        description="Run evalsuite as a CI step: evalsuite run CONFIG, or evalsuite gate RUN_DIR; report "
        "the verdict to $GITHUB_STEP_SUMMARY and $GITHUB_OUTPUT (else print it); exit with evalsuite's "
        "exit code.",
        epilog="An empty value counts as not given, so a CI template can pass every option. See docs/ci.md.",
    )
    parser.add_argument(
        "--config", default="", metavar="MODEL_YAML", help="evaluate: evalsuite run MODEL_YAML"
    )
    parser.add_argument(
        "--run-dir", default="", metavar="RUN_DIR", help="re-gate a finished run: evalsuite gate RUN_DIR"
    )
    parser.add_argument(
        "--policy",
        default="",
        metavar="FILE",
        help="with --run-dir: the gate policy (else the run's own gates)",
    )
    parser.add_argument(
        "--data-dir",
        default="",
        metavar="DIR",
        help="with --config: the data folder (evalsuite run --data-dir)",
    )
    parser.add_argument(
        "--args",
        default="",
        dest="extra",
        metavar="STRING",
        help="more evalsuite arguments in one string, split as a shell would; write it with '=' "
        "(--args='--name pr-12 --no-answer-cache')",
    )
    parser.add_argument(
        "--exit-zero",
        action="store_true",
        help="exit 0 once everything is reported, whatever evalsuite's exit code (which is in the outputs): "
        "for a CI whose later step turns it into the job's result",
    )
    return parser


def evalsuite_command(args: argparse.Namespace) -> Command:
    """The evalsuite command the options ask for; UsageError when they do not fit together."""
    try:
        extra = shlex.split(args.extra)
    except ValueError as error:
        raise UsageError(f"--args {args.extra!r}: {error}") from None
    if args.config and args.run_dir:
        raise UsageError("give --config (evaluate with evalsuite run) or --run-dir (re-gate), not both")
    if args.config:
        if args.policy:
            raise UsageError(
                "--policy goes with --run-dir (evalsuite gate); a run applies the gates: of its config"
            )
        words = ["run", args.config]
        if args.data_dir:
            words += ["--data-dir", args.data_dir]
        return Command("run", (*words, *extra))
    if args.run_dir:
        if args.data_dir:
            raise UsageError("--data-dir goes with --config (evalsuite run); gating a run reads no data")
        words = ["gate", args.run_dir]
        if args.policy:
            words += ["--policy", args.policy]
        return Command("gate", (*words, *extra), judged=Path(args.run_dir).resolve())
    raise UsageError("give --config MODEL_YAML (evaluate) or --run-dir RUN_DIR (re-gate a finished run)")


def run_evalsuite(command: Command, environ: Mapping[str, str], github: bool) -> Finished:
    """Run evalsuite with this interpreter, echo its output (stderr merged into stdout) as it comes,
    and keep the ``run directory:`` line and the last lines. On GitHub, workflow commands in the
    echoed output (``::set-output``, ``::add-mask::``: text a config or model could put there) are
    switched off while it is echoed."""
    env = {
        **environ,
        "COLUMNS": CHILD_COLUMNS,
        "TTY_COMPATIBLE": "0",  # a CI log: one line per unit, no live progress bars or colours
        "PYTHONIOENCODING": "utf-8",
    }
    argv = [sys.executable, "-m", "evalsuite", *command.words]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    printed: Path | None = None
    token = uuid.uuid4().hex if github else None
    started = time.time()
    if token:
        print(f"::stop-commands::{token}", flush=True)
    try:
        with subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            encoding="utf-8",
            errors="replace",
        ) as child:
            assert child.stdout is not None
            try:
                for line in child.stdout:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    text = ANSI_ESCAPE.sub("", line.rstrip("\n")).rsplit("\r", 1)[-1]
                    tail.append(text)
                    if found := RUN_DIR_LINE.match(text):
                        printed = Path(found["path"])
            except KeyboardInterrupt:  # the child got the same signal and stops itself (exit 130)
                pass
            code = child.wait()
    finally:
        if token:
            print(f"::{token}::", flush=True)
    return Finished(128 - code if code < 0 else code, printed, tuple(tail), started)


def report_of(command: Command, finished: Finished) -> Report:
    """Which run directory the result belongs to, and whether this command wrote its views."""
    if command.mode == "gate":
        judged = command.judged if command.judged is not None and command.judged.is_dir() else None
        # gate rewrites the views only when it reaches a verdict; else they are an earlier verdict's
        return Report(finished.code, judged, wrote=finished.code in (EXIT_OK, EXIT_GATE_FAILED))
    printed = finished.printed_run_dir
    if printed is not None and written_since(printed, finished.started):
        return Report(finished.code, printed.resolve(), wrote=True)
    note = ""
    if printed is not None:  # a path mangled on its way to the log, or an old folder: not this run's
        note = f"evalsuite printed 'run directory: {printed}', which holds no run written just now"
    elif finished.code in (EXIT_OK, EXIT_GATE_FAILED, 4):  # codes evalsuite run gives after writing one
        note = f"evalsuite exited {finished.code} but printed no 'run directory: PATH' line"
    if note:
        note += ", so no run directory is reported"
    return Report(finished.code, None, wrote=False, note=note)


def written_since(run_dir: Path, started: float) -> bool:
    """Whether ``run_dir`` holds a run written since ``started``: its manifest.json is that recent (a
    run directory is renamed into place whole once the run completes, manifest included)."""
    try:
        return (run_dir / "manifest.json").stat().st_mtime >= started - MTIME_SLACK_S
    except OSError:
        return False


def code_span(text: str) -> str:
    """``text`` as Markdown inline code, whatever backticks it holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def code_block(lines: Sequence[str]) -> str:
    """Lines as a fenced Markdown block, with a fence longer than any backtick run inside."""
    text = "\n".join(lines)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def heading(command: Command, report: Report) -> str:
    code = report.code
    lines = [
        f"## evalsuite: {ICONS[report.verdict]} {report.verdict} (exit {code}: {meaning(code)})",
        "",
        code_span(command.display)
        + ("" if report.run_dir is None else f" · run directory {code_span(str(report.run_dir))}"),
        "",
    ]
    if report.note:
        lines += [f"> {report.note}", ""]
    return "\n".join(lines) + "\n"


def step_summary(
    command: Command, report: Report, tail: Sequence[str], limit: int = STEP_SUMMARY_LIMIT
) -> str:
    """The step summary: the heading, then summary.md as evalsuite wrote it (cut at a line to stay
    under ``limit`` bytes), or why there is none with the end of evalsuite's output."""
    head = heading(command, report)
    summary = report.file("summary.md")
    if summary is None:
        if command.mode == "run":
            why = "evalsuite wrote no run directory, so there is no summary.md."
        else:
            why = (
                "evalsuite did not judge the run directory, so its summary.md (if any) is an earlier "
                "verdict's and is not shown."
            )
        shown = [line[-2000:] for line in tail] or ["(no output)"]
        return f"{head}{why} The end of its output:\n\n{code_block(shown)}\n"
    text = summary.read_text(encoding="utf-8", errors="replace")
    room = limit - len(head.encode()) - 1024  # the note below fits in what is kept back
    data = text.encode()
    if len(data) <= room:
        return head + text + ("" if text.endswith("\n") else "\n")
    kept = data[:room].decode(errors="ignore").rsplit("\n", 1)[0]
    note = (
        f"\n\n> summary.md is {len(data):,} bytes, more than a step summary holds ({limit:,}); the whole "
        f"file is {code_span(str(summary))} in the run directory.\n"
    )
    return head + kept + note


def usage_summary(report: Report, error: str) -> str:
    """The step summary when this script's own options were refused and evalsuite did not run."""
    return (
        f"## evalsuite: {ICONS[report.verdict]} {report.verdict} (exit {report.code}: {meaning(report.code)})"
        f"\n\nevalsuite was not run: the options of `python -m evalsuite.ci_action` do not fit together."
        f"\n\n{code_block([f'error: {error}'])}\n"
    )


def github_output(outputs: Mapping[str, str]) -> str:
    """``outputs`` in $GITHUB_OUTPUT's format: ``name=value``, or a delimited block for a value with a
    line break (the delimiter is random and checked not to occur in the value)."""
    parts = []
    for name, value in outputs.items():
        if "\n" not in value and "\r" not in value:
            parts.append(f"{name}={value}\n")
            continue
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
        parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(parts)


def publish(report: Report, summary: str, environ: Mapping[str, str]) -> None:
    """Append ``summary`` to the step summary and write the outputs where GitHub reads them; print
    what has nowhere to go (outside GitHub Actions)."""
    print(f"evalsuite: {report.verdict} (exit {report.code}: {meaning(report.code)})", flush=True)
    if report.note:
        print(f"note: {report.note}", file=sys.stderr, flush=True)
    summary_file = environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as handle:
            handle.write(summary)
    else:
        shown = report.file("summary.md")
        where = f"the run's is {shown}" if shown else "evalsuite wrote no summary.md"
        print(f"(GITHUB_STEP_SUMMARY is not set, so no step summary was written; {where})")
    text = github_output(report.outputs())
    output_file = environ.get("GITHUB_OUTPUT")
    if output_file:
        with open(output_file, "a", encoding="utf-8") as handle:
            handle.write(text)
    else:
        print("(GITHUB_OUTPUT is not set; the outputs are:)")
        print(text, end="", flush=True)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run, report, and return evalsuite's exit code (0 with --exit-zero). ``environ`` is where the
    GITHUB_* variables are read from and what the child process gets (default: os.environ)."""
    args = build_parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    try:
        command = evalsuite_command(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        refused = Report(EXIT_INPUT_ERROR, None, wrote=False)
        publish(refused, usage_summary(refused, str(error)), env)
        return EXIT_OK if args.exit_zero else EXIT_INPUT_ERROR
    print(f"$ {command.display}", flush=True)
    finished = run_evalsuite(command, env, github=env.get("GITHUB_ACTIONS") == "true")
    report = report_of(command, finished)
    publish(report, step_summary(command, report, finished.tail), env)
    return EXIT_OK if args.exit_zero else report.code


if __name__ == "__main__":
    sys.exit(main())
