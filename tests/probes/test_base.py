"""What probes see of a task: samples, their text fields and options, and rewritten copies, on real tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.config import probe_config
from evalsuite.errors import ConfigError
from evalsuite.probes.base import (
    ProbeUnit,
    Sample,
    check_task,
    clean,
    get_options,
    options_field,
    rewrite,
    samples,
    set_options,
    text_fields,
)
from evalsuite.tasks import PreparedTask, TaskCatalog, build_task, task_dirs

SEED = 1234


def prepare(data_dir: Path, name: str, limit: int, shots: int | None) -> PreparedTask:
    return build_task(TaskCatalog(task_dirs(), data_dir).resolve(name), limit, shots, SEED)


def unit_for(task: PreparedTask, kind: str = "typo", **keys: object) -> ProbeUnit:
    config = probe_config({"kind": kind, "tasks": [task.spec.name], **keys})
    return ProbeUnit(config, task, SEED)


@pytest.fixture(scope="module")
def tasks(data_dir: Path) -> dict[str, PreparedTask]:
    """Three documents of each task; mmlu and arc with two few-shot examples, so prompts have a prefix."""
    return {
        "mmlu_local": prepare(data_dir, "mmlu_local", 3, 2),
        "arc_challenge_local": prepare(data_dir, "arc_challenge_local", 3, 2),
        "boolq_local": prepare(data_dir, "boolq_local", 3, 0),
        "sst2_local": prepare(data_dir, "sst2_local", 3, 0),
    }


def first(task: PreparedTask) -> Sample:
    return samples(task)[0]


def test_samples_follow_the_task_requests(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["mmlu_local"]
    found = samples(task)
    assert [s.doc_id for s in found] == [0, 1, 2]
    sample = found[0]
    assert sample.options == ("A", "B", "C", "D")
    assert sample.gold == sample.doc["answer"]
    assert [r.idx for r in sample.requests] == [0, 1, 2, 3]
    assert sample.prompt.endswith(sample.text)
    assert sample.prompt != sample.text  # description and two examples come first
    assert sample.text == task.task.doc_to_text(sample.doc)


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("mmlu_local", ("question",)),
        ("arc_challenge_local", ("query",)),
        ("boolq_local", ("passage", "question")),
        ("sst2_local", ("sentence",)),
    ],
)
def test_text_fields_are_the_document_text_in_the_prompt(
    tasks: dict[str, PreparedTask], name: str, fields: tuple[str, ...]
) -> None:
    task = tasks[name]
    for sample in samples(task):
        assert set(text_fields(unit_for(task), sample)) == set(fields)


def test_named_fields_are_taken_as_given(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["boolq_local"]
    assert text_fields(unit_for(task), first(task), ("question",)) == ("question",)


def test_a_missing_named_field_is_a_config_error_with_a_suggestion(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["mmlu_local"]
    with pytest.raises(ConfigError, match=r"no text field 'questoin' \(did you mean 'question'\?\)"):
        text_fields(unit_for(task), first(task), ("questoin",))
    with pytest.raises(ConfigError, match="no text field 'answer'"):  # a field, but not text
        text_fields(unit_for(task), first(task), ("answer",))


@pytest.mark.parametrize("name", ["mmlu_local", "arc_challenge_local"])
def test_options_field_finds_the_choices(tasks: dict[str, PreparedTask], name: str) -> None:
    sample = first(tasks[name])
    assert sample.options is not None
    where = options_field(sample.doc, sample.options, sample.text)
    assert where == ("choices", None)
    assert get_options(sample.doc, where) == list(sample.doc["choices"])
    moved = set_options(sample.doc, where, ["w", "x", "y", "z"])
    assert moved["choices"] == ["w", "x", "y", "z"]
    assert sample.doc["choices"] != moved["choices"]  # the original document is untouched


def test_options_field_reads_lm_eval_text_and_label_dicts() -> None:
    doc = {"question": "Q?", "choices": {"text": ["red", "blue"], "label": ["A", "B"]}}
    where = options_field(doc, ["red", "blue"], "Q?")
    assert where == ("choices", "text")
    assert set_options(doc, where, ["blue", "red"])["choices"] == {
        "text": ["blue", "red"],
        "label": ["A", "B"],
    }


def test_sst2_lists_no_options(tasks: dict[str, PreparedTask]) -> None:
    sample = first(tasks["sst2_local"])
    assert sample.options == ("negative", "positive")
    assert options_field(sample.doc, sample.options, sample.text) is None


@pytest.mark.parametrize("name", ["mmlu_local", "arc_challenge_local"])
def test_rewrite_changes_only_the_sample_text(tasks: dict[str, PreparedTask], name: str) -> None:
    task = tasks[name]
    unit = unit_for(task)
    sample = first(task)
    field = "question" if name == "mmlu_local" else "query"
    old = str(sample.doc[field]).strip()
    new = "Question: What is two plus two?" if name == "arc_challenge_local" else "What is two plus two?"
    variant = rewrite(unit, sample, "seed-0", {**sample.doc, field: new}, details={"seed": 0})

    prefix = sample.prompt[: len(sample.prompt) - len(sample.text)]
    assert prefix.count("\nAnswer:") == 2  # the two few-shot examples
    expected = prefix + sample.text.replace(old, new)
    assert [r.args[0] for r in variant.requests] == [expected] * len(sample.requests)
    assert variant.original == sample.text
    assert variant.perturbed == sample.text.replace(old, new)
    assert (variant.name, variant.gold, variant.details) == ("seed-0", sample.gold, {"seed": 0})

    delimiter = task.task.config.target_delimiter
    assert delimiter == " "
    assert sample.options is not None
    assert [r.args[1] for r in variant.requests] == [f"{delimiter}{o}" for o in sample.options]
    assert [r.idx for r in variant.requests] == list(range(len(sample.options)))
    assert {r.request_type for r in variant.requests} == {"loglikelihood"}
    assert [r.args for r in variant.requests] != [r.args for r in sample.requests]


def test_the_clean_copy_asks_what_the_task_asks(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["arc_challenge_local"]
    sample = first(task)
    copy = clean(unit_for(task), sample)
    assert [r.args for r in copy.requests] == [r.args for r in sample.requests]
    assert copy.original == copy.perturbed == sample.text
    assert copy.name == "clean"


def test_rewrite_with_the_same_document_reproduces_the_prompt(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["mmlu_local"]
    for sample in samples(task):
        variant = rewrite(unit_for(task), sample, "same", dict(sample.doc))
        assert [r.args for r in variant.requests] == [r.args for r in sample.requests]


def test_seed_for_is_stable_and_differs_across_parts(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["mmlu_local"]
    unit, again = unit_for(task), unit_for(task)
    seeds = [unit.seed_for(doc, copy) for doc in range(5) for copy in range(3)]
    assert seeds == [again.seed_for(doc, copy) for doc in range(5) for copy in range(3)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**32 for s in seeds)
    assert unit.seed_for("formats") != unit.seed_for("formats", 0)
    assert unit.seed_for(1) == 3977870389  # fixed across runs and machines (blake2b, not hash())
    other_run = ProbeUnit(unit.config, task, SEED + 1)
    other_probe = unit_for(task, kind="prompt_format")
    assert other_run.seed_for(1) != unit.seed_for(1) != other_probe.seed_for(1)


def test_unit_names_the_probe_and_the_task(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["boolq_local"]
    assert unit_for(task).name == "typo/boolq_local"
    assert unit_for(task, name="typo_high", severity="high").name == "typo_high/boolq_local"
    assert unit_for(task).multiple_choice


def test_check_task_refuses_a_rolling_loglikelihood_task(data_dir: Path) -> None:
    task = prepare(data_dir, "wikitext2_local", 1, None)
    with pytest.raises(ConfigError, match=r"wikitext2_local.*loglikelihood_rolling task"):
        check_task(unit_for(task, kind="prompt_format"), first(task))


def test_check_task_accepts_the_multiple_choice_tasks(tasks: dict[str, PreparedTask]) -> None:
    for task in tasks.values():
        check_task(unit_for(task), first(task))
