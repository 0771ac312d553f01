"""Counterfactual-context items: template facts and SQuAD passages with a substituted answer span."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evalsuite.errors import ConfigError, DataError
from evalsuite.probes.hallucination.entities import answer_matches
from evalsuite.probes.hallucination.passages import (
    AGREE_SHARE,
    FACTS,
    ContextItem,
    answer_type,
    squad_items,
    template_items,
)

SQUAD_FILE = Path("squad_v2") / "squad_v2_dev_from_explorer.json"


# --- templates -----------------------------------------------------------------------------------------


def test_templates_are_deterministic_in_the_seed() -> None:
    assert template_items(50, 3) == template_items(50, 3)
    assert template_items(50, 3) != template_items(50, 4)


@pytest.mark.parametrize("count", [0, 1, 3, 4, 10, 34, 101])
def test_the_documented_share_of_template_items_agrees_with_memory(count: int) -> None:
    items = template_items(count, 11)
    assert len(items) == count
    assert sum(not item.counterfactual for item in items) == round(count * AGREE_SHARE)
    assert AGREE_SHARE == 0.25


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_the_share_can_be_chosen(share: float) -> None:
    items = template_items(40, 2, agree_share=share)
    assert sum(not item.counterfactual for item in items) == round(40 * share)


def test_template_passages_state_the_passage_answer_only() -> None:
    for item in template_items(200, 5):
        assert item.source == "template"
        assert answer_matches(item.passage, [item.passage_answer])
        if item.counterfactual:
            assert item.passage_answer != item.memory_answer
            assert not answer_matches(item.passage, [item.memory_answer]), item
        else:
            assert item.passage_answer == item.memory_answer


def test_templates_are_used_once_each_before_any_repeats() -> None:
    items = template_items(len(FACTS), 8)
    assert len({item.question for item in items}) == len(FACTS)
    assert len({item.id for item in template_items(100, 8)}) == 100


def test_facts_are_well_formed() -> None:
    assert len(FACTS) >= 30
    assert len({fact.question for fact in FACTS}) == len(FACTS)
    for fact in FACTS:
        assert fact.sentence.count("{value}") == 1 and fact.question.endswith("?")
        values = (fact.true, *fact.counterfactuals)
        assert len(set(values)) == len(values) >= 3
        empty = fact.sentence.format(value="")
        assert not any(answer_matches(empty, [value]) for value in values), fact
        for value in fact.counterfactuals:  # the same type: digits for digits, words for words
            assert value.isdigit() == fact.true.isdigit(), fact


def test_template_arguments_are_checked() -> None:
    with pytest.raises(ConfigError):
        template_items(-1, 0)
    with pytest.raises(ConfigError):
        template_items(5, 0, agree_share=1.5)


# --- SQuAD, on a small file ----------------------------------------------------------------------------


def _qa(qid: str, question: str, answers: list[Any], impossible: bool = False) -> dict[str, Any]:
    return {"id": qid, "question": question, "answers": answers, "is_impossible": impossible}


SMALL = {
    "version": "v2.0",
    "data": [
        {
            "title": "A",
            "paragraphs": [
                {
                    "context": "The Normans settled in Normandy in 911. Rollo led them from Denmark.",
                    "qas": [
                        _qa(
                            "a1", "When did the Normans settle in Normandy?", ["911"]
                        ),  # no other 3-digit "when"
                        _qa("a2", "Who led the Normans?", ["Rollo", "Rollo"]),  # no other 1-word "who"
                        _qa("a3", "Where did Rollo come from?", [{"text": "Denmark"}]),
                        _qa("a4", "Who settled in Normandy?", ["Norman"]),  # only inside "Normans"
                        _qa("a5", "What did the Normans eat?", [], impossible=True),
                    ],
                },
                {
                    "context": "In 1066 William of Normandy won at Hastings, and he paid $12 for a horse.",
                    "qas": [
                        _qa("b1", "When was the battle of Hastings?", ["1066"]),
                        _qa("b2", "Who won at Hastings?", ["William of Normandy"]),  # no partner either
                        _qa("b3", "How much was the horse?", ["$12"]),  # skipped: no type
                    ],
                },
            ],
        },
        {
            "title": "B",
            "paragraphs": [
                {
                    "context": "Ada Lovelace wrote notes in 1843 in London. Her notes described 125 steps.",
                    "qas": [
                        _qa("c1", "When did Lovelace write her notes?", ["1843"]),
                        _qa("c2", "Who wrote the notes?", ["Ada Lovelace"]),
                        _qa("c3", "Where did she write them?", ["London"]),
                        _qa("c4", "How many steps?", ["125"]),  # no other 3-digit "how many" answer
                        _qa("c5", "What did she write?", ["notes"]),  # twice in the context
                    ],
                },
                {
                    "context": "The treaty of 1815 was signed by Charles Babbage near Paris.",
                    "qas": [
                        _qa("d1", "When was the treaty signed?", ["1815"]),
                        _qa("d2", "Who signed the treaty?", ["Charles Babbage"]),
                        _qa("d3", "Where was it signed?", ["Paris"]),
                    ],
                },
            ],
        },
    ],
}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(SMALL), encoding="utf-8")
    return path


def _contexts(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """question id -> (context, first answer text)."""
    return {
        qa["id"]: (
            p["context"],
            qa["answers"][0]["text"] if isinstance(qa["answers"][0], dict) else qa["answers"][0],
        )
        for article in data["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
        if qa["answers"]
    }


def _check_span(item: ContextItem, context: str, original: str) -> None:
    start = context.index(original)
    assert item.passage == context[:start] + item.passage_answer + context[start + len(original) :]
    assert item.memory_answer == original and item.passage_answer != original
    assert item.counterfactual and item.source == "squad"
    assert answer_matches(item.passage, [item.passage_answer])
    assert not answer_matches(item.passage, [item.memory_answer])


def test_squad_items_substitute_an_answer_of_the_same_type(small: Path) -> None:
    items = squad_items(small, 100, 0)
    contexts = _contexts(SMALL)
    kept = {"a3", "b1", "c1", "c2", "c3", "d1", "d2", "d3"}
    assert {item.id for item in items} == {f"squad-{qid}" for qid in kept}
    for item in items:
        context, original = contexts[item.id.removeprefix("squad-")]
        _check_span(item, context, original)
        assert answer_type(item.passage_answer) == answer_type(item.memory_answer)
    by_id = {item.id: item for item in items}
    assert by_id["squad-c1"].passage_answer in {"1066", "1815"}  # years swap with years
    assert by_id["squad-c2"].passage_answer == "Charles Babbage"  # two-word "who" names with each other
    assert by_id["squad-d2"].passage_answer == "Ada Lovelace"
    assert by_id["squad-a3"].passage_answer in {"London", "Paris"}


def test_squad_items_are_deterministic_and_limited_by_count(small: Path) -> None:
    assert squad_items(small, 5, 1) == squad_items(small, 5, 1)
    assert len(squad_items(small, 5, 1)) == 5
    assert squad_items(small, 0, 1) == []
    assert {i.id for i in squad_items(small, 100, 1)} == {i.id for i in squad_items(small, 100, 2)}


@pytest.mark.parametrize(
    ("answer", "question", "expected"),
    [
        ("1973", "When did it begin?", ("number", 4, "when")),
        ("12", "How many were there?", ("number", 2, "how many")),
        ("Paris", "Where is it?", ("name", 1, "where")),
        ("University of Chicago", "Which school did he attend?", ("name", 3, "which school")),
        ("NFL", "What league is it?", ("acronym", 1, "what league")),
        ("$12", "How much was it?", None),
        ("October 1973", "When?", None),
        ("the oil embargo", "What happened?", None),
        ("Super Bowl 50", "Which game?", None),
        ("Bank of the west", "Where?", None),  # the last word must be capitalised
        ("one two three four five", "What?", None),
    ],
)
def test_answer_types(answer: str, question: str, expected: tuple[str, int, str] | None) -> None:
    assert answer_type(answer, question) == expected


def test_squad_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        squad_items(missing, 3, 0)
    for name, text in [
        ("bad.json", "{not json"),
        ("list.json", "[1, 2]"),
        ("nodata.json", '{"version": "v2.0"}'),
        ("nocontext.json", '{"data": [{"paragraphs": [{"qas": []}]}]}'),
        ("noid.json", '{"data": [{"paragraphs": [{"context": "Rome.", "qas": [{"answers": ["Rome"]}]}]}]}'),
    ]:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=re.escape(str(path))):
            squad_items(path, 3, 0)
    with pytest.raises(ConfigError):
        squad_items(missing, -1, 0)


# --- SQuAD, on the shared dev set ----------------------------------------------------------------------


def test_squad_items_on_the_dev_set(data_dir: Path) -> None:
    path = data_dir / SQUAD_FILE
    items = squad_items(path, 300, 42)
    assert len(items) == 300 and len({item.id for item in items}) == 300
    assert items == squad_items(path, 300, 42)
    assert items != squad_items(path, 300, 43)
    contexts = _contexts(json.loads(path.read_text(encoding="utf-8")))
    for item in items:
        context, original = contexts[item.id.removeprefix("squad-")]
        _check_span(item, context, original)
        memory, passage = answer_type(item.memory_answer), answer_type(item.passage_answer)
        assert memory is not None and passage is not None and memory[:2] == passage[:2]
