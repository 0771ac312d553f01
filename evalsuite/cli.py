"""Command line: ``evalsuite run | quickstart | compare | gate | report | tasks | import``.

The only module that reads environment variables, prints, or picks exit codes:

0. success: every unit measured, every gate passed;
1. a gate failed, and nothing else: CI reads 1 as "the variant does not ship";
2. usage, configuration or input error (one line; nothing written);
3. a backend became unusable mid-run (a server unreachable after its retries): rerun to resume;
4. nothing was measured for some model and task (every sample failed): no verdict is possible;
5. an internal error (a bug in evalsuite or a library): one line, the traceback saved to a file.

Under ``torchrun`` or ``accelerate launch`` every rank runs this same command; rank 0 alone prints and
writes the run directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from evalsuite.config import (
    DeprecatedKey,
    RunConfig,
    format_validation_error,
    load_config,
    parse_config,
    resolve_paths,
)
from evalsuite.errors import BackendUnavailable, ConfigError, EvalsuiteError
from evalsuite.records import Comparison, MetricResult, ProbeComparison, TaskResult, Verdict

if TYPE_CHECKING:
    from evalsuite import runner as runner_types
    from evalsuite.engine.ranks import Ranks

EXIT_OK, EXIT_INPUT_ERROR, EXIT_UNAVAILABLE = 0, 2, 3  # 1, a failed gate, comes from the verdict
EXIT_NOTHING_MEASURED, EXIT_INTERNAL_ERROR = 4, 5
ENV_DATA_DIR, ENV_CACHE_DIR = "EVALSUITE_DATA_DIR", "EVALSUITE_CACHE_DIR"

console = Console(stderr=True)
out = Console()


class RichProgress:
    """One bar per (model, task) unit, plus notes such as model loading."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.current: TaskID | None = None

    def note(self, message: str) -> None:
        self.progress.console.print(f"[dim]{message}[/dim]")

    def unit_started(self, model: str, task: str, requests: int) -> None:
        self.current = self.progress.add_task(f"{model} · {task}", total=requests)

    def advance(self, requests: int) -> None:
        if self.current is not None:
            self.progress.advance(self.current, requests)

    def unit_finished(self, result: TaskResult) -> None:
        if self.current is not None:
            task = self.progress.tasks[self.current]
            self.progress.update(self.current, completed=task.total)
            if not self.progress.console.is_terminal:  # logs get one line per unit instead of live bars
                elapsed = task.finished_time or task.elapsed or 0.0
                self.progress.console.print(
                    f"{task.description}: {task.total:.0f} requests in {elapsed:.1f}s"
                )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalsuite", description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="evaluate the models of a config on its tasks")
    run.add_argument("config", type=Path, help="model.yaml")
    _run_options(run)
    quick = commands.add_parser(
        "quickstart", help="run the embedded default: SmolLM2-135M and its int8 variant"
    )
    _run_options(quick)
    compare = commands.add_parser(
        "compare", help="paired comparisons of finished runs (or within one run), from their records"
    )
    compare.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="run directories")
    compare.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="BASELINE:VARIANT",
        help="also compare these two models (repeatable); model names that occur in "
        "several runs are written RUN:MODEL",
    )
    compare.add_argument("--all-pairs", action="store_true", help="compare every pair of models")
    compare.add_argument(
        "--margin", type=float, help="non-inferiority margin (else stats.margin of the first run)"
    )
    compare.add_argument("--alpha", type=float, help="significance level (else stats.alpha)")
    compare.add_argument("--adjust", choices=["holm", "bh"], help="which adjusted p-value decides")
    compare.add_argument(
        "--output",
        type=Path,
        help="with several runs: folder for the combined results.json "
        "(default: <first run's parent>/compare-<run>-<run>...)",
    )
    _accept_edits_option(compare)
    gate = commands.add_parser(
        "gate", help="apply a gate policy to a finished run; the exit code is the verdict"
    )
    gate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    gate.add_argument("--policy", type=Path, help="a policy file (else the gates: of the run's model.yaml)")
    _accept_edits_option(gate)
    report = commands.add_parser("report", help="re-render report.html and summary.md of a finished run")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    _accept_edits_option(report)
    tasks = commands.add_parser("tasks", help="list the task files evalsuite finds")
    tasks.add_argument("--task-dir", type=Path, action="append", default=[], help="an extra task folder")
    _import_parser(commands)
    return parser


