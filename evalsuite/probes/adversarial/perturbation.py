"""Perturbation probes: each sample's text changed ``seeds`` times by one perturbation kind.

The changed fields are the document's own text fields (``fields:``, or those that appear in the
prompt); answer options change only with ``choices: true``. Misleading and injected sentences that
name a wrong answer take a wrong option of the sample (multiple choice only).
"""

from __future__ import annotations

import random
from pathlib import Path

from evalsuite.errors import ConfigError
from evalsuite.probes.adversarial.perturbers import DISTRACTORS, Perturber, build_perturber
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
    text_fields,
)
from evalsuite.probes.kinds.perturbation import PerturbationConfig
from evalsuite.probes.metrics import paired_result
from evalsuite.probes.scoring import StaticProbe
from evalsuite.records import SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings


class PerturbationProbe(StaticProbe):
    def __init__(self, config: PerturbationConfig, cache_dir: Path) -> None:
        self.config = config
        self.perturb: Perturber = build_perturber(config.kind, config.severity, cache_dir)

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        check_task(unit, samples[0])
        fields = text_fields(unit, samples[0], self.config.fields)
        where = None
        if self.config.choices:
            first = samples[0]
            where = options_field(first.doc, first.options or (), first.text)
            if where is None:
                raise ConfigError(
                    f"probe {unit.config.label!r}: 'choices: true' but task {unit.task_name!r} has no "
                    "list of answer options in its documents"
                )
        variants = []
        for sample in samples:
            variants.append(clean(unit, sample))
            for copy in range(self.config.seeds):
                variants.append(self._copy(unit, sample, fields, where, copy))
        return variants

    def _copy(
        self,
        unit: ProbeUnit,
        sample: Sample,
        fields: tuple[str, ...],
        where: tuple[str, str | None] | None,
        copy: int,
    ) -> Variant:
        seed = unit.seed_for(sample.doc_id, copy)
        wrong = wrong_answer(sample, seed)
        doc = dict(sample.doc)
        if self.perturb.kind in DISTRACTORS:  # one insertion per copy, into a field the seed picks
            fields = (random.Random(seed).choice(fields),)
        for i, name in enumerate(fields):
            doc[name] = self.perturb(str(doc[name]), seed + i, wrong)
        if where is not None:
            options = get_options(doc, where)
            doc = set_options(doc, where, [self.perturb(o, seed + 100 + i) for i, o in enumerate(options)])
        return rewrite(unit, sample, f"seed-{copy}", doc, details={"seed": seed, "fields": list(fields)})

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        return paired_result(unit, model, records, settings)


def wrong_answer(sample: Sample, seed: int) -> str | None:
    """A wrong option's text, picked by ``seed``; None for generation tasks.

    Where the scored choices are letters (MMLU), the option texts listed in the prompt are used."""
    if sample.options is None or sample.gold is None:
        return None
    where = options_field(sample.doc, sample.options, sample.text)
    texts = get_options(sample.doc, where) if where is not None else list(sample.options)
    wrong = [t for i, t in enumerate(texts) if i != sample.gold]
    return random.Random(seed).choice(wrong) if wrong else None
