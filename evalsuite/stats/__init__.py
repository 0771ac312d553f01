"""Statistics over per-sample values: pure functions over arrays, no I/O, seeded RNG passed in."""

from evalsuite.stats.intervals import bootstrap_stderr, mean_stderr

__all__ = ["bootstrap_stderr", "mean_stderr"]