def _import_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``evalsuite import FORMAT [NAME=]PATH ...`` (docs/import.md)."""
    imported = commands.add_parser(
        "import",
        help="make a run directory from another tool's per-sample output (lm-eval --log_samples, "
        "Inspect logs), loading no model",
    )
    imported.add_argument("format", metavar="FORMAT", help="whose output it is: lm-eval or inspect")
    imported.add_argument(
        "paths",
        nargs="+",
        metavar="[NAME=]PATH",
        help="one model's output each: the folder lm-eval wrote (or its results_<time>.json); or an "
        "Inspect log (.eval, .json), one per model and task; NAME= names the model (else its name in "
        "the output)",
    )
    imported.add_argument("--name", required=True, help="run name, the run directory's name")
    imported.add_argument(
        "--output-dir", type=Path, default=Path("reports"), help="where the run directory goes (./reports)"
    )
    imported.add_argument(
        "--baseline", metavar="NAME", help="the model the others are compared with (else the first PATH's)"
    )
    imported.add_argument(
        "--task",
        action="append",
        default=[],
        dest="tasks",
        metavar="TASK",
        help="import only this task (repeatable; else every task of the first model)",
    )
    imported.add_argument(
        "--config",
        type=Path,
        help="a model.yaml whose stats:, gates:, run.seed and per-task comparison keys apply",
    )
    imported.add_argument("--policy", type=Path, help="a gate policy file (replaces --config's gates)")


def _accept_edits_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--accept-edits",
        action="store_true",
        help="use a run directory whose files changed after evalsuite wrote them (or that has no "
        "checksums); the report and summary.md then say which files were edited",
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help=f"data folder for task files (else run.data_dir, ${ENV_DATA_DIR})"
    )
    parser.add_argument("--output-dir", type=Path, help="where run directories go (else run.output_dir)")
    parser.add_argument("--name", help="run name, the run directory's name (else run.name)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help=f"converted models and cached answers (else run.cache_dir, ${ENV_CACHE_DIR})",
    )
    parser.add_argument(
        "--no-answer-cache",
        action="store_true",
        help="compute every answer afresh and store none (else run.answer_cache)",
    )
    parser.add_argument(
        "--baseline",
        metavar="RUN_DIR[:MODEL]",
        help="compare with a model recorded in an earlier run directory (its only model without a baseline, "
        "or MODEL) instead of evaluating it; it becomes the baseline of every model that has none",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and build all requests, run nothing")


RECORD_COMMANDS = ("report", "gate", "compare")  # work from a run's records: no model library is imported


def quiet_libraries(model_libraries: bool = True) -> None:
    """Keep the terminal for evalsuite's own progress: libraries log warnings, not chatter. The model
    libraries' own switches are set only for commands that load them (importing them costs seconds)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's own tqdm bars; evalsuite shows rich bars
    loggers = (
        "lm-eval",
        "lm_eval",
        "datasets",
        "transformers",
        "torchao",
        "torch",
        "torch.utils._pytree",
        "accelerate",
        "absl",
        "bitsandbytes",
        "httpx",  # one line per request at INFO
        "httpcore",
    )
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if not model_libraries:
        return
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        code = command(args, argv)
    notes = dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, DeprecatedKey))
    for w in caught:
        if not issubclass(w.category, DeprecatedKey):  # anything else as Python would have shown it
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if code != EXIT_INPUT_ERROR:  # an input error stays one line; the notes come once it is fixed
        for note in notes:
            console.print(f"[yellow]note:[/yellow] {escape(one_line(note))}", highlight=False, soft_wrap=True)
    return code


