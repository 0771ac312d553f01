"""``report.html``: one self-contained file a reviewer opens from disk; rendered from records alone.

Everything is inline (CSS, SVG, a little JavaScript) and nothing is fetched. Every string that came from
a model, a dataset or a config reaches the page through one of two doors, both safe:

* jinja2 with autoescaping, after :func:`clean` made control and direction-override characters visible;
* the sample browser's data: JSON, gzip-compressed and base64-encoded into an inert
  ``<script type="application/octet-stream">``, decoded in the browser and written with ``textContent``,
  never as HTML.

Samples load lazily (only when the browser section is opened), so a run with hundreds of thousands of
records still opens at once. Sections are built by functions in ``SECTIONS``; a section with no data
is left out, and probes add their own sections with ``add_section``.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

from evalsuite.gates import comparison_target
from evalsuite.records import Comparison, Results, SampleRecord
from evalsuite.report.quantization import (
    NOISE_FLOOR_LABEL,
    dash,
    human_bytes,
    model_storage,
    quantization_panel,
    signed,
    significant,
)
from evalsuite.rundir import RunDir

BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def clean(text: object) -> str:
    """Text safe to show: C0 controls as their control pictures (␛, ␀), direction overrides named."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch in "\n\t":
            out.append(ch)
        elif code < 0x20:
            out.append(chr(0x2400 + code))
        elif code == 0x7F:
            out.append("\u2421")
        elif ch in BIDI:
            out.append(f"[U+{code:04X}]")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"


@dataclass
class Section:
    """One block of the report: an anchor, a heading, and the template macro that draws it."""

    anchor: str
    title: str
    macro: str
    data: Any = None


FONT_SIZE = 11.0  # px: ``svg text`` in report.html.j2
LINE_HEIGHT = 13.0  # px between the lines of a wrapped label
LABEL_ROOM = 340.0  # px: a longer label wraps onto more lines
NARROW = set(" .,:;'|!iljfrt()[]{}-·")
WIDE = set("mwMW@%")


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """A generous estimate of ``text``'s width in px in the report's sans-serif at ``size`` px: at least
    DejaVu Sans's (wider than most sans-serifs) for ASCII; a full em for other characters, more for wide
    East Asian ones. (The page squeezes a line that a font still draws wider: never cut off.)"""
    ems = 0.0
    for ch in text:
        if ch in NARROW:
            ems += 0.42
        elif ch in WIDE:
            ems += 1.0
        elif ch.isascii():
            ems += 0.66 if ch.islower() or ch.isdigit() else 0.8 if ch.isupper() else 0.85
        elif unicodedata.combining(ch):
            continue
        else:
            ems += 1.1 if unicodedata.east_asian_width(ch) in "WF" else 1.0
    return ems * size * 1.05


