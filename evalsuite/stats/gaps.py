"""The gap between an original item and fresh items drawn from the same template, paired by template.

A GSM-Symbolic template has one original problem (the GSM8K test question) and ``m`` fresh instances
(other names and numbers, solved by the same steps). Per template ``t`` the gap is

    d_t = x_t(original) - mean_j x_t(fresh_j)

where ``x`` is a score: right (1) or wrong (0) for accuracy, or a Min-K%++ score for contamination. The
templates are the independent units (a template's fresh instances share its wording and its
difficulty), so the gap's interval and test treat ``d_1 .. d_T`` as a sample: the mean, a t interval on
T - 1 degrees of freedom and the one-sample t test of zero, which agree (the interval excludes zero
exactly when the two-sided p is below 1 - confidence). A t on the template means is the paired t test
of Mirzadeh et al.'s "accuracy on GSM8K against GSM-Symbolic", per template instead of per draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gap:
    """Mean original-minus-fresh difference over templates, with its t interval and test."""

    value: float
    stderr: float | None
    low: float | None
    high: float | None
    p_value: float | None  # two-sided, of no difference
    statistic: float | None  # the t statistic
    templates: int  # the templates with an original and at least one fresh score
    confidence: float
    method: str = "paired t over templates"


def template_gap(
    original: Sequence[float | None], fresh: Sequence[Sequence[float]], confidence: float = 0.95
) -> Gap:
    """The gap over the templates that have an original score (``None``: the original failed) and at
    least one fresh score. Fewer than two templates, or every difference equal, give no interval and no
    test where the t statistic is undefined (all equal and nonzero: the interval is that point, p 0)."""
    from scipy import stats

    differences = np.array(
        [o - float(np.mean(f)) for o, f in zip(original, fresh, strict=True) if o is not None and len(f)],
        dtype=np.float64,
    )
    n = differences.size
    if n == 0:
        return Gap(math.nan, None, None, None, None, None, 0, confidence)
    value = float(differences.mean())
    if n < 2:
        return Gap(value, None, None, None, None, None, n, confidence)
    stderr = float(differences.std(ddof=1) / math.sqrt(n))
    if stderr == 0.0:
        p = 1.0 if value == 0.0 else 0.0
        return Gap(value, 0.0, value, value, p, None, n, confidence)
    t = value / stderr
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * stderr
    p_value = float(2 * stats.t.sf(abs(t), n - 1))
    return Gap(value, stderr, value - half, value + half, p_value, t, n, confidence)