def command(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Run one command; every failure becomes its exit code and one line."""
    try:
        quiet_libraries(model_libraries=args.command not in RECORD_COMMANDS)
        warnings.simplefilter("always", DeprecatedKey)  # old config spellings: a note each, shown by main
        if args.command == "tasks":
            return list_tasks(args.task_dir)
        if args.command == "compare":
            return compare(args)
        if args.command == "gate":
            return gate(args)
        if args.command == "report":
            return report(args)
        if args.command == "import":
            return import_output(args)
        config = load_config(args.config) if args.command == "run" else quickstart_config()
        return run(apply_overrides(config, args), args)
    except BackendUnavailable as error:
        say("stopped", one_line(error))
        return EXIT_UNAVAILABLE
    except EvalsuiteError as error:
        say("error", one_line(error))
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        if args.command in ("run", "quickstart"):
            console.print("[yellow]interrupted; no run directory was written[/yellow]")
        else:  # report, gate and compare replace files only as a whole, sealed set
            console.print("[yellow]interrupted; the run directory is as it was[/yellow]")
        return 130
    except Exception as error:  # a bug: never 0 or 1, which CI would read as a verdict
        saved = save_traceback(error, argv)
        say(
            "internal error",
            f"{one_line(f'{type(error).__name__}: {error}')} (a bug in evalsuite, not in "
            f"your input; traceback saved to {saved})",
        )
        return EXIT_INTERNAL_ERROR


def say(label: str, message: str) -> None:
    """One line on stderr, however wide the terminal (long lines are not wrapped, only soft-wrapped)."""
    console.print(f"[bold red]{label}:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


def one_line(message: object) -> str:
    """A message as one line: libraries' multi-line errors (transformers' advice, pydantic's tables)
    collapse into it."""
    return " ".join(str(message).split())


def save_traceback(error: BaseException, argv: Sequence[str] | None) -> str:
    """Write the traceback of an unexpected error to a new file in the temporary folder; its path."""
    import importlib.metadata
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(error))
    arguments = list(sys.argv[1:] if argv is None else argv)
    header = f"evalsuite {importlib.metadata.version('evalsuite')}\narguments: {arguments}\n\n"
    try:
        fd, path = tempfile.mkstemp(prefix="evalsuite-error-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(header + text)
    except OSError as failure:
        return f"nowhere ({failure.strerror}); rerun with python -X dev to see it"
    return path


def quickstart_config() -> RunConfig:
    text = resources.files("evalsuite").joinpath("quickstart.yaml").read_text(encoding="utf-8")
    return resolve_paths(parse_config(yaml.safe_load(text), "quickstart.yaml"), Path.cwd())


def apply_overrides(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """Command-line flags beat the config file, which beats the environment."""
    run = config.run
    origins = [
        ("--data-dir", args.data_dir),
        ("run.data_dir", run.data_dir),
        (ENV_DATA_DIR, _env_path(ENV_DATA_DIR)),
    ]
    origin, data_dir = next(((o, p) for o, p in origins if p is not None), ("", None))
    if data_dir is not None and not data_dir.is_dir():
        raise ConfigError(f"data folder {data_dir} (from {origin}) does not exist")
    updates = {
        "data_dir": data_dir.resolve() if data_dir else None,
        "output_dir": (args.output_dir or run.output_dir).resolve(),
        "name": args.name or run.name,
        "answer_cache": run.answer_cache and not getattr(args, "no_answer_cache", False),
        "cache_dir": (
            args.cache_dir or run.cache_dir or _env_path(ENV_CACHE_DIR) or default_cache()
        ).resolve(),
    }
    data = config.model_dump(mode="json")
    data["run"].update({k: str(v) if isinstance(v, Path) else v for k, v in updates.items()})
    checked = parse_config(data, "command line")  # re-validate: --name must be a valid run name too
    if getattr(args, "baseline", None):
        from evalsuite.recorded import with_baseline_run

        checked = with_baseline_run(checked, args.baseline)
    return resolve_paths(checked, Path.cwd())


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "evalsuite"


def api_keys(config: RunConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The API keys the config names by environment variable; a missing one is an error before any
    work starts. The values go to the backends only: never into a config, manifest or message."""
    keys = {}
    for model in config.models:
        if model.api is not None and model.api.key_env is not None:
            value = environ.get(model.api.key_env)
            if not value:
                raise ConfigError(
                    f"model {model.name!r}: environment variable {model.api.key_env} (api.key_env) is not set"
                )
            keys[model.api.key_env] = value
    return keys


def run(config: RunConfig, args: argparse.Namespace) -> int:
    from evalsuite.engine.ranks import TorchRanks, from_environment

    assert config.run.cache_dir is not None  # set by apply_overrides
    secrets = api_keys(config, os.environ)
    ranks = from_environment(os.environ)
    try:
        return run_ranked(config, args, secrets, ranks)
    finally:
        if isinstance(ranks, TorchRanks):
            ranks.close()


def run_ranked(config: RunConfig, args: argparse.Namespace, secrets: dict[str, str], ranks: Ranks) -> int:
    from evalsuite import runner

    assert config.run.cache_dir is not None
    if ranks.rank != 0:  # other ranks compute and stay quiet; rank 0 reports and writes
        the_plan = runner.plan(config, config.run.cache_dir)
        if args.dry_run:
            return EXIT_OK
        return runner.execute(the_plan, runner.SilentProgress(), secrets, ranks).exit_code
    the_plan = plan_quietly(config, config.run.cache_dir)
    if ranks.world > 1:
        console.print(f"[dim]data parallel: {ranks.world} ranks share the requests[/dim]")
    if args.dry_run:
        out.print(f"config is valid: {len(config.models)} model(s) x {len(the_plan.tasks)} task(s)")
        for task in the_plan.tasks:
            out.print(f"  {task.spec.name}: {len(task.instances)} requests ({task.spec.source})")
        return EXIT_OK
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # no live display where stderr is no terminal (logs get one line per unit instead, and no blank line)
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bars:
        outcome = runner.execute(the_plan, RichProgress(bars), secrets, ranks)
    out.print(summary_table(outcome.results.results))
    if outcome.results.comparisons:
        out.print(comparison_table(outcome.results.comparisons))
    if outcome.results.probe_comparisons:
        out.print(probe_comparison_table(outcome.results.probe_comparisons))
    if outcome.results.gates is not None:
        out.print(gate_table(outcome.results.gates))
    if outcome.errors:
        console.print(
            f"[yellow]{outcome.errors} sample(s) failed; their errors are in samples.jsonl[/yellow]"
        )
    out.print(f"run directory: {outcome.run_dir}")
    if outcome.unmeasured:
        units = "; ".join(outcome.unmeasured)
        say("nothing measured", f"every sample failed for {units}: see the errors in samples.jsonl")
        return EXIT_NOTHING_MEASURED
    return outcome.exit_code


def plan_quietly(config: RunConfig, cache_dir: Path) -> runner_types.Plan:
    """Plan the run; its notes ("preparing probe ...") show on a terminal's status line while they
    happen and are printed once the plan stands, so a config refused while planning is one line."""
    from contextlib import nullcontext

    from evalsuite import runner

    notes: list[str] = []
    with console.status("planning") if console.is_terminal else nullcontext() as status:

        def note(message: str) -> None:
            notes.append(message)
            if status is not None:
                status.update(escape(message))

        the_plan = runner.plan(config, cache_dir, note)
    for message in notes:
        console.print(f"[dim]{escape(message)}[/dim]")
    return the_plan


def summary_table(results: Sequence[TaskResult]) -> Table:
    table = Table(title="results")
    for column in ("model", "task", "metric"):
        table.add_column(column, overflow="fold")  # names stay whole on narrow terminals
    for column in ("value", "± stderr", "n", "errors"):
        table.add_column(column, justify="right", no_wrap=True)
    for result in results:
        for name, metric in shown_metrics(result).items():
            table.add_row(
                escape(result.model),
                escape(result.task),
                escape(name),
                number(metric.value),
                number(metric.stderr),
                str(metric.n),
                str(metric.n_errors),
            )
    return table


def shown_metrics(result: TaskResult) -> dict[str, MetricResult]:
    """Every metric of a task; a probe unit's primary metric and its clean and perturbed scores (the
    rest are in results.json and the report)."""
    if result.probe is None:
        return dict(result.metrics)
    names = dict.fromkeys((result.primary_metric or "", "clean", "perturbed"))
    return {n: result.metrics[n] for n in names if n in result.metrics}


def compare(args: argparse.Namespace) -> int:
    from evalsuite.compare import compare_runs
    from evalsuite.config import StatsSettings
    from evalsuite.outputs import write_outputs
    from evalsuite.records import Results, write_json
    from evalsuite.rundir import open_run

    runs = [open_run(path.resolve(), args.accept_edits) for path in args.runs]
    for run in runs:
        _note_edits(run.path, run.edits)
    base = runs[0].config.stats
    updates = {"margin": args.margin, "alpha": args.alpha, "adjust": args.adjust}
    data = {**base.model_dump(), **{k: v for k, v in updates.items() if v is not None}}
    data["all_pairs"] = base.all_pairs or args.all_pairs
    try:
        settings = StatsSettings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, "command line")) from None
    results, comparisons, skipped, probed = compare_runs(runs, settings, args.pair)
    made = {
        "comparisons": comparisons,
        "skipped_comparisons": skipped,
        "probe_comparisons": probed.comparisons,
        "skipped_probe_comparisons": probed.skipped,
    }
    if len(runs) == 1:
        target = runs[0].path
        merged = runs[0].results.model_copy(update=made)
    else:
        names = "-".join(run.name for run in runs)
        target = (args.output or runs[0].path.parent / f"compare-{names}").resolve()
        merged = Results.model_validate({"run": f"compare-{names}", "results": results, **made})
    if len(runs) == 1:
        if runs[0].config.gates is not None:  # the verdict follows the comparisons it rests on
            from evalsuite import gates

            merged = gates.apply_policy(runs[0].config.gates, merged, runs[0].config)
        write_outputs(replace(runs[0], results=merged))
    else:
        write_json(target / "results.json", merged.model_dump(mode="json", by_alias=True))
    out.print(comparison_table(comparisons))
    for skip in skipped:
        console.print(
            f"[yellow]not compared[/yellow] {skip.baseline} -> {skip.variant} on {skip.task}: {skip.reason}"
        )
    if probed.comparisons:
        out.print(probe_comparison_table(probed.comparisons))
    for missed in probed.skipped:
        what = f"{missed.baseline} -> {missed.variant} on {missed.unit} ({missed.metric})"
        console.print(f"[yellow]not compared[/yellow] {escape(what)}: {escape(missed.reason)}")
    out.print(f"comparisons written to {target / 'results.json'}")
    return EXIT_OK


