"""Self-consistency: sampled answers per question, their semantic entropy and how well it predicts a
wrong greedy answer (Farquhar et al. 2024; :mod:`evalsuite.probes.hallucination.consistency`);
docs/probes.md."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalsuite.probes.comparable import Auroc, Comparable, Mean, Rows
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord
    from evalsuite.report.worst_cases import Ranked

LABELS = {
    "auroc_semantic_entropy": (
        "AUROC (semantic entropy)",
        "how well semantic entropy predicts a wrong greedy answer; 0.5 is chance",
    ),
    "auroc_disagreement": (
        "AUROC (disagreement)",
        "how well disagreement with the greedy answer predicts a wrong one; 0.5 is chance",
    ),
    "accuracy": ("accuracy", "greedy answers right by the task's metric"),
    "semantic_entropy": ("semantic entropy", "mean entropy (nats) of the sampled answers' meaning clusters"),
}


class SelfConsistencyConfig(ProbeConfigBase):
    kind: Literal["self_consistency"]
    samples: int = Field(5, ge=2, le=100)  # sampled answers per question
    temperature: float = Field(0.7, gt=0, le=2)
    embedding: bool = True  # also use sentence embeddings (all-MiniLM-L6-v2) to cluster answers


class ConsistencyDetails(Details):
    samples: tuple[str, ...] = ()  # the sampled answers
    clusters: tuple[int, ...] = ()  # each sampled answer's meaning cluster
    greedy_cluster: int | None = None  # the greedy answer's


def build(config: SelfConsistencyConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.hallucination.consistency import ConsistencyProbe

    return ConsistencyProbe(config)


def worst_cases(records: Sequence[SampleRecord]) -> list[Ranked]:
    """Wrong greedy answers, the lowest semantic entropy (then disagreement) first: the confidently wrong."""
    from evalsuite.report import worst_cases as wc

    greedy = {r.doc_id: r for r in records if r.variant == "clean"}
    out: list[Ranked] = []
    for r in records:
        if r.variant != "sampled" or not wc.number(r.metrics.get("wrong")) > 0.5:  # NaN: not known wrong
            continue
        entropy = wc.number(r.metrics.get("semantic_entropy"))
        disagreement = wc.number(r.metrics.get("disagreement"))
        d = wc.details(r, ConsistencyDetails)
        drawn = [f"“{wc.plain(s, 200)}” [cluster {c}]" for s, c in zip(d.samples, d.clusters, strict=False)]
        cluster = "?" if d.greedy_cluster is None else d.greedy_cluster
        decision = (
            f"semantic entropy {entropy:.3f} · disagreement {disagreement:.2f} · greedy answer in cluster "
            f"{cluster} · sampled: {'; '.join(drawn) or 'none'}"
        )
        first = greedy.get(r.doc_id)
        answer = first.generation if first is not None and first.generation is not None else "?"
        label = "confidently wrong: every sample agrees" if entropy == 0 else "wrong"
        case = wc.case(r, label, wc.question(r), decision, wc.accepted(r.target), answer)
        out.append(((0.0, _finite(entropy), _finite(disagreement)), case))
    return out


def greedy_rows(records: Sequence[SampleRecord]) -> Rows:
    """Per question whose greedy answer was scored without error: that answer's score."""
    return {
        r.doc_id: (float(r.probe.score or 0.0),)
        for r in records
        if r.variant == "clean" and r.error is None and r.probe is not None
    }


def uncertainty_rows(score: str) -> Callable[[Sequence[SampleRecord]], Rows]:
    """Per question whose sampled answers were scored: its uncertainty ``score`` and whether its greedy
    answer was wrong (the rows of the score's AUROC)."""

    def rows(records: Sequence[SampleRecord]) -> Rows:
        return {
            r.doc_id: (float(r.metrics[score]), float(r.metrics["wrong"] > 0.5))
            for r in records
            if r.variant == "sampled" and r.error is None and "wrong" in r.metrics
            if math.isfinite(float(r.metrics[score]))
        }

    return rows


COMPARED = {
    "accuracy": Comparable(greedy_rows, Mean(), higher_is_better=True),
    **{
        f"auroc_{score}": Comparable(uncertainty_rows(score), Auroc(), higher_is_better=True)
        for score in ("semantic_entropy", "disagreement")
    },
}


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf  # a missing score sorts last


register(
    ProbeKind(
        name="self_consistency",
        summary="sampled answers, semantic entropy, AUROC of uncertainty for errors",
        config=SelfConsistencyConfig,
        details=ConsistencyDetails,
        metrics=tuple(LABELS),
        build=build,
        report=ReportHooks(
            "hallucination",
            Family("self_consistency", "Self-consistency", tuple(LABELS)),
            order=3,
            labels=LABELS,
            worst_cases=worst_cases,
        ),
        comparable=COMPARED,
    )
)
