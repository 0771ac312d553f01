"""SQuAD 2.0 scoring against the official evaluate-v2.0.py's behaviour, worked out by hand."""

from __future__ import annotations

import pytest

from evalsuite.probes.hallucination.squad import (
    answer_tokens,
    compute_exact,
    compute_f1,
    exact_match,
    f1_score,
    gold_answers,
    is_unanswerable,
    normalize_answer,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Quick, Brown Fox!", "quick brown fox"),
        ("  An   apple a\tday\n", "apple day"),
        ("theatre", "theatre"),  # articles only as whole words
        ("A.B.C.", "abc"),  # punctuation goes first: "a.b.c." -> "abc", no article left
        ("the-end", "theend"),  # likewise: "the-end" -> "theend", which is not an article
        ("don't", "dont"),
        ("“Quoted”", "“quoted”"),  # only ASCII punctuation (string.punctuation) is removed
        ("Élan THE", "élan"),
        ("a", ""),
        ("The", ""),
        ("", ""),
        ("1,000 km", "1000 km"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_tokens() -> None:
    assert answer_tokens("") == []
    assert answer_tokens("the") == []
    assert answer_tokens("The Denver Broncos.") == ["denver", "broncos"]


def test_exact() -> None:
    assert compute_exact("Denver Broncos", "the denver broncos!") == 1.0
    assert compute_exact("Denver Broncos", "Broncos") == 0.0
    assert compute_exact("", "an") == 1.0  # both normalise to nothing


@pytest.mark.parametrize(
    ("gold", "prediction", "expected"),
    [
        ("Denver Broncos", "Broncos", 2 / 3),  # p = 1, r = 1/2
        ("Carolina Panthers", "the Panthers of Carolina", 0.8),  # p = 2/3, r = 1
        ("x x y", "x y y", 2 / 3),  # token counts clip: common = {x: 1, y: 1}
        ("Paris", "London", 0.0),
        ("Paris", "", 0.0),  # answerable, empty prediction
        ("", "Paris", 0.0),  # no-answer gold, non-empty prediction
        ("", "", 1.0),
        ("", "the.", 1.0),  # "the." normalises to nothing: it is a no-answer prediction
        ("Nikola Tesla", "nikola tesla", 1.0),
    ],
)
def test_f1(gold: str, prediction: str, expected: float) -> None:
    assert compute_f1(gold, prediction) == pytest.approx(expected)


def test_max_over_gold_answers() -> None:
    golds = ["Denver Broncos", "Broncos", "the Denver Broncos"]
    assert exact_match("Broncos", golds) == 1.0
    assert f1_score("Broncos", golds) == 1.0
    assert exact_match("Denver", golds) == 0.0
    assert f1_score("Denver", golds) == pytest.approx(2 / 3)  # best: "Denver Broncos", p = 1, r = 1/2


def test_gold_answers_drop_empty_ones() -> None:
    assert gold_answers(["", " the ", "Paris"]) == ["Paris"]
    assert gold_answers([]) == [""]
    assert gold_answers(["the", "."]) == [""]


def test_unanswerable_questions() -> None:
    assert is_unanswerable([])
    assert is_unanswerable(["an", "!"])  # gold answers that normalise to nothing do not count
    assert not is_unanswerable(["Paris"])
    for prediction in ("", "the", " . ", "A"):
        assert exact_match(prediction, []) == 1.0
        assert f1_score(prediction, []) == 1.0
    for prediction in ("Paris", "unanswerable", "no answer"):
        assert exact_match(prediction, []) == 0.0
        assert f1_score(prediction, []) == 0.0


def test_answerable_question_with_empty_prediction_scores_zero() -> None:
    assert exact_match("", ["Paris"]) == 0.0
    assert f1_score("", ["Paris"]) == 0.0


def test_a_string_of_answers_is_refused() -> None:
    with pytest.raises(TypeError, match="swapped"):
        exact_match("Paris", "Paris")
    with pytest.raises(TypeError, match="swapped"):
        f1_score("Paris", "Paris")
