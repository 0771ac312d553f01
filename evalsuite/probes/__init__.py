"""Probes: tasks rewritten to test a model's robustness, sent through the same engine as static tasks.

Each kind is a module of :mod:`evalsuite.probes.kinds`, registered by name
(:mod:`evalsuite.probes.registry`); ``probe_for(config, cache_dir)`` builds the probe of a config entry.
Every probe prepares its variants (rewritten copies of each sample) before any model loads
(:mod:`evalsuite.probes.base`), runs them through the engine, and summarizes the records into one result
per (model, probe, task). This package imports no model library: configs and reports import it.
"""

from evalsuite.probes.registry import PROBE_KINDS, ProbeConfigBase, ProbeKind, kinds, probe_for, probe_kind

__all__ = ["PROBE_KINDS", "ProbeConfigBase", "ProbeKind", "kinds", "probe_for", "probe_kind"]
