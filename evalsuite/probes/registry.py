"""Probe kinds, registered by name: what a config's ``kind:`` names, and everything known about it.

A probe kind is one module: in :mod:`evalsuite.probes.kinds` (every module of that package is imported
once, on first use), or in any installed package that names it under the ``evalsuite.probe_kinds``
entry-point group (``[project.entry-points."evalsuite.probe_kinds"] upper_case = "my_pkg.upper_case"``).
The module declares, and registers with :func:`register`:

* its ``Config``: a :class:`ProbeConfigBase` whose ``kind`` is a ``Literal`` of the names it answers to,
  a member of the discriminated union :mod:`evalsuite.config` validates ``probes:`` entries with;
* its ``Details``: the typed view of what it writes in each record's ``probe.details``
  (:meth:`evalsuite.records.ProbeDetail.details_as`);
* how to build the probe (``build``), importing its implementation only then, so that configs and
  reports never import a model library;
* its report hooks: the section and table it goes to, its metrics' labels and its worst-case picker;
* its comparable metrics (``comparable``): what a variant can be compared with its baseline on, sample
  by sample (:mod:`evalsuite.probes.comparable`; the comparisons are
  :mod:`evalsuite.probes.comparisons`). A kind without them is compared on nothing.

Kind modules import only pydantic, :mod:`evalsuite.schema`, this module, the records, the report's
plain helpers, :mod:`evalsuite.probes.comparable` and :mod:`evalsuite.stats.weighted` (neither imports
numpy until used): :mod:`evalsuite.config` imports them all when it is imported.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalsuite.registry import Registry
from evalsuite.schema import NAME_PATTERN, StrictModel

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.probes.comparable import Comparable
    from evalsuite.records import JSONValue, SampleRecord
    from evalsuite.report.worst_cases import Ranked


class ProbeConfigBase(StrictModel):
    """The keys every probe takes; a kind's ``Config`` adds its own (docs/probes.md lists them)."""

    kind: str
    name: str | None = Field(None, pattern=NAME_PATTERN)  # default: the kind
    tasks: tuple[str, ...] = ()  # required, except for the kinds that bring their own data
    limit: int | None = Field(None, ge=1)  # samples per task; default: the task's limit in `tasks`
    num_fewshot: int | None = Field(None, ge=0)  # default: the task's setting in `tasks`

    brings_own_data: ClassVar[bool] = False  # True: the kind reads its own data and takes no tasks
    group: ClassVar[str | None] = None  # how errors name the kinds sharing this Config, if several do

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        """Overrides StrictModel's: a key another kind reads is named as such, with the kinds that do."""
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and key not in cls.model_fields:
                    readers = [k.config.group or k.name for k in kinds() if key in k.config.model_fields]
                    if readers:
                        shown = ", ".join(dict.fromkeys(readers))
                        kind = data.get("kind")
                        raise ValueError(f"{key!r} does not apply to kind {kind!r} (only to {shown})")
        return StrictModel.reject_unknown_keys(cls, data)

    @model_validator(mode="after")
    def _tasks_of_kind(self) -> ProbeConfigBase:
        if self.brings_own_data and self.tasks:
            raise ValueError(f"kind {self.kind!r} brings its own data and takes no 'tasks'")
        if not self.brings_own_data and not self.tasks:
            raise ValueError(f"kind {self.kind!r} needs 'tasks': the tasks to probe")
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind

    def settings(self) -> dict[str, JSONValue]:
        """The kind's own keys and their values, as results record them (severity, seeds, recipe ...)."""
        own = [key for key in type(self).model_fields if key not in ProbeConfigBase.model_fields]
        return {key: _plain(getattr(self, key)) for key in own}


def _plain(value: Any) -> JSONValue:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    result: JSONValue = value
    return result


class Details(BaseModel):
    """The typed view of a record's ``probe.details``. Keys a kind no longer writes are ignored, so
    records of earlier versions still read."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Picker = Callable[["Sequence[SampleRecord]"], "list[Ranked]"]


@dataclass(frozen=True)
class Family:
    """A table of the report: the probe units of one or more kinds, a row per (unit, model)."""

    key: str
    title: str
    metrics: tuple[str, ...]  # its columns, in order
    mcnemar: bool = False  # a column for the exact McNemar test of clean against perturbed
    formats: bool = False  # columns for the best and worst prompt format, and every format folded in
    outcomes: bool = False  # a column counting how the attacks ended (success, failed, skipped ...)


@dataclass(frozen=True)
class ReportHooks:
    """Where a kind's results go in the report and how they read there. Pickers run when a report is
    rendered and import the report's helpers then (the report package imports the config)."""

    section: Literal["robustness", "hallucination", "dynamic"]
    family: Family  # the table its units go to (kinds may share one: the perturbations)
    order: int  # where that table stands in its section, smallest first
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)  # metric -> (column, description)
    worst_cases: Picker | None = None  # the failed records, worst first (hallucination kinds)


@dataclass(frozen=True)
class ProbeKind:
    """One registered kind (a module may register several names with one Config, as perturbations do)."""

    name: str
    summary: str  # one line: what it tests
    config: type[ProbeConfigBase]
    details: type[Details]
    metrics: tuple[str, ...]  # what its results report (gates are checked against them before the run)
    build: Callable[[Any, Path], Probe]  # (its Config, the cache folder) -> the probe; imports it lazily
    report: ReportHooks
    # metric -> how a variant is compared with its baseline on it (a subset of ``metrics``)
    comparable: Mapping[str, Comparable] = field(default_factory=dict)


PROBE_KINDS: Registry[ProbeKind] = Registry("probe kind")
_loaded = False


def register(kind: ProbeKind) -> ProbeKind:
    PROBE_KINDS.register(kind.name)(kind)
    return kind


def kinds() -> list[ProbeKind]:
    """Every registered kind, by name."""
    load_kinds()
    return [PROBE_KINDS.get(name) for name in PROBE_KINDS]


def families(section: str) -> list[tuple[Family, tuple[str, ...]]]:
    """The tables of a report section in order, each with the kinds whose units it shows."""
    tables: dict[str, tuple[int, Family, list[str]]] = {}
    for kind in kinds():
        hooks = kind.report
        if hooks.section == section:
            entry = tables.setdefault(hooks.family.key, (hooks.order, hooks.family, []))
            entry[2].append(kind.name)
    return [(family, tuple(names)) for _, family, names in sorted(tables.values(), key=lambda t: t[0])]


def probe_kind(name: str) -> ProbeKind:
    """The kind of that name; an unknown name is a ConfigError with a "did you mean"."""
    load_kinds()
    return PROBE_KINDS.get(name)


ENTRY_POINTS = "evalsuite.probe_kinds"
BROKEN_PLUGINS: dict[str, str] = {}  # entry-point name -> why its module did not import


def load_kinds() -> None:
    """Import every module of :mod:`evalsuite.probes.kinds` and every module an installed package names
    in the ``evalsuite.probe_kinds`` entry-point group (each registers its kinds), once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import evalsuite.probes.kinds as package

    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    for entry in sorted(metadata.entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        try:
            entry.load()
        except Exception as error:
            # A run that does not use the kind is not stopped by it; a config naming it is refused
            # with this reason (config.format_validation_error).
            BROKEN_PLUGINS[entry.name] = f"{entry.value}: {type(error).__name__}: {error}"


def probe_for(config: ProbeConfigBase, cache_dir: Path) -> Probe:
    """The probe of a config entry, built by its kind (which imports its implementation now)."""
    return probe_kind(config.kind).build(config, cache_dir)
