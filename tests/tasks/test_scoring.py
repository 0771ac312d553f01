"""The one scoring path of static tasks and probe copies: filtered answers through ``process_results``,
failures as the sample's error, multiple-choice options from the answers."""

from __future__ import annotations

import math
from typing import Any

from lm_eval.api.instance import Instance

from evalsuite.engine import Outcome
from evalsuite.records import ChoiceScore
from evalsuite.tasks.scoring import choice_scores, process_results, response

DOC = {"question": "2 + 2?", "answer": "4"}


class ExactMatch:
    """A task scoring a filtered answer by exact match with the document's answer, counting its calls."""

    def __init__(self, failure: Exception | None = None, value: Any = None) -> None:
        self.calls: list[list[Any]] = []
        self.failure, self.value = failure, value

    def process_results(self, doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
        self.calls.append(results)
        if self.failure is not None:
            raise self.failure
        if self.value is not None:
            return {"exact_match": self.value}
        return {"exact_match": float(results[0] == doc["answer"]), "length": len(results[0])}


def filtered(**by_filter: str) -> Instance:
    request = Instance("generate_until", DOC, ("Q: 2 + 2?\nA:", {}), 0, ("arith", 0, 1))
    request.filtered_resps = dict(by_filter)
    return request


def test_every_filter_is_scored_and_named_by_it() -> None:
    task = ExactMatch()
    metrics, error = process_results(task, DOC, [filtered(strict="4", flexible="44")])
    assert error is None
    assert metrics == {
        "exact_match:strict": 1.0,
        "length:strict": 1,
        "exact_match:flexible": 0.0,
        "length:flexible": 2,
    }
    assert task.calls == [["4"], ["44"]]


def test_one_filter_keeps_the_plain_metric_names() -> None:
    metrics, error = process_results(ExactMatch(), DOC, [filtered(none="5")])
    assert (metrics, error) == ({"exact_match": 0.0, "length": 1}, None)


def test_a_probe_copy_is_scored_by_one_metric_of_the_first_filter() -> None:
    task = ExactMatch()
    metrics, error = process_results(task, DOC, [filtered(strict="4", flexible="44")], "exact_match")
    assert (metrics, error) == ({"exact_match": 1.0}, None)
    assert task.calls == [["4"]]


def test_an_output_the_task_cannot_score_is_the_samples_error() -> None:
    task = ExactMatch(failure=ValueError("no number in 'four'"))
    expected = ({}, "scoring failed: ValueError: no number in 'four'")
    assert process_results(task, DOC, [filtered(strict="four", flexible="four")]) == expected
    assert process_results(task, DOC, [filtered(strict="four")], "exact_match") == expected


def test_a_probe_metric_that_is_not_a_number_is_a_scoring_failure() -> None:
    task = ExactMatch(value=(["4"], ["four"]))  # what a corpus-level metric (BLEU) returns per sample
    metrics, error = process_results(task, DOC, [filtered(none="four")], "exact_match")
    assert metrics == {}
    assert error is not None and error.startswith("scoring failed: TypeError: float() argument")
    assert process_results(task, DOC, [filtered(none="four")]) == ({"exact_match": [["4"], ["four"]]}, None)


def test_a_failed_request_gives_an_option_with_no_loglikelihood() -> None:
    answers = [
        response("loglikelihood", Outcome(value=(-1.5, True))),
        response("loglikelihood", Outcome(value=None, error="BackendError: timeout")),
    ]
    assert answers[1] == (-math.inf, False)
    assert choice_scores(["Paris", "London"], answers) == [
        ChoiceScore(text="Paris", loglikelihood=-1.5, is_greedy=True),
        ChoiceScore(text="London", loglikelihood=None, is_greedy=False),
    ]
    assert response("generate_until", Outcome(value=None, error="BackendError: timeout")) == ""