def gate(args: argparse.Namespace) -> int:
    from evalsuite import gates
    from evalsuite.outputs import write_outputs
    from evalsuite.rundir import open_run

    run = open_run(args.run_dir.resolve(), args.accept_edits)
    _note_edits(run.path, run.edits)
    policy = gates.load_policy(args.policy) if args.policy else run.config.gates
    if policy is None:
        raise ConfigError(f"{run.path}: the run declares no gates; pass --policy FILE")
    models = {m.name: m.baseline for m in run.config.models}
    gates.check_references(
        policy,
        models,
        {r.task: list(r.metrics) for r in run.results.results},
        noise_floors={m.name for m in run.config.models if m.noise_floor},
        probes=run.config.probes,
    )
    gated = gates.apply_policy(policy, run.results, run.config)  # comparisons at the policy's margins
    assert gated.gates is not None
    write_outputs(replace(run, results=gated))
    out.print(gate_table(gated.gates))
    return gated.gates.exit_code


def report(args: argparse.Namespace) -> int:
    from evalsuite.outputs import write_outputs
    from evalsuite.rundir import open_run

    run = open_run(args.run_dir.resolve(), args.accept_edits)
    _note_edits(run.path, run.edits)
    write_outputs(run)
    out.print(f"report written to {run.path / 'report.html'}")
    return EXIT_OK


