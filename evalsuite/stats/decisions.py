"""Non-inferiority, equivalence (TOST) and multiple-comparison adjustment.

Non-inferiority: the variant is no worse than its baseline by more than ``margin`` when the lower
one-sided (1 - alpha) confidence bound of ``variant - baseline`` (in the direction where higher is
better) lies above ``-margin``. The bound is the lower end of the two-sided (1 - 2 alpha) interval.

Equivalence: two one-sided t-tests (TOST) on the paired differences against ``-margin`` and
``+margin``; the p-value is the larger of the two (statsmodels' ``ttost_paired`` gives the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

TOST = "TOST paired t"
INTERVAL = "(1 - 2 alpha) interval within the margins"
Adjustment = Literal["holm", "bh"]


@dataclass(frozen=True)
class NonInferiority:
    margin: float
    alpha: float
    lower_bound: float
    non_inferior: bool


@dataclass(frozen=True)
class Equivalence:
    margin: float
    alpha: float
    method: str
    p_value: float | None
    equivalent: bool


def non_inferiority(lower_bound: float, margin: float, alpha: float) -> NonInferiority:
    """Decide from the lower (1 - alpha) one-sided bound of the improvement ``variant - baseline``."""
    return NonInferiority(margin, alpha, lower_bound, bool(lower_bound > -margin))


def tost_paired(differences: ArrayLike, margin: float, alpha: float) -> Equivalence:
    """TOST on paired differences with bounds (-margin, +margin)."""
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    n = d.size
    mean, sd = float(d.mean()), float(d.std(ddof=1)) if n > 1 else 0.0
    if n < 2:  # one difference is no evidence either way
        return Equivalence(margin, alpha, TOST, 1.0, False)
    if sd == 0.0:  # every difference the same: the t statistic is infinite, the side is certain
        inside = -margin < mean < margin
        return Equivalence(margin, alpha, TOST, 0.0 if inside else 1.0, inside)
    se = sd / np.sqrt(n)
    p_lower = float(stats.t.sf((mean + margin) / se, n - 1))  # H0: mean <= -margin
    p_upper = float(stats.t.cdf((mean - margin) / se, n - 1))  # H0: mean >= +margin
    p = max(p_lower, p_upper)
    return Equivalence(margin, alpha, TOST, p, p < alpha)


def interval_equivalence(low: float, high: float, margin: float, alpha: float) -> Equivalence:
    """Equivalence when the (1 - 2 alpha) interval of the difference lies inside (-margin, +margin).

    The interval form of TOST; used for binary outcomes with the score interval, which stays honest where
    a t-test on 0/1 differences does not (few or no discordant pairs), and with cluster-robust intervals.
    """
    return Equivalence(margin, alpha, INTERVAL, None, bool(-margin < low and high < margin))


def family_adjustment(p_values: ArrayLike, chosen: Adjustment) -> list[dict[str, float | str]]:
    """For each p-value of a family: its Holm and BH adjustments and the chosen one, as a comparison
    record's ``p_holm``, ``p_bh``, ``adjustment`` and ``p_adjusted``."""
    holm, bh = adjust_pvalues(p_values, "holm"), adjust_pvalues(p_values, "bh")
    return [
        {"p_holm": h, "p_bh": b, "adjustment": chosen, "p_adjusted": h if chosen == "holm" else b}
        for h, b in zip(holm, bh, strict=True)
    ]


def adjust_pvalues(p_values: ArrayLike, method: Adjustment) -> list[float]:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p-values."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return []
    _, adjusted, _, _ = multipletests(p, method={"holm": "holm", "bh": "fdr_bh"}[method])
    return [float(x) for x in adjusted]
