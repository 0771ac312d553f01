"""The probe-kind registry: every kind declared once, found by name, validated through its own Config,
and read back through its own Details."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evalsuite.config import probe_config
from evalsuite.errors import ConfigError, DataError
from evalsuite.probes.kinds.attack import AttackDetails
from evalsuite.probes.kinds.fabricated import FabricatedDetails
from evalsuite.probes.registry import PROBE_KINDS, families, kinds, probe_kind
from evalsuite.records import ProbeDetail
from tests.conftest import REPO

PERTURBATIONS = [
    "char_swap", "typo", "char_delete", "char_insert", "homoglyph", "invisible", "contraction", "number",
    "word_delete", "synonym", "helm", "tautology", "irrelevant", "misleading", "injection",
]  # fmt: skip
OTHERS = ["option_order", "prompt_format", "attack"]
HALLUCINATION = ["fabricated", "unanswerable", "halueval", "self_consistency", "calibration", "faithfulness"]
DYNAMIC = ["dyval_arithmetic", "dyval_boolean", "dyval_deduction", "gsm_symbolic"]


def test_every_kind_is_registered_once() -> None:
    everything = [*PERTURBATIONS, *OTHERS, *HALLUCINATION, *DYNAMIC]
    assert sorted(kind.name for kind in kinds()) == sorted(everything)
    assert list(PROBE_KINDS) == sorted(PROBE_KINDS)  # listed by name


def test_sections_hold_their_tables_in_order() -> None:
    robustness = families("robustness")
    assert [family.key for family, _ in robustness] == ["perturbations", *OTHERS]
    assert sorted(robustness[0][1]) == sorted(PERTURBATIONS)  # one table for the fifteen perturbations
    assert [family.key for family, _ in families("hallucination")] == HALLUCINATION
    dynamic = families("dynamic")
    assert [family.key for family, _ in dynamic] == ["dyval", "gsm_symbolic"]
    assert sorted(dynamic[0][1]) == DYNAMIC[:3]  # one table for the three DyVal families


def test_an_unknown_kind_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown probe kind 'tpyo' \(did you mean 'typo'\?\)"):
        probe_kind("tpyo")


def test_settings_are_the_kinds_own_keys_in_declaration_order() -> None:
    typo = probe_config({"kind": "typo", "tasks": ["a"], "seeds": 2, "fields": ["question"]})
    assert typo.settings() == {"severity": "medium", "seeds": 2, "choices": False, "fields": ["question"]}
    attack = probe_config({"kind": "attack", "tasks": ["a"], "recipe": "pruthi"})
    assert attack.settings() == {"fields": None, "recipe": "pruthi", "query_budget": 200}
    assert probe_config({"kind": "calibration", "tasks": ["a"]}).settings() == {}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "halueval", "embedding": False}, "'embedding' does not apply to kind 'halueval' "
         "(only to fabricated, self_consistency, unanswerable)"),
        ({"kind": "fabricated", "seeds": 2}, "'seeds' does not apply to kind 'fabricated' "
         "(only to the perturbation kinds)"),
        ({"kind": "calibration", "tasks": ["a"], "fields": ["x"]}, "'fields' does not apply to kind "
         "'calibration' (only to attack, the perturbation kinds)"),
        ({"kind": "typo", "tasks": ["a"], "sede": 3}, "unknown key 'sede'"),
    ],
)  # fmt: skip
def test_a_key_of_another_kind_names_the_kinds_that_read_it(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="validation error") as caught:
        probe_config(entry)
    assert message in str(caught.value)


def test_details_are_read_through_the_kinds_model() -> None:
    detail = ProbeDetail(
        probe="fabricated",
        kind="fabricated",
        task="",
        original="Who founded Veltrano Industries?",
        perturbed="Who founded Veltrano Industries?",
        details={"fabricated": True, "category": "organisation", "entity": "Veltrano Industries",
                 "abstained": False, "rule": None, "similarity": 0.31, "retired_key": 1},
    )  # fmt: skip
    typed = detail.details_as(FabricatedDetails)
    assert (typed.fabricated, typed.category, typed.similarity, typed.abstained) == (
        True,
        "organisation",
        0.31,
        False,
    )
    assert FabricatedDetails().category == "entity"  # a record without the key reads the default


def test_details_that_do_not_fit_are_a_data_error_naming_the_key() -> None:
    detail = ProbeDetail(
        probe="attack", kind="attack", task="sst2_local", original="a", perturbed="b",
        details={"status": "exploded", "queries": 3},
    )  # fmt: skip
    with pytest.raises(DataError, match=r"probe 'attack': details\.status: Input should be 'success'"):
        detail.details_as(AttackDetails)


def test_importing_every_kind_imports_no_model_library() -> None:
    code = (
        "import sys\n"
        "from evalsuite.probes.registry import kinds\n"
        "assert len(kinds()) == 28\n"
        "heavy = {'torch', 'transformers', 'lm_eval', 'textattack', 'nltk', 'datasets'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"
