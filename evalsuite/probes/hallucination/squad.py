"""SQuAD 2.0 answer scoring: exact match and token F1, exactly as the official evaluation script.

Reimplements ``normalize_answer``, ``get_tokens``, ``compute_exact``, ``compute_f1`` and the per-question
part of ``get_raw_scores`` from the official "Official evaluation script for SQuAD version 2.0"
(``evaluate-v2.0.py``, https://rajpurkar.github.io/SQuAD-explorer/, Rajpurkar, Jia and Liang 2018,
"Know What You Don't Know: Unanswerable Questions for SQuAD"), with the same behaviour on every input:

* normalisation lower-cases, drops ASCII punctuation (``string.punctuation``), replaces the articles
  *a*, *an*, *the* by a space, and collapses whitespace, in that order;
* gold answers that normalise to nothing are dropped; a question left with none is unanswerable and
  its only gold answer is ``""``, so only a prediction that normalises to nothing ("", "the", ".")
  scores 1, and any other prediction scores 0 on both metrics;
* a prediction's score is its best score over the gold answers.

Argument order: the one-gold functions keep the script's ``(gold, prediction)``; the per-question
functions :func:`exact_match` and :func:`f1_score` take ``(prediction, answers)`` and refuse a bare
string as ``answers``.

The official script reports 100 x the mean over questions; these functions return per-question scores
in [0, 1] and leave aggregation (and intervals) to the caller.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official ``normalize_answer``)."""
    lowered = text.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punctuation)
    return " ".join(no_articles.split())


def answer_tokens(text: str) -> list[str]:
    """The normalised answer split on whitespace (official ``get_tokens``)."""
    if not text:
        return []
    return normalize_answer(text).split()


def compute_exact(gold: str, prediction: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0 (official ``compute_exact``)."""
    return float(normalize_answer(gold) == normalize_answer(prediction))


def compute_f1(gold: str, prediction: str) -> float:
    """Token-overlap F1 of one prediction against one gold answer (official ``compute_f1``).

    When either side has no tokens (a no-answer), F1 is 1.0 if both have none and 0.0 otherwise.
    """
    gold_tokens = answer_tokens(gold)
    predicted_tokens = answer_tokens(prediction)
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    same = sum((Counter(gold_tokens) & Counter(predicted_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(predicted_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(answers: Sequence[str]) -> list[str]:
    """The gold answers that count: those that normalise to something, or ``[""]`` when none does."""
    kept = [answer for answer in answers if normalize_answer(answer)]
    return kept or [""]


def is_unanswerable(answers: Sequence[str]) -> bool:
    """True when a question has no gold answer that normalises to something (SQuAD 2.0's no-answer)."""
    return gold_answers(answers) == [""]


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """Best exact match of ``prediction`` over a question's gold answers (``[]`` for unanswerable)."""
    return max(compute_exact(gold, prediction) for gold in gold_answers(_answer_list(answers)))


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """Best token F1 of ``prediction`` over a question's gold answers (``[]`` for unanswerable)."""
    return max(compute_f1(gold, prediction) for gold in gold_answers(_answer_list(answers)))


def _answer_list(answers: Sequence[str]) -> Sequence[str]:
    # A string is a Sequence[str] too: swapped arguments would score character by character, silently.
    if isinstance(answers, str):
        raise TypeError("answers is a sequence of gold answers, not one string (arguments swapped?)")
    return answers
