"""Helpers for the DyVal task files ``dyval_{arithmetic,boolean,deduction}_local.yaml``.

The items are not read from a file: :func:`load` generates them with
:func:`evalsuite.dynamic.dyval.generate`, so the same (family, levels, per_level, seed) always gives the
same documents, and the ``dyval_*`` probes with that seed and ``limit: per_level`` ask the same
questions. :func:`process_results` judges an answer exactly as the probes do (:func:`dyval.correct`):
lm-eval's ``regex`` filter can read the canonical "Answer: X" line, but not extract's fallback to the
last value when the line is missing, nor "1,234" or "5.0" as integers, so the two would disagree.

This module imports :mod:`evalsuite`, so lm-eval run on its own (``--include_path tasks``) needs
evalsuite installed in the same environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import datasets

from evalsuite.dynamic import dyval

_FEATURES = datasets.Features(
    {
        "family": datasets.Value("string"),
        "level": datasets.Value("int64"),
        "index": datasets.Value("int64"),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "nodes": datasets.Value("int64"),
    }
)


def load(
    family: dyval.Family,
    levels: Sequence[int] = dyval.LEVELS,
    per_level: int = 50,
    seed: int = 0,
    **kwargs: Any,
) -> datasets.DatasetDict:
    """``custom_dataset`` for lm-eval: a ``test`` split, ``per_level`` items at each of ``levels`` in order.

    Extra keyword arguments (lm-eval passes the task metadata, e.g. ``version`` or ``pretrained``) are
    ignored. Bad values (an unknown level, ``per_level`` < 1) raise ``ValueError`` from ``generate``.
    """
    levels = list(levels)
    if len(set(levels)) != len(levels):
        raise ValueError(f"DyVal levels must not repeat: {levels}")
    rows = [asdict(item) for level in levels for item in dyval.generate(family, level, per_level, seed)]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows, features=_FEATURES)})


def arithmetic(**kwargs: Any) -> datasets.DatasetDict:
    """:func:`load` for ``dyval_arithmetic_local``."""
    return load("arithmetic", **kwargs)


def boolean(**kwargs: Any) -> datasets.DatasetDict:
    """:func:`load` for ``dyval_boolean_local``."""
    return load("boolean", **kwargs)


def deduction(**kwargs: Any) -> datasets.DatasetDict:
    """:func:`load` for ``dyval_deduction_local``."""
    return load("deduction", **kwargs)


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """``exact_match`` is 1 when :func:`dyval.extract` reads the document's answer in the generation."""
    return {"exact_match": int(dyval.extract(doc["family"], results[0]) == doc["answer"])}
