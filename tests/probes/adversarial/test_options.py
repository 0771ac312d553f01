"""Option-order probe: rotations of listed options, PriDe's RStd and consistency on scripted answers."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from evalsuite.config import probe_config
from evalsuite.engine import Outcome
from evalsuite.errors import ConfigError
from evalsuite.probes.adversarial.options import OptionOrderProbe, position_matrix, recall_std
from evalsuite.probes.base import ProbeUnit, Sample, Variant, samples
from evalsuite.probes.metrics import copies
from evalsuite.probes.scoring import score
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings
from evalsuite.tasks import PreparedTask, TaskCatalog, build_task, task_dirs

SEED = 1234
SETTINGS = IntervalSettings(seed=SEED, confidence=0.95, resamples=500)
DOCS = 4
PriDe_ALWAYS_A = math.sqrt(3) / 4  # population std of recalls [1, 0, 0, 0]

Picker = Callable[[Variant], int]  # the position a scripted model picks in a copy


def unit_for(task: PreparedTask) -> ProbeUnit:
    return ProbeUnit(probe_config({"kind": "option_order", "tasks": [task.spec.name]}), task, SEED)


@pytest.fixture(scope="module")
def mmlu(data_dir: Path) -> PreparedTask:
    spec = TaskCatalog(task_dirs(), data_dir).resolve("mmlu_local")
    return build_task(spec, DOCS, 1, SEED)  # one few-shot example: the prefix must survive rotation


@pytest.fixture(scope="module")
def mmlu_variants(mmlu: PreparedTask) -> list[Variant]:
    return OptionOrderProbe().prepare(unit_for(mmlu), samples(mmlu))


def listed(prompt_tail: str) -> list[str]:
    """The options an MMLU prompt lists, in order (lines ``A. ...`` to ``D. ...``)."""
    return re.findall(r"^[A-D]\. (.*)$", prompt_tail, flags=re.MULTILINE)


def test_every_question_is_asked_in_every_rotation(mmlu_variants: list[Variant]) -> None:
    assert len(mmlu_variants) == DOCS * 4
    names = [(v.sample.doc_id, v.name) for v in mmlu_variants]
    rotations = ["clean", "rotation-1", "rotation-2", "rotation-3"]
    assert names == [(d, r) for d in range(DOCS) for r in rotations]


def test_rotations_move_the_gold_where_gold_position_says(mmlu_variants: list[Variant]) -> None:
    for variant in mmlu_variants:
        sample = variant.sample
        choices = list(sample.doc["choices"])
        assert sample.gold is not None
        if variant.name == "clean":
            assert variant.gold == sample.gold and variant.order is None
            assert listed(variant.perturbed) == choices
            continue
        shift = int(variant.details["rotation"])
        assert variant.name == f"rotation-{shift}"
        assert variant.order == tuple((i + shift) % 4 for i in range(4))
        shown = listed(variant.perturbed)
        assert shown == choices[shift:] + choices[:shift]
        assert variant.gold is not None and variant.gold == variant.details["gold_position"]
        assert shown[variant.gold] == choices[sample.gold]
        assert variant.doc["choices"] == shown
        assert sample.doc["choices"] == choices  # the sample's own document is untouched


def test_rotations_keep_the_few_shot_prefix_and_score_letters(mmlu_variants: list[Variant]) -> None:
    for variant in mmlu_variants:
        sample = variant.sample
        prefix = sample.prompt[: len(sample.prompt) - len(sample.text)]
        assert prefix.count("\nAnswer:") == 1
        assert [r.args for r in variant.requests] == [
            (prefix + variant.perturbed, f" {letter}") for letter in "ABCD"
        ]
        assert variant.original == sample.text


def scripted(unit: ProbeUnit, variants: list[Variant], pick: Picker) -> list[SampleRecord]:
    """Score every copy as a model that gives the picked position the highest log-likelihood."""
    records = []
    for variant in variants:
        chosen = pick(variant)
        outcomes = [Outcome(value=(-1.0 if i == chosen else -4.0 - i, i == chosen)) for i in range(4)]
        records.append(score(unit, variant, outcomes, "scripted"))
    return records


def summarize(mmlu: PreparedTask, variants: list[Variant], pick: Picker) -> TaskResult:
    unit = unit_for(mmlu)
    return OptionOrderProbe().summarize(unit, "scripted", scripted(unit, variants, pick), SETTINGS)


def golds(variants: list[Variant]) -> list[int]:
    return [v.sample.gold or 0 for v in variants if v.name == "clean"]


def test_a_model_that_always_answers_a(mmlu: PreparedTask, mmlu_variants: list[Variant]) -> None:
    result = summarize(mmlu, mmlu_variants, lambda v: 0)
    gold = np.array(golds(mmlu_variants))
    metrics = {name: m.value for name, m in result.metrics.items()}
    assert metrics["rstd"] == pytest.approx(PriDe_ALWAYS_A, abs=1e-12)  # 0.4330...
    assert metrics["consistency"] == 0.0
    assert metrics["flip_rate"] == 1.0
    assert metrics["worst_case"] == 0.0
    assert metrics["clean"] == pytest.approx(np.mean(gold == 0))
    # each question is right in exactly the one order that puts its answer at A
    assert metrics["perturbed"] == pytest.approx(np.sum(gold != 0) / (3 * DOCS))
    assert result.primary_metric == "consistency"
    assert result.probe is not None and result.probe.samples == DOCS
    assert result.metrics["rstd"].ci_low == result.metrics["rstd"].ci_high == pytest.approx(PriDe_ALWAYS_A)


def test_a_model_that_is_always_right(mmlu: PreparedTask, mmlu_variants: list[Variant]) -> None:
    unit = unit_for(mmlu)
    records = scripted(unit, mmlu_variants, lambda v: v.gold or 0)
    assert all(
        r.probe is not None and r.probe.answer == v.sample.gold
        for r, v in zip(records, mmlu_variants, strict=True)
    )
    result = OptionOrderProbe().summarize(unit, "scripted", records, SETTINGS)
    metrics = {name: m.value for name, m in result.metrics.items()}
    assert metrics["rstd"] == 0.0
    assert metrics["consistency"] == 1.0
    assert (metrics["clean"], metrics["perturbed"], metrics["worst_case"]) == (1.0, 1.0, 1.0)
    assert (metrics["flip_rate"], metrics["pdr"], metrics["drop"]) == (0.0, 0.0, 0.0)
    assert {m.n_errors for m in result.metrics.values()} == {0}


def test_a_model_that_always_picks_the_same_content_is_consistent(
    mmlu: PreparedTask, mmlu_variants: list[Variant]
) -> None:
    """Always the option that was first in the task's own order, wherever it moved: consistent, and
    right exactly on the questions whose answer is that option."""

    def original_first(variant: Variant) -> int:
        return variant.order.index(0) if variant.order is not None else 0

    result = summarize(mmlu, mmlu_variants, original_first)
    accuracy = np.mean(np.array(golds(mmlu_variants)) == 0)
    assert result.metrics["consistency"].value == 1.0
    assert result.metrics["flip_rate"].value == 0.0
    assert result.metrics["clean"].value == result.metrics["perturbed"].value == pytest.approx(accuracy)


def test_position_matrix_records_right_answers_by_gold_position(
    mmlu: PreparedTask, mmlu_variants: list[Variant]
) -> None:
    records = scripted(unit_for(mmlu), mmlu_variants, lambda v: 0)
    matrix = position_matrix(copies(records).records)
    assert matrix.tolist() == [[1.0, 0.0, 0.0, 0.0]] * DOCS


def test_recall_std_is_the_population_std_of_position_recalls() -> None:
    rng = np.random.default_rng(7)
    matrix = (rng.random((25, 4)) < [0.9, 0.6, 0.5, 0.3]).astype(np.float64)  # questions x positions
    expected = np.std(matrix.mean(axis=0))  # ddof=0
    assert recall_std(*matrix.T) == pytest.approx(expected, abs=1e-12)
    assert recall_std(*np.tile([1.0, 0.0, 0.0, 0.0], (6, 1)).T) == pytest.approx(0.4330127018922193)
    assert recall_std(*np.ones((6, 4)).T) == 0.0
    # vectorized as scipy's bootstrap calls it: (resamples, questions) per position
    stacked = np.stack([matrix, matrix[::-1], 1 - matrix])  # 3 resamples
    batch = recall_std(*np.moveaxis(stacked, 2, 0), axis=-1)
    assert batch == pytest.approx([expected, expected, np.std(1 - matrix.mean(axis=0))])


def test_option_order_refuses_options_scored_as_continuations(data_dir: Path) -> None:
    spec = TaskCatalog(task_dirs(), data_dir).resolve("arc_challenge_local")
    arc = build_task(spec, 2, 0, SEED)
    with pytest.raises(ConfigError, match=r"arc_challenge_local.*does not list them in the prompt"):
        OptionOrderProbe().prepare(unit_for(arc), samples(arc))


def test_option_order_refuses_tasks_without_options_in_the_document(data_dir: Path) -> None:
    spec = TaskCatalog(task_dirs(), data_dir).resolve("sst2_local")
    sst2 = build_task(spec, 2, 0, SEED)
    with pytest.raises(ConfigError, match="sst2_local"):
        OptionOrderProbe().prepare(unit_for(sst2), samples(sst2))


# --- user task files: short options that happen to occur in the text, and questions of mixed size ---


def user_task(
    folder: Path, data_dir: Path, name: str, rows: list[dict[str, object]], text: str
) -> PreparedTask:
    """A multiple-choice task file ``name`` over ``rows`` whose options are ``choices``."""
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: '${{task_dir}}/{name}.jsonl'\n"
        f"test_split: test\noutput_type: multiple_choice\ndoc_to_text: {json.dumps(text)}\n"
        f"doc_to_choice: {json.dumps(CHOICES[name])}\ndoc_to_target: label\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )
    spec = TaskCatalog(task_dirs((folder,)), data_dir).resolve(name)
    return build_task(spec, None, 0, SEED)


CHOICES = {
    "yes_no": ["no", "yes"],  # as boolq_local: fixed continuations; documents also carry `choices`
    "mixed": "{{['A', 'B', 'C', 'D'][:choices|length]}}",  # letters for the options listed
}
LISTED = "{{question}}\n{% for c in choices %}{{'ABCD'[loop.index0]}}. {{c}}\n{% endfor %}Answer:"


def test_short_continuation_options_inside_the_passage_are_still_refused(
    tmp_path: Path, data_dir: Path
) -> None:
    """boolq_local's layout: fixed continuations ' no' / ' yes', and documents that also carry
    ``choices: ["no", "yes"]``. The first passage happens to contain 'no' and 'yes' (inside 'know' and
    'eyes'), which does not list them. Not refused, the probe rotates ``choices`` in the document, which
    changes neither prompt nor continuations, yet moves the gold: a perfect model would be scored wrong
    on every rotation."""
    rows = [
        {
            "passage": "I know her eyes are blue.",
            "question": "are her eyes blue",
            "choices": ["no", "yes"],
            "label": 1,
        },
        {"passage": "The sky is green.", "question": "is the sky blue", "choices": ["no", "yes"], "label": 0},
    ]
    task = user_task(tmp_path, data_dir, "yes_no", rows, "{{passage}}\nQuestion: {{question}}?\nAnswer:")
    found = samples(task)
    assert found[0].options == ("no", "yes")
    with pytest.raises(ConfigError, match="does not list them in the prompt"):
        OptionOrderProbe().prepare(unit_for(task), found)


def test_questions_with_fewer_options_do_not_push_out_the_others(tmp_path: Path, data_dir: Path) -> None:
    """Three four-option questions and one three-option question, answered right every time. Nothing
    failed, so nothing is an error; RStd uses the questions of the most common size (as
    ``position_matrix`` documents), and consistency covers at least those."""
    rows: list[dict[str, object]] = [
        {"question": f"Question {i}?", "choices": ["red", "green", "blue", "black"], "label": i % 4}
        for i in range(3)
    ]
    rows.append({"question": "Question 3?", "choices": ["one", "two", "three"], "label": 2})
    task = user_task(tmp_path, data_dir, "mixed", rows, LISTED)
    found: list[Sample] = samples(task)
    assert [len(s.options or ()) for s in found] == [4, 4, 4, 3]
    unit = unit_for(task)
    variants = OptionOrderProbe().prepare(unit, found)
    assert len(variants) == 4 * 3 + 3
    records = []
    for variant in variants:
        k = len(variant.requests)
        outcomes = [Outcome(value=(-1.0 if i == variant.gold else -5.0, i == variant.gold)) for i in range(k)]
        records.append(score(unit, variant, outcomes, "scripted"))
    assert all(r.probe is not None and r.probe.score == 1.0 for r in records)
    result = OptionOrderProbe().summarize(unit, "scripted", records, SETTINGS)
    assert {name: m.n_errors for name, m in result.metrics.items()} == dict.fromkeys(result.metrics, 0)
    assert result.metrics["rstd"].n == 3
    assert result.metrics["consistency"].n >= 3