def wrap(text: str, room: float) -> list[str]:
    """``text`` in lines no wider than ``room`` (by :func:`text_width`): broken at spaces, and a word too
    long for a line broken after ``-``, ``_``, ``.``, ``:`` or ``/`` where it can be, else anywhere."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        joined = f"{line} {word}" if line else word
        if text_width(joined) <= room:
            line = joined
            continue
        if line:
            lines.append(line)
        while text_width(word) > room:
            cut, used = 0, 0.0
            while cut < len(word) and (cut == 0 or used + text_width(word[cut]) <= room):
                used += text_width(word[cut])
                cut += 1
            soft = max(word.rfind(mark, 0, cut) for mark in "-_.:/")
            cut = soft + 1 if soft >= cut // 2 else cut
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    return [*lines, line] if line or not lines else lines


@dataclass
class ForestRow:
    label: str
    difference: float
    low: float
    high: float
    margin: float
    status: str  # pass | fail | inconclusive (non-inferiority)
    margin_text: str = ""  # "margin 0.1, from gate 'x'"
    lines: list[str] = field(default_factory=list)  # the label, wrapped
    y: float = 0.0  # the row's middle
    height: float = 26.0


@dataclass
class Forest:
    """A forest plot's geometry: the label column is as wide as its longest line, so nothing is cut off."""

    rows: list[ForestRow]
    lo: float
    hi: float
    label_width: float = 300.0
    plot_width: float = 420.0
    right: float = 20.0  # room right of the axis for the last tick's label
    top: float = 20.0
    ticks: list[float] = field(default_factory=list)

    @property
    def width(self) -> float:
        return self.label_width + self.plot_width + self.right

    @property
    def bottom(self) -> float:
        return self.top + sum(r.height for r in self.rows)

    @property
    def height(self) -> float:
        return self.bottom + 2 * FONT_SIZE

    def x(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.label_width + (value - self.lo) / span * self.plot_width

    def layout(self) -> None:
        """Wrap the labels, size the label column and the rows, and make room for the ticks' labels."""
        y = self.top
        for row in self.rows:
            row.lines = wrap(row.label, LABEL_ROOM)
            row.height = max(26.0, LINE_HEIGHT * len(row.lines) + 12)
            row.y = y + row.height / 2
            y += row.height
        widest = max(text_width(line) for row in self.rows for line in row.lines)
        self.label_width = math.ceil(widest) + 16.0
        self.ticks = ticks(self.lo, self.hi)
        self.right = max([20.0, *(text_width(f"{t:g}") / 2 + 6 for t in self.ticks)])


def forests(comparisons: Sequence[Comparison]) -> list[tuple[str, Forest]]:
    """One forest plot per metric, so accuracies and perplexities each get a readable scale."""
    metrics = list(dict.fromkeys(c.metric for c in comparisons))
    plots = [(m, forest([c for c in comparisons if c.metric == m])) for m in metrics]
    return [(m, plot) for m, plot in plots if plot is not None]


def forest(comparisons: Sequence[Comparison]) -> Forest | None:
    """Each variant's change from its baseline with its interval, the zero line and the margin."""
    rows = []
    for c in comparisons:
        sign = 1.0 if c.higher_is_better else -1.0  # plot the improvement: right is better
        low, high = sorted((sign * c.ci_low, sign * c.ci_high))
        ni = c.non_inferiority
        status = "pass" if ni.non_inferior else ("fail" if high < -ni.margin else "inconclusive")
        label = f"{c.variant} vs {c.baseline} · {c.task}"
        row = ForestRow(
            clean(label), sign * c.difference, low, high, ni.margin, status, clean(ni.margin_text)
        )
        rows.append(row)
    if not rows:
        return None
    lo = min(min(r.low for r in rows), min(-r.margin for r in rows), 0.0)
    hi = max(max(r.high for r in rows), 0.0)
    pad = (hi - lo) * 0.08 or 0.01
    plot = Forest(rows, lo - pad, hi + pad)
    plot.layout()
    return plot


def ticks(lo: float, hi: float) -> list[float]:
    """About six round values between ``lo`` and ``hi`` for an axis."""
    raw = (hi - lo) / 6
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step) + 1)]


def sample_payload(samples: Sequence[SampleRecord], results: Results) -> str:
    """Samples as compact JSON (prompts deduplicated), gzip-compressed, base64-encoded."""
    models = sorted({s.model for s in samples})
    tasks = sorted({s.task for s in samples})
    prompts: dict[str, int] = {}
    rows = []
    for s in samples:
        prompt = prompts.setdefault(s.prompt, len(prompts))
        choices = [[clean(c.text), c.loglikelihood, c.is_greedy] for c in s.choices] if s.choices else None
        rows.append(
            [
                models.index(s.model),
                tasks.index(s.task),
                s.doc_id,
                prompt,
                clean(_short_json(s.target)),
                choices,
                None if s.generation is None else clean(s.generation),
                None if s.filtered is None else clean(_short_json(s.filtered)),
                s.loglikelihood,
                {k: v for k, v in s.metrics.items() if isinstance(v, int | float)},
                None if s.error is None else clean(s.error),
                s.variant,
            ]
        )
    # a probe unit's samples are scored by the probe's per-sample metric, not by the unit's headline one
    primary = {r.task: r.probe.metric if r.probe else r.primary_metric for r in results.results}
    pairs = [[c.baseline, c.variant] for c in results.comparisons]
    document = {
        "models": models,
        "tasks": tasks,
        "primary": primary,
        "pairs": [list(p) for p in dict.fromkeys(tuple(p) for p in pairs)],
        "prompts": [clean(p) for p in prompts],
        "rows": rows,
    }
    return pack(document)


