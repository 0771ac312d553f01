"""Helpers for ``boolq_local.yaml``: split llm-foundry's ``query`` back into BoolQ's fields."""

from __future__ import annotations

from typing import Any

import datasets

_PASSAGE = "Passage: "
_QUESTION = "\nQuestion: "


def _process_doc(doc: dict[str, Any]) -> dict[str, Any]:
    query: str = doc["query"]
    if not query.startswith(_PASSAGE) or _QUESTION not in query:
        raise ValueError(f"unexpected BoolQ query layout: {query[:80]!r}")
    passage, question = query[len(_PASSAGE) :].rsplit(_QUESTION, 1)
    # llm-foundry appended "?"; the HF question has none and lm-eval's template adds it back.
    return {"passage": passage, "question": question.removesuffix("?"), "label": int(doc["gold"])}


def process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """Add ``passage``, ``question`` (without the trailing "?") and ``label`` (0 = no, 1 = yes)."""
    return dataset.map(_process_doc)
