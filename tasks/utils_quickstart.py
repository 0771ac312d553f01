"""Helpers for ``quickstart_qa.yaml``: exact match after answer normalisation."""

from __future__ import annotations

import re
import string
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, and collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """``exact_match`` is 1 when the (first) generation equals any accepted answer after normalisation."""
    prediction = normalize_answer(results[0])
    return {"exact_match": int(any(prediction == normalize_answer(alias) for alias in doc["answers"]))}