def pack(document: Any) -> str:
    """JSON, gzip-compressed, base64-encoded: data for an inert script element, decoded in the browser."""
    raw = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def _short_json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


SectionBuilder = Callable[[RunDir], Section | None]


def _verdict(run: RunDir) -> Section | None:
    verdict = run.results.gates
    if verdict is None:
        return None
    return Section(
        "verdict", "Verdict", "verdict", {"verdict": verdict, "margins": judged_margins(run.results)}
    )


def judged_margins(results: Results) -> list[str]:
    """The non-inferiority margins the verdict's checks judged comparisons with, each once, with where
    each comes from: the banner names them, as the comparison table does."""
    checked = {c.target for c in results.gates.checks} if results.gates else set()
    judged = [c for c in results.comparisons if comparison_target(c) in checked]
    return list(dict.fromkeys(c.non_inferiority.margin_text for c in judged))


def _models(run: RunDir) -> Section | None:
    models = run.manifest.models
    if not models:
        return None
    storage = {name: model_storage(run.manifest, name) for name in models}
    return Section("models", "Models", "models", {"models": models, "storage": storage})


def _results(run: RunDir) -> Section | None:
    results = [r for r in run.results.results if r.probe is None]  # probe units have their own sections
    if not results:
        return None
    models = list(dict.fromkeys(r.model for r in results))
    tasks = list(dict.fromkeys(r.task for r in results))
    cells = {(r.model, r.task): r for r in results}
    return Section("results", "Results", "results", {"models": models, "tasks": tasks, "cells": cells})


def _quantization(run: RunDir) -> Section | None:
    panel = quantization_panel(run)
    if panel is None:
        return None
    data = {"panel": panel, "noise_label": NOISE_FLOOR_LABEL}
    return Section("quantization", "Quantization", "quantization", data)


def _comparisons(run: RunDir) -> Section | None:
    if not run.results.comparisons and not run.results.skipped_comparisons:
        return None
    data = {
        "forests": forests(run.results.comparisons),
        "rows": run.results.comparisons,
        "skipped": run.results.skipped_comparisons,
    }
    return Section("comparisons", "Comparisons", "comparisons", data)


def _samples(run: RunDir) -> Section | None:
    return Section("samples", "Samples", "samples", len(run.samples)) if run.samples else None


def _manifest(run: RunDir) -> Section:
    config = json.dumps(run.manifest.config, indent=2, ensure_ascii=False)
    return Section("manifest", "Manifest", "manifest", {"manifest": run.manifest, "config": config})


# Probes (robustness, hallucination) add their sections with add_section: before "manifest".
SECTIONS: list[SectionBuilder] = [
    _verdict,
    _models,
    _results,
    _quantization,
    _comparisons,
    _samples,
    _manifest,
]


def add_section(builder: SectionBuilder) -> None:
    """Register a section builder (once), placed before the manifest."""
    if builder not in SECTIONS:
        SECTIONS.insert(SECTIONS.index(_manifest), builder)


def _environment() -> jinja2.Environment:
    loader = jinja2.PackageLoader("evalsuite.report", "templates")
    environment = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters.update(
        clean=clean, fmt=fmt, dash=dash, human_bytes=human_bytes, signed=signed, significant=significant
    )
    return environment


def render_report(run: RunDir) -> str:
    sections = [s for s in (build(run) for build in SECTIONS) if s is not None]
    template = _environment().get_template("report.html.j2")
    payload = sample_payload(run.samples, run.results) if run.samples else ""
    return template.render(run=run, sections=sections, payload=payload)
