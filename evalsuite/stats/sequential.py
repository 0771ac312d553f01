"""Anytime-valid confidence sequences for a mean paired difference, for stopping a comparison early.

A comparison of a variant against its baseline can be evaluated in chunks of items, in a seeded random
order, and stopped as soon as the non-inferiority verdict is settled. A fixed-n interval recomputed at
every look would then err more often than ``alpha`` (each look is another chance to cross the margin by
luck); a confidence sequence does not: its bounds hold at all times at once,

    P(there is a t with mu outside CS_t) <= alpha,

so the verdict at any data-dependent stopping time errs with probability at most ``alpha``. This holds
for observations bounded in [-1, 1] with a common mean ``mu`` given the past, in particular for iid
ones: the items of a benchmark taken in a seeded random order, seen as draws from the population the
benchmark samples (``mu`` is that population's mean difference, the target of the fixed-n intervals in
``paired``; the mean over the finite list of items itself would call for the paper's
without-replacement sequence instead).

The construction is the hedged capital process of Waudby-Smith & Ramdas, "Estimating means of bounded
random variables by betting", JRSS-B 86(1), 2024 (arXiv 2010.09686), with the predictable plug-in bets,
as in its reference implementation (the ``confseq`` package, ``betting.py``). On ``x = (d + 1) / 2`` in
[0, 1], for each candidate mean ``m``:

    K+_t(m) = prod_{i <= t} (1 + l+_i(m) (x_i - m)),   l+_i(m) = min(b_i, c / m)
    K-_t(m) = prod_{i <= t} (1 - l-_i(m) (x_i - m)),   l-_i(m) = min(b_i, c / (1 - m))
    b_t     = sqrt(2 log(2 / alpha) / (s2_{t-1} t log(1 + t)))          (predictable plug-in)
    mu_t    = (1/2 + sum_{i <= t} x_i) / (t + 1)
    s2_t    = (1/4 + sum_{i <= t} (x_i - mu_i)^2) / (t + 1),   s2_0 = 1/4

with truncation ``c = 1/2`` (the paper suggests 1/2 or 3/4; 1/2 is confseq's default) and hedging weight
``theta = 1/2``: ``CS_t = {m : max(K+_t(m), K-_t(m)) / 2 < 1 / alpha}``. Under ``m = mu`` both capitals
are nonnegative martingales starting at 1, so Ville's inequality gives the guarantee above. The bet
size uses ``log(2 / alpha)`` as in the paper; confseq's ``hedged_cs`` passes ``log(1 / alpha)`` and, by
a positional argument, also caps its negative bets at ``m``. Bet sizes change the width, never the
validity; given these bets, confseq's ``betting_cs`` returns the same bounds as this module.

``K+`` falls and ``K-`` rises with ``m``, so each ``CS_t`` is an interval, and the sequence returned is
the running intersection of the ``CS_t`` (still valid, and it only shrinks).

The capitals are computed in log space on a grid of ``m`` and each bound is moved out by one grid step,
so the bounds are conservative by at most ``2 / grid`` in difference units. Grid points the running
intersection has excluded stay excluded, so only the points still inside are carried forward; with the
time axis cut in doubling blocks the cost is far below ``grid x n``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

TRUNCATION = 0.5  # c: the bet against m never stakes more than half of what a loss at x = 0 or 1 allows
Array = NDArray[np.float64]
Status = Literal["non_inferior", "inferior", "unsettled"]


@dataclass(frozen=True)
class Decision:
    """The non-inferiority verdict after ``n`` pairs, with the (1 - 2 alpha) confidence sequence
    ``[low, high]`` of the mean difference ``variant - baseline`` it rests on."""

    status: Status
    n: int
    low: float
    high: float
    reason: str

    @property
    def settled(self) -> bool:
        return self.status != "unsettled"


def confidence_sequence(differences: ArrayLike, alpha: float, grid: int = 1000) -> tuple[Array, Array]:
    """Lower and upper bounds of the mean difference after each observation: a (1 - alpha) confidence
    sequence (running intersection) for the mean of ``differences`` in [-1, 1], in difference units."""
    d = _differences(differences)
    _check_alpha(alpha)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2, got {grid!r}")
    low, high = _hedged_cs((d + 1.0) / 2.0, alpha, grid)
    return 2.0 * low - 1.0, 2.0 * high - 1.0


def decide(
    differences: ArrayLike,
    margin: float,
    alpha: float,
    higher_is_better: bool = True,
    grid: int = 1000,
) -> Decision:
    """Non-inferiority of the variant at ``margin`` (metric units), settled as soon as the data allow.

    ``differences`` are ``variant - baseline`` per pair, in [-1, 1]; the improvement is their mean, sign
    flipped when lower is better. The verdict is "non_inferior" when the confidence sequence of the
    improvement lies above ``-margin``, "inferior" when it lies below, and "unsettled" otherwise. The
    decision reports the sequence of the mean difference itself (``variant - baseline``, not flipped).

    Level: the fixed-n gate (``decisions``) is one-sided at ``alpha``, the lower end of a two-sided
    (1 - 2 alpha) interval; likewise this uses the two-sided (1 - 2 alpha) confidence sequence, whose
    lower end crosses the true mean with probability at most ``alpha`` over all times together (it only
    depends on ``K+``, which must reach ``1 / alpha``), and so does its upper end. So when the true
    improvement is ``-margin`` or worse, "non_inferior" is declared at any look, however chosen, with
    probability at most ``alpha``; the same holds for "inferior" when it is ``-margin`` or better.
    Were the sequence ever empty (only possible on such an error event) "inferior" wins.
    """
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be finite and >= 0, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5) (the sequence is two-sided at 2 alpha), got {alpha}")
    d = _differences(differences)
    lower, upper = confidence_sequence(d, 2 * alpha, grid)
    n, low, high = d.size, float(lower[-1]), float(upper[-1])
    # The improvement's bounds, and where the margin lies in difference units.
    worst, best = (low, high) if higher_is_better else (-high, -low)
    boundary = (-margin if higher_is_better else margin) + 0.0  # + 0.0: a zero margin prints as +0
    status: Status
    if best < -margin:
        status, where = "inferior", "lies below" if higher_is_better else "lies above"
    elif worst > -margin:
        status, where = "non_inferior", "lies above" if higher_is_better else "lies below"
    else:
        status, where = "unsettled", "still contains"
    direction = "" if higher_is_better else " (lower is better)"
    reason = (
        f"after {n} pairs the {100 * (1 - 2 * alpha):.4g}% confidence sequence of variant - baseline "
        f"[{low:+.3f}, {high:+.3f}] {where} {boundary:+.4g}, the non-inferiority margin{direction}"
    )
    return Decision(status=status, n=n, low=low, high=high, reason=reason)


def checkpoints(total: int, first: int, growth: float) -> list[int]:
    """Item counts at which to look: ``first``, then each previous count times ``growth`` (rounded down,
    at least one more), the last one ``total``; ``[total]`` when ``first >= total``."""
    for name, value in (("total", total), ("first", first)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not math.isfinite(growth) or growth <= 1:
        raise ValueError(f"growth must be a finite number > 1, got {growth}")
    counts = [min(first, total)]
    while counts[-1] < total:
        grown = math.floor(counts[-1] * growth + 1e-9)  # 1e-9: 100 * 1.15 is 114.99999999999999
        counts.append(min(total, max(counts[-1] + 1, grown)))
    return counts


def _differences(differences: ArrayLike) -> Array:
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"differences must be one-dimensional, got shape {d.shape}")
    if d.size == 0:
        raise ValueError("differences is empty: at least one pair is needed")
    if not np.all(np.isfinite(d)) or d.min() < -1 or d.max() > 1:
        raise ValueError("differences must be finite and lie in [-1, 1] (scores bounded in [0, 1])")
    return d


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def _bets(x: Array, alpha: float) -> Array:
    """The predictable plug-in bets b_t: they use x_1..x_{t-1} only."""
    t = np.arange(1, x.size + 1, dtype=np.float64)
    mean = (0.5 + np.cumsum(x)) / (t + 1)
    variance = (0.25 + np.cumsum((x - mean) ** 2)) / (t + 1)
    previous = np.concatenate(([0.25], variance[:-1]))
    bets: Array = np.sqrt(2 * math.log(2 / alpha) / (previous * t * np.log1p(t)))
    return bets


def _hedged_cs(x: Array, alpha: float, grid: int) -> tuple[Array, Array]:
    """Running-intersection hedged capital CS for the mean of ``x`` in [0, 1] (see the module docstring)."""
    n, step = x.size, 1.0 / grid
    bets = _bets(x, alpha)
    m = np.linspace(0.0, 1.0, grid + 1)
    with np.errstate(divide="ignore"):
        cap_plus, cap_minus = TRUNCATION / m, TRUNCATION / (1.0 - m)  # inf at m = 0 and at m = 1
    threshold = math.log(2 / alpha)  # max(K+, K-) / 2 >= 1 / alpha
    log_plus, log_minus = np.zeros(grid + 1), np.zeros(grid + 1)  # log-capital so far, per grid point
    alive = np.arange(grid + 1)  # grid points in every CS so far: the only ones still computed
    lower, upper = np.zeros(n), np.ones(n)
    low, high = 0.0, 1.0
    edges = [0, *(2**k for k in range(max(1, n - 1).bit_length()) if 2**k < n), n]
    for start, stop in itertools.pairwise(edges):
        if alive.size == 0:  # the grid lost the sequence: keep the last bounds, which stay valid
            lower[start:], upper[start:] = low, high
            break
        centred = x[None, start:stop] - m[alive, None]  # (points, block)
        b = bets[None, start:stop]
        plus = log_plus[alive, None] + np.cumsum(np.log1p(np.minimum(b, cap_plus[alive, None]) * centred), 1)
        minus = log_minus[alive, None] + np.cumsum(
            np.log1p(-np.minimum(b, cap_minus[alive, None]) * centred), 1
        )
        inside = ~np.logical_or.accumulate((plus >= threshold) | (minus >= threshold), axis=1)
        # Bounds: the outermost points inside, one step out. Columns with no point inside (a suffix of
        # the block, as exclusion is permanent) keep the last bounds.
        kept = int(inside.any(axis=0).sum())
        first = np.argmax(inside[:, :kept], axis=0)
        last = inside.shape[0] - 1 - np.argmax(inside[::-1, :kept], axis=0)
        lower[start : start + kept] = np.maximum(0.0, m[alive[first]] - step)
        upper[start : start + kept] = np.minimum(1.0, m[alive[last]] + step)
        if kept:
            low, high = float(lower[start + kept - 1]), float(upper[start + kept - 1])
        lower[start + kept : stop], upper[start + kept : stop] = low, high
        log_plus[alive], log_minus[alive] = plus[:, -1], minus[:, -1]
        alive = alive[inside[:, -1]]
    return lower, upper
