"""Prompt format: the same questions under formats sampled from a grammar of separators, casing and
spacing (Sclar et al. 2024, FormatSpread); docs/probes.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalsuite.probes.comparable import Comparable, GrandMean, Spread
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord

METRICS = ("spread", "mean", "best", "worst")


class PromptFormatConfig(ProbeConfigBase):
    kind: Literal["prompt_format"]
    formats: int = Field(8, ge=2, le=200)  # prompt formats sampled from the grammar


class FormatDetails(Details):
    format: int = 0  # the format's index among those sampled
    description: str = ""  # how the format writes the prompt


def build(config: PromptFormatConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.adversarial.formats import FormatProbe

    return FormatProbe(config.formats)


def format_rows(records: Sequence[SampleRecord]) -> dict[int, tuple[float, ...]]:
    """Per sample (doc_id) scored in every format without error: its score in each format, in format
    order (the rows of the unit's ``spread`` and ``mean``)."""
    by_doc: dict[int, dict[int, float | None]] = {}
    for record in records:
        if record.probe is not None:
            score = record.probe.score if record.error is None else None
            by_doc.setdefault(record.doc_id, {})[record.probe.details_as(FormatDetails).format] = score
    count = max((len(g) for g in by_doc.values()), default=0)
    return {
        doc: tuple(float(g[j] or 0.0) for j in range(count))
        for doc, g in by_doc.items()
        if len(g) == count and all(score is not None for score in g.values())
    }


COMPARED = {
    "spread": Comparable(format_rows, Spread(), higher_is_better=False),
    "mean": Comparable(format_rows, GrandMean(), higher_is_better=True),
}


register(
    ProbeKind(
        name="prompt_format",
        summary="the same questions under sampled prompt formats",
        config=PromptFormatConfig,
        details=FormatDetails,
        metrics=METRICS,
        build=build,
        report=ReportHooks(
            "robustness", Family("prompt_format", "Prompt format", METRICS, formats=True), order=2
        ),
        comparable=COMPARED,
    )
)
