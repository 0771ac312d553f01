"""Probes: tasks rewritten to test a model's robustness, sent through the same engine as static tasks.

``probe_for(config, cache_dir)`` finds the probe of a config entry's ``kind``; every probe prepares its
variants (rewritten copies of each sample) before any model loads, runs them through the engine, and
summarizes the records into one result per (model, probe, task).
"""

from __future__ import annotations

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
    from evalsuite.probes.adversarial.attack import AttackProbe

    return AttackProbe(config, cache_dir)


__all__ = ["Probe", "ProbeUnit", "Sample", "Settings", "Variant", "probe_for", "samples"]
