"""The report's dynamic-evaluation section: generated items and fresh instances of benchmark problems.

* DyVal units (``dyval_arithmetic``, ``dyval_boolean``, ``dyval_deduction``): their metric table and a
  difficulty curve per unit, accuracy at each level with its interval, a line per model
  (:class:`Curve`);
* GSM-Symbolic units: per model the originals' accuracy against the fresh instances', the drop with its
  paired test by template, the spread over the drawn sets, and the Min-K%++ contamination signal with
  its caveats (:class:`SymbolicRow`);
* each variant against its baseline on the units' compared metrics, and the worst cases: the templates
  whose original was answered and whose fresh instances were not, the easiest generated items failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evalsuite.probes.registry import kinds
from evalsuite.records import GapTest, MetricResult, TaskResult
from evalsuite.report.probe_tables import comparisons_in, family_tables, probe_units
from evalsuite.report.render import Section, add_section, clean
from evalsuite.report.worst_cases import worst_cases
from evalsuite.rundir import RunDir

SERIES_COLOURS = ("#2f5fb3", "#c62828", "#2e7d32", "#8e24aa", "#ef6c00", "#00838f")


@dataclass(frozen=True)
class Point:
    level: int
    value: float
    low: float | None
    high: float | None
    n: int


@dataclass
class Series:
    model: str
    colour: str
    points: list[Point]

    @property
    def path(self) -> list[tuple[int, float]]:
        return [(p.level, p.value) for p in self.points]


@dataclass
class Curve:
    """Accuracy against difficulty level for one DyVal unit: a line per model, whiskers for intervals."""

    unit: str
    levels: list[int]
    series: list[Series] = field(default_factory=list)
    width: int = 420
    height: int = 260
    left: int = 46
    right: int = 16
    top: int = 14
    bottom: int = 42

    def x(self, level: float) -> float:
        """Pixels from the left: the levels evenly spaced, the first and last a step in from the edges."""
        span = self.width - self.left - self.right
        first, last = self.levels[0], self.levels[-1]
        position = 0.5 if last == first else (level - first) / (last - first)
        return round(self.left + span * (0.1 + 0.8 * position), 2)

    def y(self, accuracy: float) -> float:
        """Pixels from the top: accuracy 0 at the bottom of the plot, 1 at its top."""
        span = self.height - self.top - self.bottom
        return round(self.top + (1.0 - min(max(accuracy, 0.0), 1.0)) * span, 2)

    def polyline(self, series: Series) -> str:
        return " ".join(f"{self.x(level)},{self.y(value)}" for level, value in series.path)


def _level_of(metric: str) -> int | None:
    number = metric.removeprefix("level_")
    return int(number) if number != metric and number.isdigit() else None


def curves(units: list[TaskResult]) -> list[Curve]:
    """A curve per DyVal unit, from its ``level_<k>`` metrics, the models in the run's order."""
    out: dict[str, Curve] = {}
    for result in units:
        if result.probe is None or not result.probe.kind.startswith("dyval_"):
            continue
        points = [
            Point(level, m.value, m.ci_low, m.ci_high, m.n)
            for name, m in sorted(result.metrics.items())
            if (level := _level_of(name)) is not None and m.value is not None
        ]
        if not points:
            continue
        curve = out.setdefault(result.task, Curve(clean(result.task), []))
        colour = SERIES_COLOURS[len(curve.series) % len(SERIES_COLOURS)]
        curve.series.append(Series(clean(result.model), colour, sorted(points, key=lambda p: p.level)))
        curve.levels = sorted({*curve.levels, *(p.level for p in points)})
    return list(out.values())


@dataclass(frozen=True)
class SymbolicRow:
    """One GSM-Symbolic unit and model: the originals against the fresh instances."""

    unit: str
    model: str
    templates: int
    original: MetricResult | None
    fresh: MetricResult | None
    drop: MetricResult | None
    drop_test: GapTest | None
    sets: list[float]
    spread: MetricResult | None  # fresh_set_sd
    minkpp: MetricResult | None
    minkpp_test: GapTest | None
    notes: list[str]

    @property
    def set_range(self) -> tuple[float, float] | None:
        return (min(self.sets), max(self.sets)) if self.sets else None

    @property
    def set_sd(self) -> float | None:
        """The unit's ``fresh_set_sd`` (the probe computed it from the same sets)."""
        return self.spread.value if self.spread is not None else None


def symbolic_rows(units: list[TaskResult]) -> list[SymbolicRow]:
    rows = []
    for r in units:
        if r.probe is None or r.probe.kind != "gsm_symbolic":
            continue
        m, tests = r.metrics, r.probe.tests
        rows.append(
            SymbolicRow(
                clean(r.task),
                clean(r.model),
                r.probe.samples,
                m.get("original_accuracy"),
                m.get("fresh_accuracy"),
                m.get("drop"),
                tests.get("drop"),
                list(r.probe.sets),
                m.get("fresh_set_sd"),
                m.get("minkpp_gap"),
                tests.get("minkpp_gap"),
                [clean(n) for n in r.probe.notes],
            )
        )
    return rows


def dynamic(run: RunDir) -> Section | None:
    units = probe_units(run, "dynamic")
    if not units:
        return None
    compared, skipped = comparisons_in(run, "dynamic")
    names: dict[str, tuple[str, str]] = {}
    for kind in kinds():
        if kind.report.section == "dynamic":
            names.update(kind.report.labels)
    data = {
        "tables": family_tables(units, "dynamic"),
        "names": names,
        "curves": curves(units),
        "symbolic": symbolic_rows(units),
        "compared": compared,
        "skipped": skipped,
        "worst": worst_cases(run.samples, units),
    }
    return Section("dynamic", "Dynamic evaluation", "dynamic", data)


add_section(dynamic)
