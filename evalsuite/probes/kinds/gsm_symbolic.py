"""GSM-Symbolic: GSM8K test problems against fresh instances of the same problems (other names and
numbers, the same steps), paired by template, with a Min-K%++ contamination signal
(:mod:`evalsuite.dynamic.symbolic_probe`, templates in :mod:`evalsuite.dynamic.gsm_templates`);
docs/dynamic.md."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from evalsuite.probes.comparable import Comparable, Mean, Rows, per_record
from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe
    from evalsuite.records import SampleRecord
    from evalsuite.report.worst_cases import Ranked

LABELS = {
    "original_accuracy": ("original", "the GSM8K test problems themselves answered right"),
    "fresh_accuracy": ("fresh", "fresh instances (new names and numbers) answered right"),
    "drop": (
        "drop",
        "original minus fresh accuracy, paired by template; a positive drop is a memorisation signal",
    ),
    "fresh_set_sd": ("set spread (sd)", "standard deviation of the accuracy of the drawn sets"),
    "minkpp_gap": (
        "Min-K%++ gap",
        "original minus fresh Min-K%++ score, paired by template; a contamination signal, not a verdict",
    ),
}
ORIGINAL = "original"


class GsmSymbolicConfig(ProbeConfigBase):
    """``limit``: the number of templates (default: all of them)."""

    kind: Literal["gsm_symbolic"]
    sets: int = Field(5, ge=1, le=100)  # fresh instances per template, one per drawn set
    max_tokens: int = Field(320, ge=1, le=4096)  # longest worked answer
    contamination: bool = True  # score every question with Min-K%++ where the backend shows distributions
    min_k: float = Field(0.2, gt=0, le=1)  # the share of lowest-scoring tokens Min-K%++ averages

    brings_own_data: ClassVar[bool] = True


class SymbolicDetails(Details):
    row: int = -1  # the GSM8K test row of the template
    original: bool = False  # the GSM8K problem itself (else a fresh instance)
    draw: int = 0  # which set a fresh instance belongs to (1-based; 0 for the original)
    values: dict[str, str] = Field(default_factory=dict)  # the slot values of this instance
    minkpp: float | None = None  # Min-K%++ score of the question, where measured


def build(config: GsmSymbolicConfig, cache_dir: Path) -> Probe:
    from evalsuite.dynamic.symbolic_probe import GsmSymbolicProbe

    return GsmSymbolicProbe(config)


def _details(record: SampleRecord) -> SymbolicDetails:
    assert record.probe is not None
    return record.probe.details_as(SymbolicDetails)


def _is_original(record: SampleRecord) -> bool:
    return record.probe is not None and _details(record).original


def _is_fresh(record: SampleRecord) -> bool:
    return record.probe is not None and not _details(record).original


def _drop_rows(records: Sequence[SampleRecord]) -> Rows:
    """A row per template (doc_id) with both an answered original and answered fresh instances: the
    original's correctness minus the fresh instances' mean, whose Mean is the unit's drop."""
    original: dict[int, float] = {}
    fresh: dict[int, list[float]] = defaultdict(list)
    for r in records:
        if r.error is None and "correct" in r.metrics and r.probe is not None:
            if _details(r).original:
                original[r.doc_id] = float(r.metrics["correct"])
            else:
                fresh[r.doc_id].append(float(r.metrics["correct"]))
    return {t: (original[t] - sum(fresh[t]) / len(fresh[t]),) for t in original if fresh[t]}


def _fresh_rows(records: Sequence[SampleRecord]) -> Rows:
    """A row per template: the mean correctness of its fresh instances (templates weigh equally)."""
    fresh: dict[int, list[float]] = defaultdict(list)
    for r in records:
        if r.error is None and "correct" in r.metrics and _is_fresh(r):
            fresh[r.doc_id].append(float(r.metrics["correct"]))
    return {t: (sum(v) / len(v),) for t, v in fresh.items()}


COMPARED = {
    "original_accuracy": Comparable(per_record("correct", _is_original), Mean(), higher_is_better=True),
    "fresh_accuracy": Comparable(_fresh_rows, Mean(), higher_is_better=True),
    "drop": Comparable(_drop_rows, Mean(), higher_is_better=False),
}


def worst_cases(records: Sequence[SampleRecord]) -> list[Ranked]:
    """Templates whose original was answered right and whose fresh instances were not, the most fresh
    instances wrong first: where the score on GSM8K rests on the original wording."""
    from evalsuite.report import worst_cases as wc

    by_template: dict[int, list[SampleRecord]] = defaultdict(list)
    for r in records:
        if r.probe is not None and r.error is None and "correct" in r.metrics:
            by_template[r.doc_id].append(r)
    out: list[Ranked] = []
    for group in by_template.values():
        originals = [r for r in group if _details(r).original]
        fresh = [r for r in group if not _details(r).original]
        wrong = [r for r in fresh if not wc.right(r)]
        if not originals or not wc.right(originals[0]) or not wrong:
            continue
        share = len(wrong) / len(fresh)
        first = wrong[0]
        label = f"original right, {len(wrong)} of {len(fresh)} fresh instances wrong"
        case = wc.case(
            first, label, wc.question(first), wc.plain(str(first.filtered)), wc.accepted(first.target)
        )
        out.append(((-share,), case))
    return out


register(
    ProbeKind(
        name="gsm_symbolic",
        summary="GSM8K problems against fresh instances with new names and numbers; Min-K%++ signal",
        config=GsmSymbolicConfig,
        details=SymbolicDetails,
        metrics=tuple(LABELS),
        build=build,
        report=ReportHooks(
            "dynamic",
            Family("gsm_symbolic", "GSM-Symbolic: originals against fresh instances", tuple(LABELS)),
            order=1,
            labels=LABELS,
            worst_cases=worst_cases,
        ),
        comparable=COMPARED,
    )
)
