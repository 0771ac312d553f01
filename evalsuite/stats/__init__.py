"""Statistics over per-sample values: pure functions over arrays, no I/O, seeded RNG passed in.

``intervals``   one model's metric: Wilson, normal, cluster-robust, bootstrap
``aggregates``  lm-eval's aggregations as vectorizable statistics; paired tests for ratio aggregates
``paired``      McNemar (mid-p, exact), Tango's score interval, cluster-robust paired t, paired bootstrap
                and permutation
``decisions``   non-inferiority, equivalence (TOST), Holm and Benjamini-Hochberg adjustment
``power``       minimum detectable effects and required sample sizes
``shift``       KL divergence and agreement between a base model and its variant
``sequential``  anytime-valid confidence sequences (betting) to stop a paired comparison once settled
"""

from evalsuite.stats.intervals import Interval, clustered_stderr, mean_interval, mean_stderr, wilson_interval

__all__ = ["Interval", "clustered_stderr", "mean_interval", "mean_stderr", "wilson_interval"]
