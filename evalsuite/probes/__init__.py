"""Probes: tasks rewritten to test a model's robustness, sent through the same engine as static tasks.

``probe_for(config, cache_dir)`` finds the probe of a config entry's ``kind``; every probe prepares its
variants (rewritten copies of each sample) before any model loads, runs them through the engine, and
summarizes the records into one result per (model, probe, task).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evalsuite.config import PERTURBATION_KINDS, ProbeConfig
from evalsuite.probes.base import Probe, ProbeUnit, Sample, Variant, samples
from evalsuite.probes.metrics import Settings


def probe_for(config: ProbeConfig, cache_dir: Path) -> Probe:
    """The probe of ``config.kind``; only the kinds that need textattack import it."""
    if config.kind in PERTURBATION_KINDS:
        from evalsuite.probes.adversarial.perturb import PerturbationProbe

        return PerturbationProbe(config, cache_dir)
    if config.kind == "option_order":
        from evalsuite.probes.adversarial.options import OptionOrderProbe

        return OptionOrderProbe()
    if config.kind == "prompt_format":
        from evalsuite.probes.adversarial.formats import FormatProbe

        return FormatProbe()
    if config.kind == "attack":
        from evalsuite.probes.adversarial.attack import AttackProbe

        return AttackProbe(config, cache_dir)
    return hallucination_probe(config)


def hallucination_probe(config: ProbeConfig) -> Probe:
    from evalsuite.probes.hallucination.calibration import CalibrationProbe
    from evalsuite.probes.hallucination.consistency import ConsistencyProbe
    from evalsuite.probes.hallucination.context_probe import FaithfulnessProbe
    from evalsuite.probes.hallucination.entity_probe import FabricatedProbe
    from evalsuite.probes.hallucination.halueval import HaluEvalProbe
    from evalsuite.probes.hallucination.unanswerable import UnanswerableProbe

    probes: dict[str, Callable[[], Probe]] = {
        "fabricated": lambda: FabricatedProbe(config),
        "unanswerable": lambda: UnanswerableProbe(config),
        "halueval": HaluEvalProbe,
        "self_consistency": lambda: ConsistencyProbe(config),
        "calibration": CalibrationProbe,
        "faithfulness": FaithfulnessProbe,
    }
    return probes[config.kind]()


def probe_metrics(config: ProbeConfig) -> tuple[str, ...]:
    """What a probe of this entry reports, known without building it (building a perturbation probe
    imports textattack and installs its NLTK data in the cache), so gates are checked against it first."""
    from evalsuite.probes.adversarial.attack import AttackProbe
    from evalsuite.probes.adversarial.formats import FormatProbe
    from evalsuite.probes.adversarial.options import OptionOrderProbe
    from evalsuite.probes.adversarial.perturb import PerturbationProbe
    from evalsuite.probes.hallucination.calibration import CalibrationProbe
    from evalsuite.probes.hallucination.consistency import ConsistencyProbe
    from evalsuite.probes.hallucination.context_probe import FaithfulnessProbe
    from evalsuite.probes.hallucination.entity_probe import FabricatedProbe
    from evalsuite.probes.hallucination.halueval import HaluEvalProbe
    from evalsuite.probes.hallucination.unanswerable import UnanswerableProbe

    if config.kind in PERTURBATION_KINDS:
        return PerturbationProbe.metrics
    classes: dict[str, type[Probe]] = {
        "option_order": OptionOrderProbe,
        "prompt_format": FormatProbe,
        "attack": AttackProbe,
        "fabricated": FabricatedProbe,
        "unanswerable": UnanswerableProbe,
        "halueval": HaluEvalProbe,
        "self_consistency": ConsistencyProbe,
        "calibration": CalibrationProbe,
        "faithfulness": FaithfulnessProbe,
    }
    return classes[config.kind].metrics


__all__ = ["Probe", "ProbeUnit", "Sample", "Settings", "Variant", "probe_for", "probe_metrics", "samples"]
