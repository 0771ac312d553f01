"""Adaptive attacks: a TextAttack recipe searches, within a query budget, for an edit that flips the
model's answer (the recipes are :data:`evalsuite.probes.adversarial.attack.RECIPES`); docs/probes.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe

AttackRecipe = Literal["deepwordbug", "pruthi", "textbugger"]
METRICS = ("attack_success_rate", "clean", "perturbed", "pdr", "queries", "perturbed_word_share")


class AttackConfig(ProbeConfigBase):
    kind: Literal["attack"]
    fields: tuple[str, ...] | None = None  # document fields to attack; default: those in the prompt
    recipe: AttackRecipe = "deepwordbug"
    query_budget: int = Field(200, ge=1)  # model queries per attacked sample


AttackStatus = Literal["success", "failed", "skipped", "maximized"]  # how an attack on a sample ended


class AttackDetails(Details):
    status: AttackStatus = "failed"
    queries: int = 0  # model queries the attack spent
    perturbed_words: int = 0
    words: int = 0
    perturbed_word_share: float = 0.0


def build(config: AttackConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.adversarial.attack import AttackProbe

    return AttackProbe(config, cache_dir)


register(
    ProbeKind(
        name="attack",
        summary="a TextAttack recipe searching for an edit that flips the answer",
        config=AttackConfig,
        details=AttackDetails,
        metrics=METRICS,
        build=build,
        report=ReportHooks(
            "robustness", Family("attack", "Adaptive attacks", METRICS, outcomes=True), order=3
        ),
    )
)
