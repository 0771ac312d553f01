"""A hand-built run directory with robustness probes of all four families, and hostile text in them.

Two models, "small" compared with "base" on every probe unit; a plain task (``arc_local``) and five
probe units: two perturbations (homoglyph, with 25 samples so the example browser has to choose, and
invisible), option order, prompt format and an attack. Originals, perturbed copies, answers, details,
format names and example prompts carry the hostile strings of ``conftest.HOSTILE`` and bidi overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalsuite.config import StatsSettings
from evalsuite.probes.comparisons import build_probe_comparisons
from evalsuite.records import (
    Discordant,
    FormatScore,
    McNemarResult,
    MetricResult,
    ProbeDetail,
    ProbeSummary,
    Results,
    SampleRecord,
    TaskResult,
    write_json,
    write_samples,
)
from evalsuite.report import render_report
from evalsuite.rundir import load_run
from tests.report.conftest import HOSTILE
from tests.test_manifest import manifest_json

MODELS = ("base", "small")
BIDI = "right-to-left \u202eevil\u202c and \u2066isolate\u2069"
PAIRED = ("pdr", "clean", "perturbed", "drop", "flip_rate", "worst_case", "changed")
UNITS = {  # unit -> (kind, metrics, samples)
    "homoglyph/arc_local": ("homoglyph", PAIRED, 25),
    "invisible/arc_local": ("invisible", PAIRED, 4),
    "option_order/mmlu_local": ("option_order", (*PAIRED, "rstd", "consistency"), 3),
    "prompt_format/boolq_local": ("prompt_format", ("spread", "mean", "best", "worst"), 3),
    "attack/sst2_local": (
        "attack",
        ("attack_success_rate", "clean", "perturbed", "pdr", "queries", "perturbed_word_share"),
        4,
    ),
}
FORMATS = (
    "Question: {question}\\nAnswer:",
    "<script>window.__pwned = 8</script> {question}",
    "Q - {question}",
)


def metric(value: float | None, low: float | None = None, high: float | None = None) -> MetricResult:
    return MetricResult(
        value=value,
        stderr=None,
        ci_low=low,
        ci_high=high,
        ci_method="bootstrap",
        n=4,
        n_errors=0,
        higher_is_better=True,
        aggregation="mean",
    )


def text(doc: int) -> str:
    return f"Q{doc}: Which gas do plants absorb? {HOSTILE[doc % len(HOSTILE)]} {BIDI}"


def perturb(kind: str, doc: int, copy: str) -> str:
    original = text(doc)
    if kind == "homoglyph":
        return original.replace("gas", "g\u0430s", 1)  # Cyrillic a
    if kind == "invisible":
        return original.replace("plants", "pla\u200bnts", 1).replace("absorb", "abs\ufeffo\u2060rb", 1)
    if kind == "option_order":
        return original + "\nA. <b>oxygen</b>\nB. carbon dioxide" if copy.endswith("1") else original
    if kind == "prompt_format":
        return f"{FORMATS[int(copy[-1])].split('{')[0]}{original}\nAnswer:"
    return original.replace("plants", "p1ants").replace("Which", "Whcih")  # attack


def copies(kind: str) -> list[str]:
    return {
        "option_order": ["clean", "rotation-1", "rotation-2"],
        "prompt_format": ["format-0", "format-1", "format-2"],
        "attack": ["clean", "attack"],
    }.get(kind, ["clean", "seed-0"])


def details(kind: str, variant: str) -> dict[str, Any]:
    if kind == "attack" and variant == "attack":
        return {
            "status": "success",
            "queries": 17,
            "perturbed_words": 2,
            "words": 9,
            "perturbed_word_share": 0.22,
        }
    if kind == "prompt_format":
        return {"format": int(variant[-1]), "description": FORMATS[int(variant[-1])]}
    return {} if variant == "clean" else {"seed": 3, "note": HOSTILE[0]}


def records(unit: str, kind: str, samples: int, model: str) -> list[SampleRecord]:
    out = []
    for doc in range(samples):
        for variant in copies(kind):
            flip = variant != "clean" and variant != "format-0" and (doc + MODELS.index(model)) % 3 == 0
            score = 0.0 if flip else 1.0
            answer: Any = 2 if flip else 1
            if kind == "prompt_format":
                answer = "<img src=x onerror=window.__pwned=9>" if flip else "yes"
            original = text(doc)
            perturbed = original if variant == "clean" else perturb(kind, doc, variant)
            probe = ProbeDetail(
                probe=unit.split("/")[0],
                kind=kind,
                task=unit.split("/")[1],
                original=original,
                perturbed=perturbed,
                answer=answer,
                score=score,
                details=details(kind, variant),
            )
            out.append(
                SampleRecord(
                    model=model,
                    task=unit,
                    doc_id=doc,
                    variant=variant,
                    prompt=perturbed + "\nAnswer:",
                    target=1,
                    metrics={"acc": score},
                    probe=probe,
                )
            )
    return out


def result(unit: str, kind: str, metrics: tuple[str, ...], samples: int, model: str) -> TaskResult:
    sign = -1.0 if (model, kind) == ("small", "option_order") else 1.0  # one unit scores better perturbed
    values = {name: metric(0.6, 0.4, 0.8) for name in metrics}
    if "pdr" in values:
        values["pdr"] = metric(sign * 0.25, sign * 0.25 - 0.2, sign * 0.25 + 0.15)
    mcnemar = McNemarResult(
        discordant=Discordant(both=1, baseline_only=2, variant_only=0, neither=1), p_value=0.5
    )
    formats = [
        FormatScore(format=f, example=f"{f}\n{text(0)}", value=0.8 - 0.2 * i, ci_low=0.1, ci_high=0.9, n=3)
        for i, f in enumerate(FORMATS)
    ]
    family = {"option_order": kind, "prompt_format": kind, "attack": kind}.get(kind, "perturbation")
    summary = ProbeSummary(
        probe=unit.split("/")[0],
        kind=kind,
        task=unit.split("/")[1],
        metric="acc",
        samples=samples,
        mcnemar=mcnemar if family in ("perturbation", "option_order") else None,
        formats=formats if kind == "prompt_format" else [],
        best_format=FORMATS[0] if kind == "prompt_format" else None,
        worst_format=FORMATS[-1] if kind == "prompt_format" else None,
        settings={"outcomes": {"success": 2, "failed": 1, "skipped": 1, "maximized": 0}}
        if kind == "attack"
        else {},
    )
    primary = metrics[0] if kind != "option_order" else "consistency"
    return TaskResult(
        model=model,
        task=unit,
        output_type="multiple_choice",
        num_fewshot=0,
        primary_metric=primary,
        metrics=values,
        probe=summary,
    )


def write_probe_run(folder: Path) -> Path:
    """The run directory, with report.html rendered from it; returns its path."""
    run = folder / "robust"
    results = plain_results()
    samples = [
        SampleRecord(model=m, task="arc_local", doc_id=0, prompt=text(0), target=1, metrics={"acc": 1.0})
        for m in MODELS
    ]
    for unit, (kind, metrics, count) in UNITS.items():
        for model in MODELS:
            results.append(result(unit, kind, metrics, count, model))
            samples += records(unit, kind, count, model)
    return write_run(run, results, samples)


def plain_results() -> list[TaskResult]:
    """Each model's result on a plain task, ``arc_local`` (no probe)."""
    return [
        TaskResult(
            model=m,
            task="arc_local",
            output_type="multiple_choice",
            num_fewshot=0,
            primary_metric="acc",
            metrics={"acc": metric(0.5, 0.3, 0.7)},
        )
        for m in MODELS
    ]


def write_run(run: Path, results: list[TaskResult], samples: list[SampleRecord]) -> Path:
    """A run directory named after its folder, with report.html rendered from its records, "small"
    compared with "base" on every probe unit; returns it."""
    probed = build_probe_comparisons([MODELS], results, samples, StatsSettings(resamples=200), 0)
    document = Results(
        run=run.name,
        results=results,
        probe_comparisons=probed.comparisons,
        skipped_probe_comparisons=probed.skipped,
    )
    write_json(run / "manifest.json", manifest_json(run.name, models={}, tasks={}))
    write_json(run / "results.json", document.model_dump(mode="json", by_alias=True))
    write_samples(run / "samples.jsonl", samples)
    (run / "report.html").write_text(render_report(load_run(run)), encoding="utf-8")
    return run
