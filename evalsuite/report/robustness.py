"""The report's robustness section: every probe unit's metrics, a PDR chart, and examples with diffs.

Probe units (results with ``probe`` set, named "<probe>/<task>"; the hallucination probes have their own
section, :mod:`evalsuite.report.hallucination`) are grouped by family, one table each:

* perturbations (typo, homoglyph, invisible, synonym, ... ): the paired metrics of
  :mod:`evalsuite.probes.metrics` (pdr, clean, perturbed, drop, flip_rate, worst_case, changed) and the
  exact McNemar p of clean against the first changed copy;
* option order: the same, plus rstd and consistency (:mod:`evalsuite.probes.adversarial.options`);
* prompt format: spread, mean, best and worst score with the best and worst format by name, and every
  format's score, interval and example prompt folded under the row
  (:mod:`evalsuite.probes.adversarial.formats`);
* attacks: success rate, clean and under-attack accuracy, pdr, mean queries, perturbed-word share and
  the outcome counts (:mod:`evalsuite.probes.adversarial.attack`).

The chart draws every unit's performance drop rate 1 - perturbed / clean with its bootstrap interval:
right of zero the probe hurt, left of zero the perturbed copies scored better. Under the tables, each
variant against its baseline on every unit's compared metrics ("Variant vs base on probes",
:mod:`evalsuite.probes.comparisons`). The example browser's data are packed like the sample browser's
(:func:`~evalsuite.report.render.pack`) and decoded when opened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from evalsuite.probes.registry import kinds
from evalsuite.records import TaskResult
from evalsuite.report.examples import probe_examples
from evalsuite.report.probe_tables import comparisons_in, family_tables, probe_units
from evalsuite.report.render import Section, add_section, clean, pack, ticks
from evalsuite.rundir import RunDir

# metric -> (column heading, what it means)
METRICS = {
    "pdr": ("PDR", "performance drop rate 1 - perturbed / clean; above 0 the probe hurt"),
    "clean": ("clean", "mean score of the unchanged copies"),
    "perturbed": ("perturbed", "mean score of the changed copies"),
    "drop": ("drop", "clean - perturbed, per copy"),
    "flip_rate": ("flip rate", "share of changed copies whose answer differs from the clean answer"),
    "worst_case": ("worst case", "share of samples right in every copy"),
    "changed": ("changed", "share of copies whose text the probe did change"),
    "rstd": ("RStd", "standard deviation over gold positions of the recall there"),
    "consistency": ("consistency", "share of questions given the same answer in every order"),
    "spread": ("spread", "best - worst format score"),
    "mean": ("mean", "mean score over formats"),
    "best": ("best", "score of the best format"),
    "worst": ("worst", "score of the worst format"),
    "attack_success_rate": (
        "success rate",
        "attacked samples (clean answer right) whose answer the attack changed",
    ),
    "queries": ("queries", "mean model queries per attacked sample"),
    "perturbed_word_share": ("words changed", "mean share of words changed by a successful attack"),
}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: PDR undefined (no clean copy right)
    low: float | None
    high: float | None


@dataclass
class BarChart:
    bars: list[Bar]
    lo: float
    hi: float
    width: int = 760
    label_width: int = 330
    value_width: int = 150
    row_height: int = 24
    ticks: list[float] = field(default_factory=list)

    def x(self, value: float) -> float:
        """Pixel position; values past the axis sit at its edge (their numbers are printed beside)."""
        value = min(max(value, self.lo), self.hi)
        span = self.hi - self.lo or 1.0
        return self.label_width + (value - self.lo) / span * (
            self.width - self.label_width - self.value_width
        )


AXIS_FLOOR = -1.0


def pdr_chart(units: list[TaskResult]) -> BarChart | None:
    """One bar per (unit, model) with a PDR metric, its interval as a whisker; the zero line always shown."""
    bars = []
    for r in units:
        m = r.metrics.get("pdr")
        if m is None:
            continue
        value = _finite(m.value)
        low, high = (_finite(m.ci_low), _finite(m.ci_high)) if value is not None else (None, None)
        bars.append(Bar(clean(f"{r.task} · {r.model}"), value, low, high))
    if not bars:
        return None
    ends = [v for b in bars for v in (b.value, b.low, b.high) if v is not None]
    # PDR is at most 1 but unbounded below (a clean score near 0); the axis stops at AXIS_FLOOR so one
    # such unit does not squash every other bar
    lo, hi = max(min([*ends, 0.0]), AXIS_FLOOR), max([*ends, 0.0])
    pad = (hi - lo) * 0.06 or 0.05
    chart = BarChart(bars, lo - pad, hi + pad)
    chart.ticks = ticks(chart.lo, chart.hi)
    return chart


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def robustness(run: RunDir) -> Section | None:
    units = probe_units(run, "robustness")
    if not units:
        return None
    tables = family_tables(units, "robustness")
    names = list(dict.fromkeys(r.task for r in units))
    examples = probe_examples(run.samples, names)
    compared, skipped = comparisons_in(run, "robustness")
    data = {
        "tables": tables,
        "compared": compared,
        "skipped": skipped,
        "chart": pdr_chart(units),
        "names": labels(),
        "payload": pack(examples) if examples["examples"] else "",
        "examples": len(examples["examples"]),
    }
    return Section("robustness", "Robustness", "robustness", data)


add_section(robustness)


def labels() -> dict[str, tuple[str, str]]:
    """Every robustness column's heading and meaning: the shared ones here, and what the kinds add."""
    out = dict(METRICS)
    for kind in kinds():
        if kind.report.section == "robustness":
            out.update(kind.report.labels)
    return out
