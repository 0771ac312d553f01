"""Perturbation kinds: each sample's text changed ``seeds`` times by one perturbation (docs/probes.md).

The perturbers themselves are :mod:`evalsuite.probes.adversarial.perturbers`; the probe that applies them
is :mod:`evalsuite.probes.adversarial.perturbation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

from pydantic import Field

from evalsuite.probes.comparable import (
    CLEAN,
    COPIES,
    FLIPS,
    PERTURBED_MEAN,
    PERTURBED_SUM,
    Comparable,
    DropRate,
    Ratio,
    copy_rows,
)
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe

Severity = Literal["low", "medium", "high"]
PerturbationKind = Literal[
    "char_swap", "typo", "char_delete", "char_insert", "homoglyph", "invisible",  # one edit per word
    "contraction", "number", "word_delete", "synonym",  # words
    "helm",  # HELM's mix: lowercase, contractions, misspellings, extra spaces
    "tautology", "irrelevant", "misleading", "injection",  # sentences added to or inside the context
]  # fmt: skip
PERTURBATIONS: tuple[str, ...] = get_args(PerturbationKind)
SUMMARIES = {
    "char_swap": "two neighbouring characters swapped in changed words",
    "typo": "a neighbouring QWERTY key typed in changed words",
    "char_delete": "a character deleted from changed words",
    "char_insert": "a character inserted into changed words",
    "homoglyph": "a look-alike code point in changed words",
    "invisible": "a zero-width character inside changed words",
    "contraction": "contractions made or expanded",
    "number": "numbers changed",
    "word_delete": "words deleted",
    "synonym": "WordNet synonyms swapped in",
    "helm": "HELM's robustness mix",
    "tautology": "a tautology added",
    "irrelevant": "irrelevant sentences added",
    "misleading": "a sentence naming a wrong answer added",
    "injection": "an instruction to give a wrong answer injected",
}
PAIRED = ("pdr", "clean", "perturbed", "drop", "flip_rate", "worst_case", "changed")
# what a variant is compared with its baseline on, over the samples both scored in every copy
COMPARED = {
    "pdr": Comparable(copy_rows, DropRate(PERTURBED_MEAN, CLEAN), higher_is_better=False),
    "perturbed": Comparable(copy_rows, Ratio(PERTURBED_SUM, COPIES), higher_is_better=True),
    "flip_rate": Comparable(copy_rows, Ratio(FLIPS, COPIES), higher_is_better=False),
}


class PerturbationConfig(ProbeConfigBase):
    kind: PerturbationKind
    severity: Severity = "medium"
    seeds: int = Field(3, ge=1, le=100)  # perturbed copies per sample
    choices: bool = False  # perturb the answer options too
    fields: tuple[str, ...] | None = None  # document fields to perturb; default: those in the prompt

    group: ClassVar[str | None] = "the perturbation kinds"


class PerturbationDetails(Details):
    seed: int | None = None  # the copy's perturbation seed
    fields: tuple[str, ...] = ()  # the fields it changed


def build(config: PerturbationConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.adversarial.perturbation import PerturbationProbe

    return PerturbationProbe(config, cache_dir)


FAMILY = Family("perturbations", "Perturbations", PAIRED, mcnemar=True)
for _name in PERTURBATIONS:
    register(
        ProbeKind(
            name=_name,
            summary=SUMMARIES[_name],
            config=PerturbationConfig,
            details=PerturbationDetails,
            metrics=PAIRED,
            build=build,
            report=ReportHooks("robustness", FAMILY, order=0),
            comparable=COMPARED,
        )
    )
