"""A probe kind in one file: the sample's own text in capital letters ("SHOUTING"), one copy per sample.

It shows everything a kind declares (docs/architecture.md, "Adding a probe kind"): its Config, its
Details, its metrics, how to build it, and where the report shows it. Install it by naming the module in
the ``evalsuite.probe_kinds`` entry-point group of any package::

    [project.entry-points."evalsuite.probe_kinds"]
    upper_case = "upper_case"

then use it in a config: ``probes: [{kind: upper_case, tasks: [arc_challenge_local]}]``. A kind that
ships with evalsuite is the same file under ``evalsuite/probes/kinds/``. The implementation is imported
in ``build`` only, so configs and reports, which import every kind, import no model library.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from evalsuite.probes.registry import Details, Family, ProbeConfigBase, ProbeKind, ReportHooks, register

if TYPE_CHECKING:
    from evalsuite.probes.base import Probe

METRICS = ("pdr", "clean", "perturbed", "drop", "flip_rate", "worst_case", "changed")


class UpperCaseConfig(ProbeConfigBase):
    kind: Literal["upper_case"]


class UpperCaseDetails(Details):
    fields: tuple[str, ...] = ()  # the document fields written in capitals


def build(config: UpperCaseConfig, cache_dir: Path) -> Probe:
    from evalsuite.probes.base import ProbeUnit, Sample, Variant, check_task, clean, rewrite, text_fields
    from evalsuite.probes.metrics import paired_result
    from evalsuite.probes.scoring import StaticProbe
    from evalsuite.records import SampleRecord, TaskResult
    from evalsuite.stats.intervals import IntervalSettings

    class UpperCaseProbe(StaticProbe):
        def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
            check_task(unit, samples[0])
            fields = text_fields(unit, samples[0])
            variants = []
            for sample in samples:
                doc = {**sample.doc, **{name: str(sample.doc[name]).upper() for name in fields}}
                variants.append(clean(unit, sample))
                variants.append(rewrite(unit, sample, "upper", doc, details={"fields": list(fields)}))
            return variants

        def summarize(
            self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
        ) -> TaskResult:
            return paired_result(unit, model, records, settings)

    return UpperCaseProbe()


register(
    ProbeKind(
        name="upper_case",
        summary="the sample's own text in capital letters",
        config=UpperCaseConfig,
        details=UpperCaseDetails,
        metrics=METRICS,
        build=build,
        report=ReportHooks("robustness", Family("upper_case", "Upper case", METRICS, mcnemar=True), order=4),
    )
)
