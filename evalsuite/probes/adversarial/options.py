"""Answer-order probe: every cyclic rotation of a multiple-choice question's options.

With k options each question is asked k times, the right answer visiting every position once. Besides
the paired metrics (clean = the task's own order), the probe reports

* ``rstd``: the standard deviation over positions of the recall of questions whose right answer sits
  there (PriDe, Zheng et al. 2024, "Large Language Models Are Not Robust Multiple Choice Selectors";
  they report it x100), bootstrapped over questions;
* ``consistency``: the share of questions whose chosen answer (its content) is the same in every order.

Rotations only matter where the options are listed in the prompt (MMLU-style, scored by letter); a
task that scores each option as a separate continuation is refused, since order cannot change it.
"""

from __future__ import annotations

import numpy as np

from evalsuite.errors import ConfigError
from evalsuite.probes.base import (
    ProbeUnit,
    Sample,
    Variant,
    check_task,
    clean,
    get_options,
    options_field,
    rewrite,
    set_options,
)
from evalsuite.probes.copies import Array, copies
from evalsuite.probes.kinds.option_order import position_rows
from evalsuite.probes.metrics import (
    mcnemar,
    metric,
    paired_metrics,
    statistic_interval,
    summary,
    task_result,
)
from evalsuite.probes.scoring import StaticProbe
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings, mean_interval


class OptionOrderProbe(StaticProbe):
    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        first = samples[0]
        check_task(unit, first)
        label, task = unit.config.label, unit.task_name
        if first.options is None:
            raise ConfigError(f"probe {label!r}: task {task!r} is not multiple choice")
        where = options_field(first.doc, first.options, first.text)
        if where is None:
            raise ConfigError(f"probe {label!r}: task {task!r} keeps no list of options in its documents")
        variants = []
        for sample in samples:
            variants.append(clean(unit, sample))
            k = len(sample.options or ())
            options = get_options(sample.doc, where)
            for shift in range(1, k):
                order = tuple((i + shift) % k for i in range(k))  # position -> original index
                doc = set_options(sample.doc, where, [options[j] for j in order])
                gold = order.index(sample.gold or 0)
                details = {"rotation": shift, "gold_position": gold}
                variants.append(
                    rewrite(unit, sample, f"rotation-{shift}", doc, gold=gold, order=order, details=details)
                )
        if len(variants) > 1 and _same_requests(variants[0], variants[1]):
            raise ConfigError(
                f"probe {label!r}: task {task!r} scores each option as its own continuation and does not "
                "list them in the prompt, so their order cannot change an answer"
            )
        return variants

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        data = copies(records)
        metrics = paired_metrics(data, settings)
        by_position = position_matrix(data.records)
        rng = np.random.default_rng(settings.seed)
        if by_position.size:
            rstd = statistic_interval(by_position, recall_std, rng, settings)
            metrics["rstd"] = metric(rstd, len(by_position), data.errors, False, "rstd")
        same = [float(np.nansum(row) == 0) for row in data.flips]
        metrics["consistency"] = metric(mean_interval(same, settings.confidence), data.n, data.errors, True)
        return task_result(unit, model, metrics, summary(unit, data.n, mcnemar=mcnemar(data)), "consistency")


def _same_requests(a: Variant, b: Variant) -> bool:
    """Do two copies ask the model the same things, only in another order?"""
    return sorted(map(str, (r.args for r in a.requests))) == sorted(map(str, (r.args for r in b.requests)))


def position_matrix(records: dict[int, list[SampleRecord]]) -> Array:
    """(questions, positions): was the question answered right when its answer sat at that position.

    Only questions with the most common number of options take part, so every row covers every position
    (:func:`evalsuite.probes.kinds.option_order.position_rows`)."""
    rows = position_rows(records)
    return np.array(list(rows.values()), dtype=np.float64) if rows else np.zeros((0, 0))


def recall_std(*positions: Array, axis: int = -1) -> Array:
    """Population standard deviation over positions of per-position recall."""
    recalls = np.stack([p.mean(axis=axis) for p in positions])
    return recalls.std(axis=0)  # type: ignore[no-any-return]
