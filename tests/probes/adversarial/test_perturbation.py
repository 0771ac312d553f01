"""Perturbation probes through `evalsuite run` with the real tiny model: one entry per family of kinds
on SST-2, BoolQ, ARC and a generation task; the records, the metrics, the few-shot prefix, determinism,
and the configs refused before any model loads."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import cli
from evalsuite.probes.adversarial import textattack_env
from evalsuite.probes.adversarial.distractors import TAUTOLOGY
from evalsuite.probes.adversarial.perturbers import DISTRACTORS
from evalsuite.probes.adversarial.textattack_env import WORDNET_SOURCE
from evalsuite.records import SampleRecord, read_samples
from tests.conftest import STORIES

PAIRED_METRICS = ("pdr", "clean", "perturbed", "drop", "flip_rate", "worst_case", "changed")

HAS_WORDNET = (WORDNET_SOURCE / "data.noun").is_file()
LIMIT = 3
SEEDS = 2
GEN_LIMIT = 2
SEED = 11
ZERO_WIDTH = "\u200b\u200c\u200d\u2060"

EACH = {"limit": LIMIT, "seeds": SEEDS}
PROBES: list[dict[str, Any]] = [
    {"kind": "typo", "tasks": ["sst2_local", "boolq_local", "arc_challenge_local"], **EACH},
    {"kind": "invisible", "tasks": ["sst2_local"], **EACH},
    {"kind": "word_delete", "tasks": ["boolq_local"], "num_fewshot": 1, **EACH},
    *([{"kind": "synonym", "tasks": ["sst2_local", "arc_challenge_local"], **EACH}] if HAS_WORDNET else []),
    {"kind": "helm", "tasks": ["arc_challenge_local"], **EACH},
    {"kind": "tautology", "tasks": ["boolq_local"], **EACH},
    {"kind": "injection", "tasks": ["sst2_local", "arc_challenge_local"], **EACH},
    {"kind": "char_swap", "name": "options", "choices": True, "tasks": ["arc_challenge_local"], **EACH},
    {"kind": "typo", "name": "typo-gen", "tasks": ["triviaqa_local"], "limit": GEN_LIMIT, "seeds": SEEDS},
]
UNITS = [f"{p.get('name', p['kind'])}/{task}" for p in PROBES for task in p["tasks"]]
GENERATION = "typo-gen/triviaqa_local"
FEWSHOT = "word_delete/boolq_local"
# Kinds that change every text they are given (a character edit, a deleted word, an added sentence).
ALWAYS_CHANGE = ("typo", "invisible", "word_delete", "helm", "tautology", "injection", "options", "typo-gen")
# The document fields perturbed by default: the string fields that appear in the prompt.
DEFAULT_FIELDS = {
    "sst2_local": ["sentence"],
    "boolq_local": ["passage", "question"],
    "arc_challenge_local": ["query"],
    "triviaqa_local": ["question"],
}


def write_config(folder: Path, name: str, body: dict[str, Any], data_dir: Path) -> Path:
    config = {
        "run": {"name": name, "output_dir": str(folder / "out"), "data_dir": str(data_dir), "seed": SEED},
        "stats": {"resamples": 500, "interval_resamples": 500},
        **body,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def stories_model(stories: Path) -> dict[str, Any]:
    return {"name": "stories", "path": str(stories), "generation": {"max_new_tokens": 8}}


@pytest.fixture(scope="module")
def runs(stories: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same config run twice (the second answers from warm caches, so it is cheap)."""
    folder = tmp_path_factory.mktemp("perturb-runs")
    body = {"models": [stories_model(stories)], "probes": PROBES}
    dirs = []
    for name in ("first", "second"):
        config = write_config(folder, name, body, data_dir)
        assert cli.main(["run", str(config), "--cache-dir", str(folder / "cache")]) == 0
        dirs.append(folder / "out" / name)
    return dirs[0], dirs[1]


@pytest.fixture(scope="module")
def run_dir(runs: tuple[Path, Path]) -> Path:
    return runs[0]


