"""A hand-built run directory whose comparisons have long model and task names, for the forest plot.

Model names as long as a quantization recipe, a task name with spaces, wide (CJK) characters and accents,
two metrics (so two plots), and margins from a gate, a task and ``stats.margin``.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite.records import (
    Comparison,
    MetricResult,
    NonInferiorityResult,
    PowerResult,
    Results,
    SampleRecord,
    TaskResult,
    write_json,
    write_samples,
)
from evalsuite.report import render_report
from evalsuite.rundir import load_run
from tests.test_manifest import manifest_json

BASE = "Meta-Llama-3.1-8B-Instruct-bf16-reference-checkpoint-from-the-hub-revision-" + "5206a32e0bd3" * 4
VARIANT = "Meta-Llama-3.1-8B-Instruct-Q4_K_M-imatrix-calibrated-on-wikitext-103-with-2048-token-windows-v2"
SHORT = "int8"
TASKS = {
    "acc": "arc_challenge_local",
    "exact_match": "長い名前のタスク with spaces, accents (réponse, naïve) and " + "W" * 32,
}
PAIRS = ((BASE, VARIANT), (BASE, SHORT), (VARIANT, SHORT))


def comparison(task: str, metric: str, baseline: str, variant: str, shift: float, source: str) -> Comparison:
    margin = 0.1 if source.startswith("gate") else 0.02
    low, high = shift - 0.08, shift + 0.06
    return Comparison(
        task=task,
        metric=metric,
        baseline=baseline,
        variant=variant,
        method="mid-p McNemar; Tango score interval agreeing with it",
        n=200,
        higher_is_better=True,
        baseline_value=0.5,
        variant_value=0.5 + shift,
        difference=shift,
        ci_low=low,
        ci_high=high,
        confidence=0.95,
        p_value=0.5,
        p_adjusted=0.5,
        non_inferiority=NonInferiorityResult(
            margin=margin,
            alpha=0.05,
            lower_bound=low + 0.01,
            non_inferior=low + 0.01 > -margin,
            source=source,
        ),
        power=PowerResult(
            target=0.8, effect=margin, power_at_effect=0.5, mde=0.07, n_needed=400, underpowered=True
        ),
        reading="underpowered",
    )


def write_forest_run(folder: Path) -> Path:
    """The run directory, with report.html rendered from it; returns its path."""
    run = folder / "forest"
    sources = ("gate 'quantization is safe'", "task 'arc_challenge_local'", "stats.margin")
    comparisons = [
        comparison(task, metric, baseline, variant, -0.03 * i, sources[i])
        for metric, task in TASKS.items()
        for i, (baseline, variant) in enumerate(PAIRS)
    ]
    metric = MetricResult(
        value=0.5, stderr=0.03, n=200, n_errors=0, higher_is_better=True, aggregation="mean"
    )
    results = [
        TaskResult(
            model=m,
            task=t,
            output_type="multiple_choice",
            num_fewshot=0,
            primary_metric=name,
            metrics={name: metric},
        )
        for m in (BASE, VARIANT, SHORT)
        for name, t in TASKS.items()
    ]
    samples = [
        SampleRecord(model=m, task=t, doc_id=0, prompt="p")
        for m in (BASE, VARIANT, SHORT)
        for t in TASKS.values()
    ]
    write_json(run / "manifest.json", manifest_json(run.name, models={}, tasks={}))
    document = Results(run=run.name, results=results, comparisons=comparisons)
    write_json(run / "results.json", document.model_dump(mode="json", by_alias=True))
    write_samples(run / "samples.jsonl", samples)
    (run / "report.html").write_text(render_report(load_run(run)), encoding="utf-8")
    return run
