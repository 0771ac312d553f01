"""``summary.md``: the run in a few Markdown tables, fit for a pull-request comment or a CI step summary."""

from __future__ import annotations

import html
from collections.abc import Sequence

from evalsuite.records import Comparison, ProbeComparison, Results, TaskResult, Verdict
from evalsuite.report.render import judged_margins

ICONS = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}


def cell(text: object) -> str:
    """A table cell that cannot break the table or inject markup: escaped HTML, no pipes or newlines."""
    value = html.escape(str(text), quote=False).replace("|", "\\|")
    return " ".join(value.split())


def summary_markdown(results: Results, edits: Sequence[str] = ()) -> str:
    """``edits``: changes made to the run directory after the run (accepted with --accept-edits)."""
    lines = [f"# evalsuite: {cell(results.run)}", ""]
    if edits:
        what = cell("; ".join(edits))
        lines += [f"> ⚠️ **Edited after the run** (accepted with `--accept-edits`): {what}", ""]
    if results.gates is not None:
        lines += _gates(results.gates, judged_margins(results))
    lines += _results(results.results)
    if results.comparisons:
        lines += _comparisons(results.comparisons)
    if results.probe_comparisons:
        lines += _probe_comparisons(results.probe_comparisons)
    return "\n".join(lines).rstrip() + "\n"


def _gates(verdict: Verdict, margins: Sequence[str]) -> list[str]:
    head = "**Verdict: pass**" if verdict.passed else "**Verdict: fail**"
    rows = [
        f"| {ICONS[c.status]} | {cell(c.gate)} | {cell(c.target)} | {cell(c.reason)} |"
        for c in verdict.checks
    ]
    judged = f"; non-inferiority {cell('; '.join(margins))}" if margins else ""
    note = f"(inconclusive checks count as {verdict.inconclusive_policy}{judged})"
    return [f"{head} {note}", "", "| status | gate | checked | reason |", "|---|---|---|---|", *rows, ""]


def _results(results: Sequence[TaskResult]) -> list[str]:
    rows = []
    for r in results:
        for name, m in r.metrics.items():
            if name != r.primary_metric and r.primary_metric is not None:
                continue
            interval = "" if m.ci_low is None or m.ci_high is None else f"[{m.ci_low:.4f}, {m.ci_high:.4f}]"
            value = "—" if m.value is None else f"{m.value:.4f}"
            rows.append(f"| {cell(r.model)} | {cell(r.task)} | {cell(name)} | {value} | {interval} | {m.n} |")
    return [
        "## Results (primary metric, 95% interval)",
        "",
        "| model | task | metric | value | interval | n |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _comparisons(comparisons: Sequence[Comparison]) -> list[str]:
    rows = []
    for c in comparisons:
        ni = "yes" if c.non_inferiority.non_inferior else "no"
        p = "—" if c.p_adjusted is None else f"{c.p_adjusted:.4g}"
        rows.append(
            f"| {cell(c.variant)} vs {cell(c.baseline)} | {cell(c.task)} | {c.difference:+.4f} "
            f"| [{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {p} | {ni} ({cell(c.non_inferiority.margin_text)}) "
            f"| {cell(c.reading)} |"
        )
    adjust = comparisons[0].adjustment
    return [
        f"## Comparisons (variant - baseline; p adjusted by {adjust})",
        "",
        "| models | task | difference | interval | p adj | non-inferior | reading |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _probe_comparisons(comparisons: Sequence[ProbeComparison]) -> list[str]:
    rows = []
    for c in comparisons:
        p = "—" if c.p_adjusted is None else f"{c.p_adjusted:.4g}"
        rows.append(
            f"| {cell(c.variant)} vs {cell(c.baseline)} | {cell(c.unit)} | {cell(c.metric)} "
            f"| {c.baseline_value:.4f} → {c.variant_value:.4f} | {c.difference:+.4f} "
            f"| [{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {p} | {cell(c.reading)} |"
        )
    adjust = comparisons[0].adjustment
    return [
        f"## Variant vs base on probes (variant - baseline; p adjusted by {adjust} over these)",
        "",
        "| models | probe unit | metric | baseline → variant | difference | interval | p adj | reading |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
