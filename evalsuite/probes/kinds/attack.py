"""Adaptive attacks: a TextAttack recipe searches, within a query budget, for an edit that flips the
model's answer (the recipes are :data:`evalsuite.probes.adversarial.attack.RECIPES`); docs/probes.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalsuite.probes.comparable import Comparable, DropRate, Ratio, Rows
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord

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


TRIED, SURVIVED, SUCCEEDED = range(3)  # the columns of attack_rows


def attack_rows(records: Sequence[SampleRecord]) -> Rows:
    """Per attacked sample (its ``attack`` record, without error): was it attacked (its clean answer
    was right, so it was not skipped), did its answer survive the attack, did the attack succeed."""
    out = {}
    for r in records:
        if r.variant == "attack" and r.error is None and r.probe is not None:
            status = r.probe.details_as(AttackDetails).status
            survived = status in ("failed", "maximized")
            out[r.doc_id] = (float(status != "skipped"), float(survived), float(status == "success"))
    return out


COMPARED = {
    "attack_success_rate": Comparable(attack_rows, Ratio(SUCCEEDED, TRIED), higher_is_better=False),
    "pdr": Comparable(attack_rows, DropRate(SURVIVED, TRIED), higher_is_better=False),
}


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
        comparable=COMPARED,
    )
)
