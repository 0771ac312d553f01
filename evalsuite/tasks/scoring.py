"""How one sample is scored, for static tasks (:mod:`evalsuite.tasks.evaluate`) and probe copies
(:mod:`evalsuite.probes.scoring`) alike: answers as lm-eval's filters take them, the task's filters, its
``process_results`` (a failure is the sample's error), the options of a multiple-choice question, and
values made plain JSON. A change to how a sample is scored is made here, once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from lm_eval.api.instance import Instance

from evalsuite.engine import Outcome
from evalsuite.records import ChoiceScore

# What a failed request stands in with, so lm-eval's filters still run; the sample is marked as an error.
PLACEHOLDER: dict[str, Any] = {
    "loglikelihood": (-math.inf, False),
    "loglikelihood_rolling": -math.inf,
    "generate_until": "",
}


def response(request_type: str, outcome: Outcome) -> Any:
    """One answer as lm-eval's filters and ``process_results`` take it; a failed request's placeholder."""
    return outcome.value if outcome.error is None else PLACEHOLDER[request_type]


def apply_filters(task: Any, requests: Sequence[Instance]) -> None:
    """The task's filters (lm-eval's ``filter_list``) on ``requests``, whose ``resps`` are set: each gets
    ``filtered_resps``, one entry per filter."""
    for ensemble in getattr(task, "_filters", []):
        ensemble.apply(list(requests))


def process_results(
    task: Any, doc: Any, requests: Sequence[Instance], metric: str | None = None
) -> tuple[dict[str, Any], str | None]:
    """The task's metrics of one document and the sample's error: ``process_results`` on the filtered
    answers of each filter, named by :func:`metric_name`, values made plain JSON. With ``metric``, only
    that metric of the first filter, as a float (what a probe scores a copy by). A model output the task
    cannot score is that sample's error ("scoring failed: ..."), with no metrics."""
    filters = list(requests[0].filtered_resps)
    metrics: dict[str, Any] = {}
    try:
        for key in filters[:1] if metric is not None else filters:
            scored = task.process_results(doc, [r.filtered_resps[key] for r in requests])
            if metric is not None:
                return {metric: float(scored[metric])}, None
            metrics.update({metric_name(m, key, filters): jsonable(v) for m, v in scored.items()})
    except Exception as failure:  # a model output the task cannot score is that sample's error
        return {}, f"scoring failed: {type(failure).__name__}: {failure}"
    return metrics, None


def choice_scores(texts: Iterable[Any], answers: Iterable[Any]) -> list[ChoiceScore]:
    """A multiple-choice question's options with the model's ``(loglikelihood, is_greedy)`` answers (a
    failed request's placeholder gives no log-likelihood and not greedy)."""
    return [
        ChoiceScore(text=str(text), loglikelihood=finite(answer[0]), is_greedy=bool(answer[1]))
        for text, answer in zip(texts, answers, strict=False)
    ]


def metric_name(metric: str, filter_key: str, filters: Sequence[str]) -> str:
    """``acc`` for single-filter tasks; ``exact_match:strict-match`` where a task has several filters."""
    return metric if len(filters) == 1 else f"{metric}:{filter_key}"


def target(task: Any, doc: Any) -> Any:
    """The document's target as the task gives it, plain JSON."""
    return jsonable(task.doc_to_target(doc))


def plain_doc(doc: Any) -> dict[str, Any]:
    """The document as a record keeps it: its fields, or ``{"value": doc}`` for a document that is not
    a mapping."""
    return jsonable(dict(doc)) if isinstance(doc, dict) else {"value": jsonable(doc)}


def finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def jsonable(value: Any) -> Any:
    """Plain JSON values: tuples become lists, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