def import_output(args: argparse.Namespace) -> int:
    """``evalsuite import``: read another tool's output, write a run directory, print what ``run``
    prints; the exit code is the verdict of the gates, if any."""
    from evalsuite.imports import FORMATS, ImportSettings, Source, import_run

    reader = FORMATS.get(args.format)
    sources = [Source.parse(text) for text in args.paths]
    settings = ImportSettings.load(
        args.name,
        args.output_dir,
        baseline=args.baseline,
        tasks=args.tasks,
        config=args.config,
        policy=args.policy,
    )
    outcome = import_run(args.format, reader, sources, settings)
    out.print(summary_table(outcome.results.results))
    if outcome.results.comparisons:
        out.print(comparison_table(outcome.results.comparisons))
    for skip in outcome.results.skipped_comparisons:
        what = f"{skip.baseline} -> {skip.variant} on {skip.task}: {skip.reason}"
        console.print(f"[yellow]not compared[/yellow] {escape(what)}")
    if outcome.results.gates is not None:
        out.print(gate_table(outcome.results.gates))
    out.print(f"run directory: {outcome.run_dir}")
    return outcome.exit_code


def _note_edits(path: Path, edits: Sequence[str]) -> None:
    """A run directory edited after the run says so on every use, not only in its report."""
    if edits:
        what = escape("; ".join(edits))
        console.print(
            f"[yellow]note:[/yellow] {escape(str(path))} was edited after the run: {what}",
            highlight=False,
            soft_wrap=True,
        )