@pytest.fixture(scope="module")
def results(run_dir: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    return {r["task"]: r for r in data["results"]}


@pytest.fixture(scope="module")
def records(run_dir: Path) -> dict[str, dict[int, list[SampleRecord]]]:
    """unit -> doc_id -> the sample's records, in file order."""
    out: dict[str, dict[int, list[SampleRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in read_samples(run_dir / "samples.jsonl"):
        out[record.task][record.doc_id].append(record)
    return out


def limit_of(unit: str) -> int:
    return GEN_LIMIT if unit == GENERATION else LIMIT


def split_prompt(clean: SampleRecord) -> tuple[str, str]:
    """(what comes before, what comes after) the sample's own text in the clean prompt."""
    assert clean.probe is not None
    at = clean.prompt.rfind(clean.probe.original)
    assert at >= 0
    return clean.prompt[:at], clean.prompt[at + len(clean.probe.original) :]


# --- results.json ---


def test_every_unit_has_the_paired_metrics_with_intervals(results: dict[str, dict[str, Any]]) -> None:
    assert set(results) == set(UNITS)
    for unit, result in results.items():
        metrics = result["metrics"]
        assert set(metrics) == set(PAIRED_METRICS), unit
        assert result["primary_metric"] == "pdr"
        assert result["probe"]["samples"] == limit_of(unit)
        assert result["probe"]["settings"]["seeds"] == SEEDS
        for name, m in metrics.items():
            assert m["n_errors"] == 0, (unit, name)
            if name == "pdr":
                continue
            assert m["value"] is not None, (unit, name)
            assert m["ci_low"] is not None and m["ci_high"] is not None, (unit, name)
            assert m["ci_low"] - 1e-12 <= m["value"] <= m["ci_high"] + 1e-12, (unit, name)
            assert m["n"] == (limit_of(unit) if name in ("clean", "worst_case") else limit_of(unit) * SEEDS)
        clean, perturbed = metrics["clean"]["value"], metrics["perturbed"]["value"]
        assert metrics["drop"]["value"] == pytest.approx(clean - perturbed, abs=1e-12)
        pdr = metrics["pdr"]
        if clean == 0:  # no clean answer right: the drop rate is undefined
            assert pdr["value"] is None, unit
            continue
        assert pdr["value"] == pytest.approx(1 - perturbed / clean, abs=1e-12), (
            unit
        )  # equal copies per sample
        if pdr["ci_method"] == "none":
            # left out only when resamples without a right clean answer are likely (more than 1% of them)
            assert (1 - clean) ** limit_of(unit) > 0.005, unit
        else:
            assert pdr["ci_method"] == "bootstrap percentile"
            assert pdr["ci_low"] <= pdr["value"] <= pdr["ci_high"], unit


def test_kinds_that_always_change_the_text_report_changed_1(results: dict[str, dict[str, Any]]) -> None:
    for unit, result in results.items():
        changed = result["metrics"]["changed"]["value"]
        if unit.split("/")[0] in ALWAYS_CHANGE:
            assert changed == 1.0, unit
        else:
            assert 0 < changed <= 1, unit


# --- samples.jsonl ---


def test_each_sample_has_a_clean_record_and_one_per_seed(
    records: dict[str, dict[int, list[SampleRecord]]],
) -> None:
    assert set(records) == set(UNITS)
    for unit, by_doc in records.items():
        assert sorted(by_doc) == list(range(limit_of(unit))), unit
        for group in by_doc.values():
            assert [r.variant for r in group] == ["clean", *(f"seed-{k}" for k in range(SEEDS))], unit
            clean = group[0]
            assert clean.probe is not None
            assert clean.probe.perturbed == clean.probe.original
            before, after = split_prompt(clean)
            for record in group:
                assert record.error is None and record.probe is not None, unit
                assert record.probe.probe == unit.split("/")[0]
                assert record.probe.original == clean.probe.original
                assert record.target == clean.target
                assert record.probe.score is not None
                assert record.metrics == {result_metric(unit): record.probe.score}
                if record.variant == "clean":
                    continue
                assert record.probe.perturbed != record.probe.original, (unit, record.variant)
                # the perturbed text sits exactly where the clean text was
                assert record.prompt == before + record.probe.perturbed + after
                fields = DEFAULT_FIELDS[unit.split("/")[1]]
                if record.probe.kind in DISTRACTORS:  # one insertion per copy, in one of the fields
                    assert len(record.probe.details["fields"]) == 1
                    assert set(record.probe.details["fields"]) <= set(fields)
                else:
                    assert record.probe.details["fields"] == fields
            seeds = [r.probe.details["seed"] for r in group[1:] if r.probe is not None]
            assert len(set(seeds)) == SEEDS


def result_metric(unit: str) -> str:
    return "exact_match" if unit == GENERATION else "acc"


def test_the_fewshot_prefix_is_byte_identical(
    records: dict[str, dict[int, list[SampleRecord]]], results: dict[str, dict[str, Any]]
) -> None:
    assert results[FEWSHOT]["num_fewshot"] == 1
    for group in records[FEWSHOT].values():
        clean = group[0]
        before, _ = split_prompt(clean)
        assert before.endswith("\n\n") and "\nQuestion: " in before  # one BoolQ example, then the sample
        for record in group[1:]:
            assert record.prompt.startswith(before)
            assert record.prompt[len(before) :] != clean.prompt[len(before) :]
    for group in records["typo/boolq_local"].values():  # zero-shot: the prompt is the sample's text
        assert split_prompt(group[0])[0] == ""


def test_invisible_characters_are_all_that_changes(records: dict[str, dict[int, list[SampleRecord]]]) -> None:
    for group in records["invisible/sst2_local"].values():
        for record in group[1:]:
            assert record.probe is not None
            assert any(c in record.probe.perturbed for c in ZERO_WIDTH)
            visible = "".join(c for c in record.probe.perturbed if c not in ZERO_WIDTH)
            assert visible == record.probe.original


def test_tautology_is_added_five_times_per_sample(records: dict[str, dict[int, list[SampleRecord]]]) -> None:
    """BoolQ's prompt has two perturbed fields (passage, question); the sample gets one tautology of five
    " and true is true" (docs/probes.md), not one per field."""
    for group in records["tautology/boolq_local"].values():
        for record in group[1:]:
            assert record.probe is not None
            assert record.probe.perturbed.count(TAUTOLOGY) == 5
            assert record.probe.perturbed.replace(TAUTOLOGY, "") == record.probe.original


def test_injections_ask_for_a_wrong_option(records: dict[str, dict[int, list[SampleRecord]]]) -> None:
    for unit in ("injection/sst2_local", "injection/arc_challenge_local"):
        for group in records[unit].values():
            for record in group[1:]:
                assert record.probe is not None and record.choices is not None
                options = [c.text for c in record.choices]
                assert isinstance(record.target, int)
                wrong = [o for i, o in enumerate(options) if i != record.target]
                named = [o for o in options if f'"{o}"' in record.probe.perturbed]
                assert len(named) == 1 and named[0] in wrong, (unit, record.probe.perturbed)


def test_choices_true_perturbs_the_options_too(records: dict[str, dict[int, list[SampleRecord]]]) -> None:
    for group in records["options/arc_challenge_local"].values():
        clean = group[0]
        assert clean.choices is not None
        original = [c.text for c in clean.choices]
        for record in group[1:]:
            assert record.choices is not None
            options = [c.text for c in record.choices]
            assert len(options) == len(original) and options != original
            for old, new in zip(original, options, strict=True):  # char_swap: same letters
                assert sorted(old) == sorted(new)


@pytest.mark.skipif(not HAS_WORDNET, reason="WordNet not installed (apt-get install wordnet-base)")
def test_synonyms_come_from_wordnet(records: dict[str, dict[int, list[SampleRecord]]]) -> None:
    from nltk.corpus import wordnet

    swaps = 0
    for unit in ("synonym/sst2_local", "synonym/arc_challenge_local"):
        for group in records[unit].values():
            for record in group[1:]:
                assert record.probe is not None
                old, new = record.probe.original.split(" "), record.probe.perturbed.split(" ")
                assert len(old) == len(new)  # one word for one word
                for a, b in zip(old, new, strict=True):
                    a, b = a.strip(".,?!:"), b.strip(".,?!:")
                    if a != b:
                        lemmas = {lemma.lower() for s in wordnet.synsets(a) for lemma in s.lemma_names()}
                        assert b.lower() in lemmas, (a, b)
                        swaps += 1
    assert swaps > 0


def test_a_generation_task_is_scored_by_its_primary_metric(
    records: dict[str, dict[int, list[SampleRecord]]], results: dict[str, dict[str, Any]]
) -> None:
    result = results[GENERATION]
    assert result["output_type"] == "generate_until"
    assert result["probe"]["metric"] == "exact_match"
    for group in records[GENERATION].values():
        for record in group:
            assert record.probe is not None and record.choices is None
            assert isinstance(record.generation, str) and record.generation
            assert isinstance(record.filtered, str)
            assert record.probe.answer == record.filtered
            assert record.filtered in record.generation  # what the filters kept of the output
            assert record.probe.score in (0.0, 1.0)
            assert record.prompt.endswith("?\nAnswer:")


def test_two_runs_write_identical_samples(runs: tuple[Path, Path]) -> None:
    first, second = ((d / "samples.jsonl").read_bytes() for d in runs)
    assert first == second
    assert first.count(b"\n") == sum(limit_of(u) * (SEEDS + 1) for u in UNITS)


# --- refused before any model loads ---

HUB_MODEL = [{"name": "m", "path": str(STORIES)}]  # never loaded: every config here fails while planning


def refused(
    folder: Path, data_dir: Path, probes: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> str:
    config = write_config(folder, "bad", {"models": HUB_MODEL, "probes": probes}, data_dir)
    assert cli.main(["run", str(config), "--cache-dir", str(folder / "cache")]) == 2
    assert not (folder / "out").exists()
    return " ".join(capsys.readouterr().err.split())  # the console wraps long lines


def test_a_field_the_task_lacks_is_refused_with_a_suggestion(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probes = [{"kind": "typo", "tasks": ["sst2_local"], "limit": 2, "fields": ["sentense"]}]
    err = refused(tmp_path, data_dir, probes, capsys)
    assert "task 'sst2_local' has no text field 'sentense'" in err
    assert "did you mean 'sentence'" in err


def test_synonym_without_wordnet_says_what_to_install(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(textattack_env, "WORDNET_SOURCE", tmp_path / "no-wordnet")
    probes = [{"kind": "synonym", "tasks": ["sst2_local"], "limit": 2}]
    err = refused(tmp_path, data_dir, probes, capsys)
    assert "needs WordNet 3.0" in err and "apt-get install wordnet-base" in err
