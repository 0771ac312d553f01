"""Prompt-format probe: the format grammar, the requests each format makes, and the spread of scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalsuite.config import probe_config
from evalsuite.engine import Outcome
from evalsuite.probes.adversarial.formats import Format, FormatProbe, sample_formats, score_table
from evalsuite.probes.base import ProbeUnit, Variant, samples
from evalsuite.probes.metrics import spread_interval
from evalsuite.probes.scoring import score
from evalsuite.records import SampleRecord
from evalsuite.stats.intervals import IntervalSettings
from evalsuite.tasks import PreparedTask, TaskCatalog, build_task, task_dirs

SEED = 1234
FORMATS = 6
SETTINGS = IntervalSettings(seed=SEED, confidence=0.95, resamples=500)


def unit_for(task: PreparedTask, formats: int = FORMATS) -> ProbeUnit:
    config = probe_config({"kind": "prompt_format", "tasks": [task.spec.name], "formats": formats})
    return ProbeUnit(config, task, SEED)


@pytest.fixture(scope="module")
def tasks(data_dir: Path) -> dict[str, PreparedTask]:
    catalog = TaskCatalog(task_dirs(), data_dir)
    return {
        "mmlu_local": build_task(catalog.resolve("mmlu_local"), 3, 2, SEED),
        "arc_challenge_local": build_task(catalog.resolve("arc_challenge_local"), 3, 0, SEED),
        "boolq_local": build_task(catalog.resolve("boolq_local"), 2, 0, SEED),
    }


def prepared(task: PreparedTask) -> list[Variant]:
    return FormatProbe(FORMATS).prepare(unit_for(task), samples(task))


# --- the grammar ---


def test_sample_formats_is_deterministic_distinct_and_seeded() -> None:
    first = sample_formats(40, seed=3)
    assert first == sample_formats(40, seed=3)
    assert len(set(first)) == 40
    assert sample_formats(10, seed=3) == first[:10]  # a longer draw extends a shorter one
    assert sample_formats(10, seed=4) != first[:10]


@pytest.mark.parametrize(
    ("numbering", "labels", "markers"),
    [
        ("A.", "ABCD", ["A.", "B.", "C.", "D."]),
        ("(A)", "ABCD", ["(A)", "(B)", "(C)", "(D)"]),
        ("[A]", "ABCD", ["[A]", "[B]", "[C]", "[D]"]),
        ("a.", "abcd", ["a.", "b.", "c.", "d."]),
        ("(1)", "1234", ["(1)", "(2)", "(3)", "(4)"]),
        ("1.", "1234", ["1.", "2.", "3.", "4."]),
        ("i.", ["i", "ii", "iii", "iv"], ["i.", "ii.", "iii.", "iv."]),
    ],
)
def test_numbering_labels_and_markers(numbering: str, labels: str | list[str], markers: list[str]) -> None:
    fmt = Format("Question", ": ", "\n", numbering, "Answer")
    assert [fmt.label(i) for i in range(4)] == list(labels)
    assert [fmt.marker(i) for i in range(4)] == markers


def test_render_puts_the_parts_together() -> None:
    numbered = Format("Question", ": ", "\n", "(1)", "Answer")
    assert numbered.render([], "What is 2+2?", ["3", "4"]) == "Question: What is 2+2?\n(1) 3\n(2) 4\nAnswer:"
    assert numbered.describe(options=True) == "Question: {question}\\n(1) {option}\\nAnswer:"

    spaced = Format("Q", ":\n", " || ", "i.", "The answer is")
    assert spaced.render(["Some passage."], "is it", None) == "Some passage. || Q:\nis it || The answer is:"

    dashed = Format("Input", " - ", "\n\n", "[A]", "ANSWER")
    assert dashed.render([], "q", ["x", "y", "z"]) == "Input - q\n\n[A] x\n[B] y\n[C] z\n\nANSWER -"
    assert dashed.describe(options=False) == "Input - {question}\\n\\nANSWER -"


# --- the probe on real tasks ---


def test_every_sample_in_every_format(tasks: dict[str, PreparedTask]) -> None:
    for task in tasks.values():
        variants = prepared(task)
        assert len(variants) == len(samples(task)) * FORMATS
        by_doc: dict[int, list[str]] = {}
        for v in variants:
            by_doc.setdefault(v.sample.doc_id, []).append(str(v.details["description"]))
        formats = list(by_doc.values())
        assert all(f == formats[0] for f in formats)  # every sample sees the same formats, in order
        assert len(set(formats[0])) == FORMATS
        assert [v.name for v in variants[:FORMATS]] == [f"format-{j}" for j in range(FORMATS)]


# The six formats seed 1234 draws for each task, written out by hand: {q} is the question, {o[i]} option i
# and {p} the passage. The options are listed one per line whatever the space between the parts.
MMLU_FORMATS = [
    ("question - {q}\na. {o[0]}\nb. {o[1]}\nc. {o[2]}\nd. {o[3]}\nA -", "abcd"),
    ("Query:\n{q}\n(A) {o[0]}\n(B) {o[1]}\n(C) {o[2]}\n(D) {o[3]}\nA:", "ABCD"),
    ("Query - {q}\n\t1. {o[0]}\n2. {o[1]}\n3. {o[2]}\n4. {o[3]}\n\tAnswer -", "1234"),
    ("Q = {q} (A) {o[0]}\n(B) {o[1]}\n(C) {o[2]}\n(D) {o[3]} The answer is =", "ABCD"),
    ("Q:\n{q}\n1. {o[0]}\n2. {o[1]}\n3. {o[2]}\n4. {o[3]}\nAnswer:", "1234"),
    ("Query:: {q}\n[A] {o[0]}\n[B] {o[1]}\n[C] {o[2]}\n[D] {o[3]}\nSolution::", "ABCD"),
]
ARC_FORMATS = [
    "question: {q}\n\tThe answer is:",
    "question:: {q} A::",
    "QUESTION - {q}\n\nA -",
    "Query:: {q}\n\nAnswer::",
    "Q - {q} || The answer is -",
    "Question:\n{q} || Answer:",
]
BOOLQ_FORMATS = [
    "{p} || Q - {q} || Answer choice -",
    "{p}\nQuestion:{q}\nThe answer is:",
    "{p}\n\tQuery = {q}\n\tThe answer is =",
    "{p}\nQuery:{q}\nAnswer choice:",
    "{p}\nQ:\n{q}\nANSWER:",
    "{p} || Input: {q} || Answer choice:",
]


def test_formats_on_mmlu_list_the_options_and_score_their_labels(tasks: dict[str, PreparedTask]) -> None:
    variants = prepared(tasks["mmlu_local"])
    assert variants[0].requests[0].args[0] == (  # doc 0 in format 0, in full
        "question - Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q."
        "\na. 0\nb. 4\nc. 2\nd. 6\nA -"
    )
    for variant in variants:
        template, labels = MMLU_FORMATS[int(variant.details["format"])]
        doc = variant.sample.doc
        expected = template.format(q=doc["question"].strip(), o=doc["choices"])
        assert [r.args for r in variant.requests] == [(expected, f" {label}") for label in labels]
        assert variant.perturbed == expected
        assert variant.original == variant.sample.text
        assert "The following are" not in expected  # zero-shot: no description, no examples
        assert variant.gold == variant.sample.gold


def test_formats_on_arc_score_the_option_texts(tasks: dict[str, PreparedTask]) -> None:
    variants = prepared(tasks["arc_challenge_local"])
    assert variants[0].requests[0].args == (  # doc 0 in format 0, its first option
        "question: An astronomer observes that a planet rotates faster after a meteorite impact. "
        "Which is the most likely effect of this increase in rotation?\n\tThe answer is:",
        " Planetary density will decrease.",
    )
    for variant in variants:
        doc = variant.sample.doc
        question = str(doc["query"]).removeprefix("Question: ")  # the task's own cue is dropped
        expected = ARC_FORMATS[int(variant.details["format"])].format(q=question)  # options never listed
        assert [r.args for r in variant.requests] == [(expected, f" {o}") for o in doc["choices"]]


def test_formats_on_boolq_keep_the_passage_before_the_question(tasks: dict[str, PreparedTask]) -> None:
    for variant in prepared(tasks["boolq_local"]):
        doc = variant.sample.doc
        template = BOOLQ_FORMATS[int(variant.details["format"])]
        expected = template.format(p=doc["passage"].strip(), q=doc["question"].strip())
        assert [r.args for r in variant.requests] == [(expected, " no"), (expected, " yes")]


# --- scores across formats ---

# samples x formats: 1 where the scripted model is right
TABLE = np.array(
    [
        [1, 0, 1, 1, 0, 1],
        [1, 1, 0, 1, 0, 0],
        [1, 0, 0, 1, 0, 1],
    ],
    dtype=np.float64,
)


def scripted_records(task: PreparedTask, table: np.ndarray) -> list[SampleRecord]:
    unit = unit_for(task)
    records = []
    for variant in prepared(task):
        right = table[variant.sample.doc_id, int(variant.details["format"])]
        pick = (variant.gold or 0) if right else ((variant.gold or 0) + 1) % len(variant.requests)
        outcomes = [
            Outcome(value=(-1.0 if i == pick else -6.0, i == pick)) for i in range(len(variant.requests))
        ]
        records.append(score(unit, variant, outcomes, "scripted"))
    return records


def test_summary_known_answers(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["mmlu_local"]
    records = scripted_records(task, TABLE)
    table, descriptions, examples, errors = score_table(records)
    assert table.tolist() == TABLE.tolist() and errors == 0
    assert len(descriptions) == len(examples) == FORMATS

    result = FormatProbe(FORMATS).summarize(unit_for(task), "scripted", records, SETTINGS)
    means = TABLE.mean(axis=0)  # 1, 1/3, 1/3, 1, 0, 2/3
    metrics = result.metrics
    assert metrics["spread"].value == pytest.approx(means.max() - means.min()) == pytest.approx(1.0)
    assert metrics["mean"].value == pytest.approx(TABLE.mean())
    assert (metrics["mean"].ci_method, metrics["mean"].clusters, metrics["mean"].n) == (
        "cluster-robust t",
        3,
        18,
    )
    assert metrics["best"].value == 1.0 and metrics["worst"].value == 0.0
    assert result.primary_metric == "spread"
    summary = result.probe
    assert summary is not None
    # the first of the two best formats, and the worst
    assert summary.best_format == descriptions[0] == "question - {question}\\na. {option}\\nA -"
    assert summary.worst_format == descriptions[4] == "Q:\\n{question}\\n1. {option}\\nAnswer:"
    assert [s.value for s in summary.formats] == pytest.approx(sorted(means, reverse=True))
    assert summary.settings == {"formats": FORMATS}
    # 95% Wilson intervals for k of 3 right, by hand: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    wilson = {0: (0.0, 0.5615), 1: (0.0615, 0.7923), 2: (0.2077, 0.9385), 3: (0.4385, 1.0)}
    for scored in summary.formats:  # each format's accuracy with a Wilson interval
        j = descriptions.index(scored.format)
        assert (scored.ci_low, scored.ci_high) == pytest.approx(wilson[int(TABLE[:, j].sum())], abs=1e-4)
        assert scored.example == examples[j] and scored.n == 3


def test_a_sample_with_a_failed_format_is_left_out(tasks: dict[str, PreparedTask]) -> None:
    task = tasks["mmlu_local"]
    records = scripted_records(task, TABLE)
    broken = next(i for i, r in enumerate(records) if r.doc_id == 1 and r.variant == "format-2")
    detail = records[broken].probe
    assert detail is not None
    records[broken] = records[broken].model_copy(
        update={"error": "boom", "probe": detail.model_copy(update={"score": None})}
    )
    table, _, _, errors = score_table(records)
    assert table.tolist() == TABLE[[0, 2]].tolist() and errors == 1
    result = FormatProbe(FORMATS).summarize(unit_for(task), "scripted", records, SETTINGS)
    assert {m.n_errors for m in result.metrics.values()} == {1}


def test_spread_is_best_minus_worst_column_mean() -> None:
    table = np.array(
        [[1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 0, 1], [1, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 1]],
        dtype=np.float64,
    )
    means = table.mean(axis=0)  # 0.75, 0.375, 0.625
    interval = spread_interval(table, np.random.default_rng(5), SETTINGS)
    assert interval.value == pytest.approx(means.max() - means.min(), abs=1e-12)
    assert interval.value == pytest.approx(0.375)
    assert interval.method == "bootstrap percentile"
    assert interval.low is not None and interval.high is not None
    assert interval.low <= interval.value <= interval.high
    assert interval.low >= 0  # best - worst, re-picked in every resample, is never negative