def gate_table(verdict: Verdict) -> Table:
    title = "gates: PASS" if verdict.passed else "gates: FAIL"
    table = Table(title=f"{title} (inconclusive counts as {verdict.inconclusive_policy})")
    for column in ("status", "gate", "checked", "reason"):
        table.add_column(column, overflow="fold")
    colors = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    for check in verdict.checks:
        status = f"[{colors[check.status]}]{check.status}[/{colors[check.status]}]"
        table.add_row(status, escape(check.gate), escape(check.target), escape(check.reason))
    return table


def comparison_table(comparisons: Sequence[Comparison]) -> Table:
    adjust = comparisons[0].adjustment if comparisons else "holm"
    table = Table(title=f"paired comparisons (variant - baseline; p adjusted by {adjust} over the run)")
    table.add_column("comparison", overflow="fold")
    table.add_column("difference / CI", justify="right", no_wrap=True)
    table.add_column("p adj", justify="right", no_wrap=True)
    table.add_column("flips b/c", justify="right", no_wrap=True)
    table.add_column("non-inferior", overflow="fold")
    table.add_column("reading", overflow="fold")
    for c in comparisons:
        ni = c.non_inferiority
        decided = f"{'yes' if ni.non_inferior else 'no'}\n{ni.lower_bound:+.4f} vs -{ni.margin:g}"
        table.add_row(
            escape(f"{c.baseline} → {c.variant}\n{c.task} · {c.metric}"),
            f"{c.difference:+.4f}\n[{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
            number(c.p_adjusted),
            "—" if c.discordant is None else f"{c.discordant.baseline_only}/{c.discordant.variant_only}",
            f"{decided}\n{escape(ni.margin_text)}",  # a gate's name may hold rich markup
            c.reading,
        )
    return table


def probe_comparison_table(comparisons: Sequence[ProbeComparison]) -> Table:
    adjust = comparisons[0].adjustment if comparisons else "holm"
    table = Table(title=f"variant vs base on probes (variant - baseline; p adjusted by {adjust} over them)")
    table.add_column("comparison", overflow="fold")
    table.add_column("baseline → variant", justify="right", no_wrap=True)
    table.add_column("difference / CI", justify="right", no_wrap=True)
    table.add_column("p adj", justify="right", no_wrap=True)
    table.add_column("reading", overflow="fold")
    for c in comparisons:
        table.add_row(
            escape(f"{c.baseline} → {c.variant}\n{c.unit} · {c.metric}"),
            f"{number(c.baseline_value)} → {number(c.variant_value)}",
            f"{c.difference:+.4f}\n[{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
            number(c.p_adjusted),
            c.reading,
        )
    return table


def number(value: float | None) -> str:
    """Four decimals for scores, four significant digits for large values such as perplexities."""
    if value is None:
        return "—"
    return f"{value:.4g}" if abs(value) >= 1e4 else f"{value:.4f}"


def list_tasks(extra_dirs: list[Path]) -> int:
    from evalsuite.tasks import local_task_files, task_dirs

    table = Table(title="task files (any lm-eval task name works too)")
    table.add_column("task")
    table.add_column("file")
    for name, path in sorted(local_task_files(task_dirs(tuple(p.resolve() for p in extra_dirs))).items()):
        table.add_row(name, str(path))
    out.print(table)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
