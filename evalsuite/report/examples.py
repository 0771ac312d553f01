"""The robustness section's example browser: a few probe samples per unit, flips first, with their diffs.

For each probe unit, up to ``LIMIT`` changed copies are picked: first the *flips* (the sample's clean copy
scored better than this copy, for 0/1 scores "clean right, perturbed wrong", matched by model and
doc_id), then copies whose answer changed, then copies whose text changed, then the rest; one copy per
(model, sample) before any is shown twice. A unit without clean copies (prompt format) has no
flips. Each example carries the character diff of its original and perturbed text
(:func:`~evalsuite.report.diff.char_diff`) and both answers; every string has been through
:func:`~evalsuite.report.render.clean`, and the browser writes them with ``textContent`` only.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalsuite.records import ProbeDetail, SampleRecord
from evalsuite.report.diff import char_diff, visible

LIMIT = 20


def probe_examples(
    samples: Sequence[SampleRecord], units: Sequence[str], limit: int = LIMIT
) -> dict[str, Any]:
    """``{"units": [...], "examples": [...]}`` for the units named, in their order."""
    by_unit: dict[str, list[SampleRecord]] = defaultdict(list)
    wanted = set(units)
    for record in samples:
        if record.probe is not None and record.task in wanted:
            by_unit[record.task].append(record)
    examples = [example for unit in units for example in _pick(by_unit[unit], limit)]
    return {"units": [visible(u) for u in units], "examples": examples}


@dataclass(frozen=True)
class _Copy:
    record: SampleRecord
    reference: SampleRecord | None  # the same sample's clean copy, for the same model
    flip: bool
    rank: tuple[bool, ...]  # smaller first


def _pick(records: list[SampleRecord], limit: int) -> list[dict[str, Any]]:
    clean_copies = {(r.model, r.doc_id): r for r in records if r.variant == "clean"}
    copies = []
    for r in records:
        if r.variant == "clean":
            continue
        reference = clean_copies.get((r.model, r.doc_id))
        flip = _flip(reference, r)
        changed = r.probe is not None and r.probe.perturbed != r.probe.original
        rank = (not flip, not _answer_changed(reference, r), not changed, r.error is not None)
        copies.append(_Copy(r, reference, flip, rank))
    copies.sort(key=lambda c: (c.rank, c.record.doc_id))  # stable: models in record order per sample
    seen: set[tuple[str, int]] = set()
    repeats = []
    for c in copies:
        repeats.append((c.record.model, c.record.doc_id) in seen)
        seen.add((c.record.model, c.record.doc_id))
    order = sorted(range(len(copies)), key=lambda i: (not copies[i].flip, repeats[i], i))
    return [_example(copies[i]) for i in order[:limit]]


def _score(record: SampleRecord | None) -> float | None:
    return None if record is None or record.probe is None or record.error else record.probe.score


def _flip(reference: SampleRecord | None, record: SampleRecord) -> bool:
    before, after = _score(reference), _score(record)
    return before is not None and after is not None and after < before


def _answer_changed(reference: SampleRecord | None, record: SampleRecord) -> bool:
    if reference is None or reference.probe is None or record.probe is None:
        return False
    return bool(reference.probe.answer != record.probe.answer)


def _example(copy: _Copy) -> dict[str, Any]:
    record, reference = copy.record, copy.reference
    probe = record.probe or ProbeDetail(probe="", kind="", task="", original="", perturbed="")
    return {
        "unit": visible(record.task),
        "model": visible(record.model),
        "doc": record.doc_id,
        "variant": visible(record.variant),
        "flip": copy.flip,
        "diff": char_diff(probe.original, probe.perturbed),
        "clean": None if reference is None else _answer(reference),
        "perturbed": _answer(record),
        "details": visible(" · ".join(f"{k} = {short(v)}" for k, v in probe.details.items())),
    }


def _answer(record: SampleRecord) -> list[Any]:
    """``[answer, score, error]`` of one copy, the answer as readable text."""
    probe = record.probe
    answer = None if probe is None or probe.answer is None else visible(short(probe.answer))
    error = None if record.error is None else visible(record.error[:2000])
    return [answer, _score(record), error]


def short(value: Any, limit: int = 500) -> str:
    """``value`` as text (JSON unless a string), cut after ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
