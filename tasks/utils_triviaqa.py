"""Helpers for ``triviaqa_local.yaml``: recover the question from llm-foundry's prompt."""

from __future__ import annotations

from typing import Any

import datasets

_PREFIX = "Question: "
_SUFFIX = "\nAnswer:"


def _process_doc(doc: dict[str, Any]) -> dict[str, Any]:
    context: str = doc["context"]
    if not (context.startswith(_PREFIX) and context.endswith(_SUFFIX)):
        raise ValueError(f"unexpected TriviaQA context layout: {context[:80]!r}")
    aliases: list[str] = list(doc["aliases"])
    if doc["answer"] not in aliases:
        aliases.append(doc["answer"])
    return {"question": context[len(_PREFIX) : -len(_SUFFIX)], "aliases": aliases}


def process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """Add ``question`` (as in the HF dataset, usually ending in "?") and make ``answer`` an alias."""
    return dataset.map(_process_doc)
