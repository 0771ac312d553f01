"""Helpers for ``truthfulqa_mc1_local.yaml`` / ``truthfulqa_mc2_local.yaml``.

``mc_task.json`` (the original TruthfulQA release) stores each target set as ``{answer text: 0/1}``;
the Hugging Face ``truthful_qa/multiple_choice`` dataset that lm-eval uses is the same data as
``{choices: [...], labels: [...]}`` in the same order (the MC1 correct answer first). :func:`load`
does that conversion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

_TARGETS = {
    "choices": datasets.Sequence(datasets.Value("string")),
    "labels": datasets.Sequence(datasets.Value("int32")),
}
_FEATURES = datasets.Features(
    {"question": datasets.Value("string"), "mc1_targets": _TARGETS, "mc2_targets": _TARGETS}
)


def _targets(answers: dict[str, int]) -> dict[str, list[Any]]:
    return {"choices": list(answers), "labels": [int(v) for v in answers.values()]}


def load(path: str, **kwargs: Any) -> datasets.DatasetDict:
    """``custom_dataset`` for lm-eval: the 817 questions as a ``validation`` split.

    Extra keyword arguments (lm-eval passes the task metadata, e.g. ``pretrained``) are ignored.
    """
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    docs = [
        {
            "question": row["question"],
            "mc1_targets": _targets(row["mc1_targets"]),
            "mc2_targets": _targets(row["mc2_targets"]),
        }
        for row in rows
    ]
    for doc in docs:
        if doc["mc1_targets"]["labels"][0] != 1 or sum(doc["mc1_targets"]["labels"]) != 1:
            raise ValueError(f"MC1 targets must list the one correct answer first: {doc['question']!r}")
    return datasets.DatasetDict({"validation": datasets.Dataset.from_list(docs, features=_FEATURES)})
