"""Power: the smallest difference a comparison could detect, and the samples a given difference needs.

Paired binary outcomes (McNemar), with discordance psi = (b + c) / n and difference delta = (c - b) / n,
use Connor's (1987) normal approximation:

    n = (z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi - delta^2))^2 / delta^2

Paired continuous scores use the normal approximation for a paired mean difference with standard
deviation sd of the differences: n = ((z_{1-alpha/2} + z_{power}) sd / delta)^2.
"""

from __future__ import annotations

import math


def _z(p: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(p))


def mcnemar_power(delta: float, n: int, discordance: float, alpha: float = 0.05) -> float:
    """Approximate power of the two-sided McNemar test to detect ``delta`` with ``n`` pairs."""
    from scipy import stats

    delta = abs(delta)
    if n <= 0 or delta == 0:
        return alpha
    psi = max(discordance, delta)  # at least |delta| of the pairs must be discordant
    spread = math.sqrt(max(psi - delta**2, 1e-12))
    z = (delta * math.sqrt(n) - _z(1 - alpha / 2) * math.sqrt(psi)) / spread
    return float(stats.norm.cdf(z))


def mcnemar_sample_size(delta: float, discordance: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Pairs needed to detect ``delta`` at the given discordance (at least |delta|)."""
    delta = abs(delta)
    if delta == 0:
        raise ValueError("the effect to detect must be non-zero")
    psi = max(discordance, delta)
    root = _z(1 - alpha / 2) * math.sqrt(psi) + _z(power) * math.sqrt(max(psi - delta**2, 0.0))
    return math.ceil(root**2 / delta**2)


def mcnemar_mde(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable difference in proportions at ``n`` pairs and the observed discordance.

    With no observed discordance, the worst case psi = delta is assumed: the smallest delta for which
    the test reaches ``power`` when every discordant pair favours one model.
    """
    from scipy import optimize

    if n <= 0:
        return math.inf

    def shortfall(delta: float) -> float:
        return mcnemar_power(delta, n, discordance, alpha) - power

    if shortfall(1.0) < 0:
        return math.inf
    return float(optimize.brentq(shortfall, 1e-9, 1.0, xtol=1e-10))


def paired_mean_mde(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    if n <= 0:
        return math.inf
    return (_z(1 - alpha / 2) + _z(power)) * sd / math.sqrt(n)


def paired_mean_sample_size(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    if delta == 0:
        raise ValueError("the effect to detect must be non-zero")
    return max(2, math.ceil(((_z(1 - alpha / 2) + _z(power)) * sd / abs(delta)) ** 2))


def paired_mean_power(delta: float, sd: float, n: int, alpha: float = 0.05) -> float:
    from scipy import stats

    if n <= 0 or sd == 0:
        return 1.0 if delta != 0 and n > 0 else alpha
    return float(stats.norm.cdf(abs(delta) * math.sqrt(n) / sd - _z(1 - alpha / 2)))
