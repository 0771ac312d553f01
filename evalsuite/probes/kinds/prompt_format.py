"""Prompt format: the same questions under formats sampled from a grammar of separators, casing and
spacing (Sclar et al. 2024, FormatSpread); docs/probes.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe

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
    )
)
