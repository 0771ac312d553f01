"""Reading a finished run directory back, and checking that it is what evalsuite wrote.

``evalsuite compare``, ``gate`` and ``report`` work from these files alone, so any finished run can be
re-compared, re-rendered or re-gated without a model. A verdict is only as good as the files it rests
on, so those commands open a run with :func:`open_run`, which refuses a run directory that was edited or
damaged after evalsuite wrote it (a DataError: exit 2 and one line naming the file and what changed):

- ``checksums.sha256`` (the format ``sha256sum -c`` reads) holds the SHA-256 of every file evalsuite
  wrote in the run directory, as the last command that wrote there (``run``, ``report``, ``gate``,
  ``compare``) left it. The manifest cannot hold its own digest, so the digests live beside it; the
  manifest keeps under ``files`` the digests of samples.jsonl and results.json, what decisions rest on,
  as the run itself wrote them (the views hold times, so their digests would make two runs' manifests
  differ). Each file must match one of the two, so a results.json restored byte for byte still checks.
- A command that rewrites files stages them beside their targets, lists the new digests in
  ``.checksums.sha256.pending``, renames the staged files into place, then replaces the checksums and
  removes the pending list: a command killed at any point leaves files that still check.
- The records must agree with the manifest (known schema versions, every model and task declared, one
  record per (model, task, document, variant), as many records per model and task as the run declared)
  and with results.json (the same units; every metric's n, failed samples and, for means, value), so
  neither a verdict nor a comparison rests on numbers the records do not give.
- report.html, summary.md and junit.xml are views of results.json: an edited one is refused like any
  file, but a deleted one is simply drawn again (``evalsuite report`` is how a report is regenerated).

``--accept-edits`` (``accept_edits=True``) lets changed files through: the next write records the
changes in the manifest (``edits``), and the report and summary.md show them from then on. Records
that disagree with the manifest or results.json are refused even then: no decision could rest on them.
A run directory without checksums (written before evalsuite sealed them) needs the flag too.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalsuite.config import RunConfig, format_validation_error, parse_config
from evalsuite.errors import DataError
from evalsuite.manifest import MANIFEST_SCHEMAS, Edit, Manifest, ProbeEntry, TaskEntry, parse_manifest
from evalsuite.records import (
    RESULTS_SCHEMA,
    SAMPLE_SCHEMA,
    Results,
    SampleRecord,
    TaskResult,
    read_samples,
    write_atomic,
)
from evalsuite.stats.shift import TokenKL

FILES = ("manifest.json", "results.json", "samples.jsonl")  # what a run directory cannot do without
SEALED = ("manifest.json", "samples.jsonl", "results.json", "report.html", "summary.md", "junit.xml")
REDRAWN = ("report.html", "summary.md", "junit.xml")  # views of results.json: deleted, they are redrawn
CHECKSUMS = "checksums.sha256"
PENDING = f".{CHECKSUMS}.pending"
ACCEPT_EDITS = "--accept-edits"
SAMPLE_SCHEMAS = (SAMPLE_SCHEMA,)  # the record versions this evalsuite reads
RESULTS_SCHEMAS = (RESULTS_SCHEMA,)
UNSEALED = "missing (written before evalsuite sealed its run directories)"
_SEAL_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


@dataclass(frozen=True)
class RunDir:
    path: Path
    manifest: Manifest
    results: Results
    samples: tuple[SampleRecord, ...]
    accepted: tuple[str, ...] = ()  # changes let through by --accept-edits now; writing records them

    @property
    def name(self) -> str:
        return self.manifest.run

    @property
    def config(self) -> RunConfig:
        source = f"{self.path / 'manifest.json'} (config)"
        return parse_config(own_probe_keys(self.manifest.config), source)

    @property
    def token_shift(self) -> dict[tuple[str, str], TokenKL]:
        shift = self.manifest.token_shift
        out = {}
        for key, pair in (shift.pairs if shift is not None else {}).items():
            base, _, variant = key.partition(" -> ")
            p99 = float("nan") if pair.token_kl_p99 is None else pair.token_kl_p99  # none: not finite, or old
            out[(base, variant)] = TokenKL(pair.token_kl, pair.tail_mass, pair.tokens, p99)
        return out

    @property
    def routing(self) -> dict[tuple[str, str], dict[tuple[str, int], float]]:
        """MoE pairs: routing agreement per (task, document) of the prompts it was measured on."""
        shift = self.manifest.token_shift
        out = {}
        for key, items in (shift.routing if shift is not None else {}).items():
            base, _, variant = key.partition(" -> ")
            out[(base, variant)] = {(task, doc): value for task, doc, value in items}
        return out

    @property
    def edits(self) -> tuple[str, ...]:
        """Every change made after the run and accepted with --accept-edits, for the reader to see."""
        edits = self.manifest.edits
        notes = [f"{change} (accepted {edit.accepted})" for edit in edits for change in edit.changes]
        return (*notes, *(f"{change} (accepted now)" for change in self.accepted))

    def with_edits_recorded(self) -> RunDir:
        """The run with this command's accepted changes moved into the manifest's ``edits``."""
        if not self.accepted:
            return self
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        edits = [*self.manifest.edits, Edit(accepted=now, changes=list(self.accepted))]
        return replace(self, manifest=self.manifest.model_copy(update={"edits": edits}), accepted=())


def load_run(path: Path) -> RunDir:
    """Read a run directory as it is; a missing or malformed file, or a record of a schema version this
    evalsuite does not read, is a DataError naming it. :func:`open_run` also checks it."""
    if not path.is_dir():
        raise DataError(f"{path}: no such run directory")
    sealed = (path / CHECKSUMS).is_file()
    for name in FILES:
        if not (path / name).is_file():
            if sealed or (name != "manifest.json" and (path / "manifest.json").is_file()):
                raise DataError(f"{path / name}: missing (deleted after the run wrote it?)")
            raise DataError(f"{path}: not a run directory (no {name})")
    manifest = parse_manifest(_text(path / "manifest.json"), path / "manifest.json")
    try:
        results = Results.model_validate_json(_text(path / "results.json"))
    except ValidationError as error:
        raise DataError(format_validation_error(error, str(path / "results.json"))) from None
    if results.schema_ not in RESULTS_SCHEMAS:
        raise DataError(f"{path / 'results.json'}: {_unknown_schema(results.schema_, RESULTS_SCHEMAS)}")
    try:
        samples = tuple(read_samples(path / "samples.jsonl"))
    except UnicodeDecodeError:
        raise DataError(f"{path / 'samples.jsonl'}: not UTF-8 text") from None
    for line, record in enumerate(samples, start=1):
        if record.schema_ not in SAMPLE_SCHEMAS:
            where = f"{path / 'samples.jsonl'}:{line}"
            raise DataError(f"{where}: {_unknown_schema(record.schema_, SAMPLE_SCHEMAS)}")
    return RunDir(path, manifest, results, samples)


def open_run(path: Path, accept_edits: bool = False) -> RunDir:
    """Read a run directory and check it is what evalsuite wrote (see the module's docstring).

    A changed file is a DataError unless ``accept_edits``; then the changes ride along in ``accepted``
    for :func:`evalsuite.outputs.write_outputs` to record. Records that disagree with the manifest or
    results.json are a DataError either way."""
    run = load_run(path)
    changes = changed_files(path, run.manifest)
    if changes and not accept_edits:
        first, rest = changes[0], changes[1:]
        also = f" (also {', '.join(c.note for c in rest)})" if rest else ""
        raise DataError(f"{path / first.file}: {first.detail}{also}; pass {ACCEPT_EDITS} to use it anyway")
    check_records(run)
    return replace(run, accepted=tuple(c.note for c in changes))


@dataclass(frozen=True)
class Change:
    """A file of the run directory that is not as evalsuite wrote it."""

    file: str
    kind: str  # changed, deleted, damaged, missing, not written by evalsuite
    detail: str  # what the error line says

    @property
    def note(self) -> str:
        return f"{self.file}: {self.kind}"


def changed_files(path: Path, manifest: Manifest) -> list[Change]:
    """The files that match neither checksums.sha256 (or the pending list of an interrupted write) nor
    the digests of samples.jsonl and results.json as the run wrote them (the manifest's ``files``);
    the checksums' own problems first."""
    as_run = _manifest_digests(path, manifest)
    seal, problem = read_checksums(path / CHECKSUMS)
    pending, _ = read_checksums(path / PENDING)
    changes = []
    if seal is None:
        if problem is None and not as_run:
            return [Change(CHECKSUMS, UNSEALED, f"{UNSEALED}, so nothing shows whether it was edited")]
        kind = "damaged" if problem else "deleted"
        changes.append(Change(CHECKSUMS, kind, problem or "deleted after evalsuite wrote it"))
    listed = seal if seal is not None else as_run
    for name in SEALED:
        file = path / name
        if seal is None and name not in as_run:
            continue  # only the checksums held its digest
        known = {d for d in (listed.get(name), (pending or {}).get(name), as_run.get(name)) if d}
        if not file.is_file():
            if name in listed and name not in REDRAWN:
                changes.append(Change(name, "deleted", "deleted after evalsuite wrote it"))
            continue
        if not known:
            changes.append(
                Change(
                    name,
                    "not written by evalsuite",
                    f"not written by evalsuite ({CHECKSUMS} does not list it)",
                )
            )
            continue
        digest = file_digest(file)
        if digest not in known:
            recorded = listed.get(name) or as_run.get(name) or min(known)
            detail = f"changed since evalsuite wrote it (sha256 {digest[:12]}…, recorded {recorded[:12]}…)"
            changes.append(Change(name, "changed", detail))
    return changes


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror})") from None
    return digest.hexdigest()


