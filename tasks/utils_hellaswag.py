"""Helpers for ``hellaswag_local.yaml`` (HellaSwag validation, llama.cpp-style preprocessed text).

The local rows are ``{ind, ctx, label, endings}`` with ``ctx = activity_label + ": " + ctx_a + " " + ctx_b``
and the WikiHow ``[header]``/``[step]``/``[title]`` markers already handled. lm-eval builds its query as
``preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())``; :func:`process_docs` redoes
that as far as the local text allows:

* lm-eval's own ``preprocess`` is applied to the query and the endings (a no-op for most rows; it removes
  the remaining bracketed spans, e.g. ``[www.kiddio.org]``, exactly as lm-eval does);
* ``ctx_b`` is not stored separately. In the ActivityNet rows the context ends in an unfinished sentence
  fragment (``"... on a roof. he"``); when the text after the last ``". "`` has no final punctuation and
  starts in lower case it is taken to be ``ctx_b`` and capitalised like lm-eval does (``"... roof. He"``).
"""

from __future__ import annotations

import re
from typing import Any

import datasets

_TERMINAL = re.compile(r"[.!?\"')\]]$")


def preprocess(text: str) -> str:
    """lm-eval's ``hellaswag.utils.preprocess`` (copied so the task does not import lm-eval task code)."""
    text = text.strip()
    # Brackets are artifacts of the WikiHow part of HellaSwag.
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def restore_ctx_b_case(ctx: str) -> str:
    """Capitalise the trailing ``ctx_b`` fragment the way lm-eval's ``ctx_b.capitalize()`` does."""
    if _TERMINAL.search(ctx):
        return ctx
    cut = ctx.rfind(". ")
    start = cut + 2 if cut >= 0 else ctx.find(": ") + 2  # no sentence before it: fragment follows the label
    if start < 2:
        return ctx
    fragment = ctx[start:]
    if not fragment[:1].islower():
        return ctx
    return ctx[:start] + fragment.capitalize()


def _process_doc(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "query": preprocess(restore_ctx_b_case(doc["ctx"])),
        "choices": [preprocess(ending) for ending in doc["endings"]],
        "gold": int(doc["label"]),
    }


def process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """Add lm-eval's ``query``/``choices``/``gold`` fields."""
    return dataset.map(_process_doc)
