"""The copies of each sample a perturbation or option-order unit answered, grouped by sample.

Kept apart from :mod:`evalsuite.probes.metrics` (which reads lm-eval's tasks) so that the comparisons of
a finished run's probe units (``evalsuite compare``, :mod:`evalsuite.probes.comparisons`) read the same
samples the unit's metrics were computed from without importing a model library.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalsuite.records import ProbeDetail, SampleRecord

Array = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Copies:
    """The samples of a unit whose every copy was scored: clean copy, changed copies, answers."""

    doc_ids: list[int]
    clean: Array  # (samples,)
    changed: Array  # (samples, copies), NaN past a sample's own number of copies
    flips: Array  # (samples, copies): does the copy's answer differ from the clean answer
    altered: Array  # (samples, copies): did the probe change the text
    records: dict[int, list[SampleRecord]]  # by doc_id, clean first
    errors: int

    @property
    def n(self) -> int:
        return len(self.doc_ids)


def copies(records: Sequence[SampleRecord]) -> Copies:
    """Group a unit's records by sample; samples may have different numbers of copies (an option-order
    probe makes k - 1 per question of k options): missing cells of the matrices are NaN."""
    by_doc: dict[int, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_doc[record.doc_id].append(record)
    kept: dict[int, list[SampleRecord]] = {}
    for doc_id, group in by_doc.items():
        group.sort(key=lambda r: r.variant != "clean")  # clean first, the rest in probe order
        if all(r.error is None and r.probe is not None and r.probe.score is not None for r in group):
            kept[doc_id] = group
    groups = list(kept.values())
    width = max((len(g) - 1 for g in groups), default=0)
    details = [[r.probe for r in g if r.probe is not None] for g in groups]

    def matrix(value: Callable[[ProbeDetail, ProbeDetail], float]) -> Array:
        out = np.full((len(groups), width), np.nan)
        for row, group in enumerate(details):
            for column, detail in enumerate(group[1:]):
                out[row, column] = value(detail, group[0])
        return out

    return Copies(
        doc_ids=list(kept),
        clean=np.array([float(g[0].score or 0.0) for g in details], dtype=np.float64),
        changed=matrix(lambda d, _: float(d.score or 0.0)),
        flips=matrix(lambda d, clean: float(d.answer != clean.answer)),
        altered=matrix(lambda d, _: float(d.perturbed != d.original)),
        records=kept,
        errors=len(by_doc) - len(kept),
    )


def copy_rows(records: Sequence[SampleRecord]) -> dict[int, tuple[float, ...]]:
    """Per sample with at least one changed copy, by doc_id: its clean score, the sum of its changed
    copies' scores, their number, their mean, how many gave another answer than the clean copy, and
    whether none did (the columns ``CLEAN`` ... ``SAME`` of :mod:`evalsuite.probes.comparable`). Over
    the samples :func:`copies` keeps, with unit weights these give the unit's ``perturbed`` (sum /
    copies), ``pdr`` (1 - sum of means / sum of clean), ``flip_rate`` (flips / copies) and
    ``consistency`` (mean of SAME)."""
    data = copies(records)
    out: dict[int, tuple[float, ...]] = {}
    for doc, clean, changed, flips in zip(data.doc_ids, data.clean, data.changed, data.flips, strict=True):
        present = ~np.isnan(changed)
        count = int(present.sum())
        if count:
            scores, flipped = changed[present], float(flips[present].sum())
            row = (
                float(clean),
                float(scores.sum()),
                float(count),
                float(scores.mean()),
                flipped,
                float(flipped == 0),
            )
            out[doc] = row
    return out
