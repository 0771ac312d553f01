"""Option order: every rotation of a multiple-choice question's options (Zheng et al. 2024, "Large
Language Models Are Not Robust Multiple Choice Selectors"); docs/probes.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from evalsuite.probes.kinds.perturbation import PAIRED
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe

METRICS = (*PAIRED, "rstd", "consistency")


class OptionOrderConfig(ProbeConfigBase):
    kind: Literal["option_order"]


class OptionOrderDetails(Details):
    rotation: int | None = None  # how far the options were rotated
    gold_position: int | None = None  # where the right option stands in this copy
    picked_position: int | None = None  # where the option the model picked stands in this copy


def build(config: OptionOrderConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.adversarial.options import OptionOrderProbe

    return OptionOrderProbe()


register(
    ProbeKind(
        name="option_order",
        summary="the answer options in every rotation",
        config=OptionOrderConfig,
        details=OptionOrderDetails,
        metrics=METRICS,
        build=build,
        report=ReportHooks(
            "robustness", Family("option_order", "Option order", METRICS, mcnemar=True), order=1
        ),
    )
)