def read_checksums(path: Path) -> tuple[dict[str, str] | None, str | None]:
    """A checksums file's digests by file name, or None with what is wrong with it (None when it is
    simply absent)."""
    if not path.is_file():
        return None, None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None, "cannot be read as text"
    digests: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        match = _SEAL_LINE.fullmatch(line)
        if match is None or match[2] not in SEALED or match[2] in digests:
            return None, f"line {number} is not 'SHA256  FILE' for a file evalsuite writes"
        digests[match[2]] = match[1]
    return digests, None


def checksums_text(digests: Mapping[str, str]) -> str:
    return "".join(f"{digests[name]}  {name}\n" for name in SEALED if name in digests)


def _manifest_digests(path: Path, manifest: Manifest) -> dict[str, str]:
    files = manifest.files
    if files is None:
        return {}
    if not all(name in SEALED and re.fullmatch(r"[0-9a-f]{64}", digest) for name, digest in files.items()):
        raise DataError(f"{path / 'manifest.json'}: files: expected the sha256 of each file the run wrote")
    return dict(files)


class SealedWrite:
    """Files written into a run directory so that its checksums hold at every moment. Used as a context:
    each file is staged beside its target (``.NAME.new``); on a clean exit the new digests go into the
    pending list, the staged files are renamed into place, checksums.sha256 is replaced and the pending
    list dropped; on an error the staged files are removed. The run directory is locked (``flock``)
    meanwhile, so two commands writing one run directory do not interleave their files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.staged: dict[str, str] = {}  # file name -> sha256 of its staged content
        self._lock: int | None = None

    def __enter__(self) -> SealedWrite:
        self._lock = os.open(self.folder, os.O_RDONLY)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._commit()
        finally:
            for name in SEALED:
                (self.folder / f".{name}.new").unlink(missing_ok=True)
            if self._lock is not None:
                os.close(self._lock)  # releases the lock
                self._lock = None

    def stage(self, name: str, write: Callable[[Path], None]) -> str:
        """Stage ``name`` with ``write`` (a writer such as records.write_json); returns its digest."""
        assert name in SEALED and self._lock is not None, name
        target = self.folder / f".{name}.new"
        write(target)
        self.staged[name] = file_digest(target)
        return self.staged[name]

    def _commit(self) -> None:
        state = {}
        for name in SEALED:
            if name in self.staged:
                state[name] = self.staged[name]
            elif (self.folder / name).is_file():
                state[name] = file_digest(self.folder / name)
        text = checksums_text(state)
        if (self.folder / CHECKSUMS).is_file():
            write_atomic(self.folder / PENDING, text)
        for name in self.staged:
            os.replace(self.folder / f".{name}.new", self.folder / name)
        write_atomic(self.folder / CHECKSUMS, text)
        (self.folder / PENDING).unlink(missing_ok=True)


def check_records(run: RunDir) -> None:
    """The records against the manifest and results.json; the first disagreement is a DataError."""
    manifest, where = run.manifest, run.path / "manifest.json"
    samples_path, results_path = run.path / "samples.jsonl", run.path / "results.json"
    if manifest.schema_ not in MANIFEST_SCHEMAS:  # parse_manifest refuses them; a RunDir built in code
        raise DataError(f"{where}: {_unknown_schema(manifest.schema_, MANIFEST_SCHEMAS)}")
    models, tasks, probes = manifest.models, manifest.tasks, manifest.probes
    units: dict[str, TaskEntry | ProbeEntry] = {**tasks, **probes}
    by_unit: dict[tuple[str, str], list[SampleRecord]] = {}
    first_line: dict[tuple[str, str, int, str], int] = {}
    for line, record in enumerate(run.samples, start=1):
        at = f"{samples_path}:{line}"
        if record.model not in models:
            raise DataError(
                f"{at}: model {record.model!r} is not one the manifest declares ({_names(models)})"
            )
        if record.task not in units:
            raise DataError(f"{at}: task {record.task!r} is not one the manifest declares ({_names(units)})")
        key = (record.model, record.task, record.doc_id, record.variant)
        if key in first_line:
            raise DataError(
                f"{at}: a second record of model {record.model!r} on {record.task!r}, document "
                f"{record.doc_id}, variant {record.variant!r} (the first is on line {first_line[key]})"
            )
        first_line[key] = line
        by_unit.setdefault((record.model, record.task), []).append(record)
    # how many documents (a task) or records (a probe) per model the run wrote
    declared = {u: e.variants if isinstance(e, ProbeEntry) else e.samples for u, e in units.items()}
    if not run.samples and any(declared.values()):
        total = len(models) * sum(declared.values())
        raise DataError(f"{samples_path}: no records; the run wrote {total}")
    for model in models:
        for unit, count in declared.items():
            records = by_unit.get((model, unit), [])
            found = len(records) if unit in probes else len({r.doc_id for r in records})
            entry = units[unit]
            if isinstance(entry, ProbeEntry) and entry.records is not None:
                count = entry.records.get(model, 0)
            if isinstance(entry, TaskEntry) and entry.evaluated is not None:  # stopped by stats.sequential
                count = entry.evaluated.get(model, count)
            # a run written before the manifest kept each probe unit's records: at least its variants (an
            # attack adds records while it runs)
            legacy = isinstance(entry, ProbeEntry) and entry.records is None
            if found != count and not (legacy and found > count):
                what = "records" if unit in probes else "documents"
                raise DataError(
                    f"{samples_path}: {found} {what} of model {model!r} on {unit!r}; the run wrote {count}"
                )
    _check_results(run.results, by_unit, models, units, results_path)


def _check_results(
    results: Results,
    by_unit: Mapping[tuple[str, str], Sequence[SampleRecord]],
    models: Mapping[str, Any],
    units: Mapping[str, Any],
    where: Path,
) -> None:
    info: dict[tuple[str, str], TaskResult] = {}
    for index, result in enumerate(results.results):
        unit = (result.model, result.task)
        if result.model not in models or result.task not in units:
            raise DataError(
                f"{where}: results[{index}] is for model {result.model!r} on {result.task!r}, "
                "which the manifest does not declare"
            )
        if unit in info:
            raise DataError(
                f"{where}: results[{index}]: a second result of {result.model!r} on {result.task!r}"
            )
        info[unit] = result
        if result.probe is None:  # a probe unit's metrics are not per-record means; its digest vouches
            _check_metrics(result, by_unit.get(unit, ()), f"{where}: {result.model} on {result.task}")
    unresulted = sorted(by_unit.keys() - info.keys())
    if unresulted:
        model, task = unresulted[0]
        raise DataError(f"{where}: no result for model {model!r} on {task!r}, which has records")
    for index, c in enumerate(results.comparisons):
        who = f"{where}: comparisons[{index}] ({c.variant} vs {c.baseline} on {c.task})"
        if (c.baseline, c.task) not in info or (c.variant, c.task) not in info:
            raise DataError(f"{who}: compares models that have no result on that task")
        base = {(r.doc_id, r.variant): r for r in by_unit.get((c.baseline, c.task), ())}
        variant = {(r.doc_id, r.variant): r for r in by_unit.get((c.variant, c.task), ())}
        keys = sorted(
            k
            for k in base.keys() & variant.keys()
            if _scored(base[k], c.metric) and _scored(variant[k], c.metric)
        )
        if len(keys) != c.n:
            raise DataError(f"{who}: rests on n={c.n} pairs, but samples.jsonl has {len(keys)}")
        metric = info[(c.baseline, c.task)].metrics.get(c.metric)
        if metric is not None and metric.aggregation == "mean":
            for side, records, value in (
                ("baseline", base, c.baseline_value),
                ("variant", variant, c.variant_value),
            ):
                mean = _mean([records[k].metrics[c.metric] for k in keys])
                if mean is not None and not math.isclose(mean, value, rel_tol=1e-9, abs_tol=1e-12):
                    raise DataError(
                        f"{who}: the {side}'s {c.metric} is {value:.8g}, but its records give {mean:.8g}"
                    )


def _check_metrics(result: TaskResult, records: Sequence[SampleRecord], who: str) -> None:
    """What evalsuite.tasks.evaluate.aggregate derives from the records: the metric names, each
    metric's n and failed samples, and a mean's value."""
    ok = [r for r in records if r.error is None]
    failed = len(records) - len(ok)
    scored_names = {m for r in ok for m in r.metrics}
    if set(result.metrics) != scored_names:
        raise DataError(
            f"{who}: metrics {sorted(result.metrics)}, but its records in samples.jsonl score "
            f"{sorted(scored_names)}"
        )
    for name, metric in result.metrics.items():
        values = [r.metrics[name] for r in ok if name in r.metrics]
        if metric.n != len(values) or metric.n_errors != failed:
            raise DataError(
                f"{who}: {name} rests on n={metric.n} ({metric.n_errors} failed), but samples.jsonl has "
                f"{len(values)} scored records ({failed} failed)"
            )
        mean = _mean(values) if metric.aggregation == "mean" and metric.value is not None else None
        if (
            mean is not None
            and metric.value is not None
            and not math.isclose(mean, metric.value, rel_tol=1e-9, abs_tol=1e-12)
        ):
            raise DataError(
                f"{who}: {name} is {metric.value:.8g}, but its {len(values)} records give {mean:.8g}"
            )


def _mean(values: Sequence[Any]) -> float | None:
    """The mean of plain numbers (None when there are none, or something else is among them)."""
    if not values or not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return None
    return math.fsum(float(v) for v in values) / len(values)


def _scored(record: SampleRecord, metric: str) -> bool:
    return record.error is None and metric in record.metrics


def _names(table: Mapping[str, Any]) -> str:
    names = sorted(table)
    return (
        ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "") if names else "none"
    )


def _unknown_schema(schema: object, known: Sequence[str]) -> str:
    return f"schema {schema!r} is not one this evalsuite reads ({', '.join(known)})"


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror})") from None


def own_probe_keys(config: Any) -> Any:
    """The stored config with each probe entry holding only its kind's keys. Runs written before each
    probe kind had its own config stored every probe key on every entry, at its default where the kind
    did not read it (the config then refused any other value), and those keys are errors now."""
    if not isinstance(config, dict) or not isinstance(config.get("probes"), list):
        return config
    from evalsuite.probes.registry import PROBE_KINDS, load_kinds

    load_kinds()
    probes = []
    for entry in config["probes"]:
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if isinstance(kind, str) and kind in PROBE_KINDS:
            fields = PROBE_KINDS.get(kind).config.model_fields
            entry = {key: value for key, value in entry.items() if key in fields}
        probes.append(entry)
    return {**config, "probes": probes}
