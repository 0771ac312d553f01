"""The noise floor, and the one rule that says whether a variant's change is "within noise".

A noise-floor model (config ``noise_floor: true``) is a variant of a baseline that changes only arithmetic
(batch size, kernel, engine), not weights. What it changes against its baseline (flips b + c per task, the
pair's next-token KL mean and 99th percentile) is what arithmetic alone changes: the band. A variant of
the same baseline is within noise when every quantity the band measured is known for the variant and at
most the band's largest value.

The report's quantization panel (``evalsuite.report.quantization``) and the ``shift`` gate
(``evalsuite.gates``) both decide with :func:`band` and :func:`judge`, so the panel's mark and the gate's
verdict never disagree. Everything here is pure and reads records only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from evalsuite.records import Comparison


@dataclass(frozen=True)
class Measures:
    """What one variant changed from its baseline: flips (b + c) per task where its metric is binary,
    and the pair's token KL mean and 99th percentile (None where not measured)."""

    flips: Mapping[str, int]  # task -> b + c; tasks without discordant counts are absent
    token_kl: float | None
    token_kl_p99: float | None


@dataclass(frozen=True)
class Band:
    """The largest flips and KL the baseline's noise-floor models show: the band variants are judged by."""

    models: tuple[str, ...]
    flips: Mapping[str, int]  # task -> largest b + c; tasks no noise floor measured flips on are absent
    token_kl: float | None
    token_kl_p99: float | None


@dataclass(frozen=True)
class Judgement:
    """One quantity of a variant against the band's largest value of it."""

    quantity: str  # "flips on arc", "token KL mean", "token KL p99"
    task: str | None  # the task of a flips judgement; None for the pair's token KL
    value: float | None  # the variant's; None: the variant lacks it
    limit: float  # the band's largest

    @property
    def within(self) -> bool | None:
        """True: at most the band's largest; False: above it; None: the variant lacks the quantity."""
        return None if self.value is None else self.value <= self.limit


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _largest(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def band(floors: Mapping[str, Measures]) -> Band | None:
    """The band of a baseline's noise-floor models (name -> what each changed); None without any."""
    if not floors:
        return None
    tasks = dict.fromkeys(task for m in floors.values() for task in m.flips)
    return Band(
        models=tuple(floors),
        flips={task: max(m.flips[task] for m in floors.values() if task in m.flips) for task in tasks},
        token_kl=_largest(m.token_kl for m in floors.values()),
        token_kl_p99=_largest(m.token_kl_p99 for m in floors.values()),
    )


def judge(variant: Measures, noise: Band, tasks: Sequence[str]) -> tuple[Judgement, ...]:
    """One judgement per quantity the band measured: flips on each of ``tasks`` the band has flips on (in
    that order), then token KL mean and 99th percentile. Quantities the band lacks are not judged."""
    out = [
        Judgement(f"flips on {task}", task, variant.flips.get(task), noise.flips[task])
        for task in tasks
        if task in noise.flips
    ]
    if noise.token_kl is not None:
        out.append(Judgement("token KL mean", None, variant.token_kl, noise.token_kl))
    if noise.token_kl_p99 is not None:
        out.append(Judgement("token KL p99", None, variant.token_kl_p99, noise.token_kl_p99))
    return tuple(out)


def within_noise(judgements: Sequence[Judgement]) -> bool | None:
    """The variant's mark: every judged quantity known and within the band; None when nothing was judged."""
    if not judgements:
        return None
    return all(j.within is True for j in judgements)


# ----------------------------------------------------------------------------------------------------
# From the records: a pair's comparisons (one per task) to its measures, a run's comparisons to bands.


def pair_kl(comparisons: Sequence[Comparison]) -> tuple[float | None, float | None]:
    """The pair's token KL mean and 99th percentile: the same for every task, taken where first given."""
    mean = next((v for c in comparisons if c.shift and (v := finite(c.shift.token_kl)) is not None), None)
    p99 = next((v for c in comparisons if c.shift and (v := finite(c.shift.token_kl_p99)) is not None), None)
    return mean, p99


def flips(c: Comparison) -> int | None:
    """b + c of one comparison; None where its metric is not binary (no discordant counts)."""
    d = c.discordant
    return None if d is None else d.baseline_only + d.variant_only


def measures(comparisons: Sequence[Comparison]) -> Measures:
    """What one pair changed, from its comparisons (one per task)."""
    kl, p99 = pair_kl(comparisons)
    counted = {c.task: n for c in comparisons if (n := flips(c)) is not None}
    return Measures(flips=counted, token_kl=kl, token_kl_p99=p99)


def band_of(comparisons: Sequence[Comparison], baseline: str) -> Band | None:
    """The band of ``baseline`` from a run's comparisons: those of its noise-floor variants
    (``Comparison.noise_floor``); None when it has none."""
    floors = [c for c in comparisons if c.baseline == baseline and c.noise_floor]
    names = dict.fromkeys(c.variant for c in floors)
    return band({name: measures([c for c in floors if c.variant == name]) for name in names})


def no_noise_floor(baseline: str) -> str:
    """What to do where a variant is to be judged against a noise floor that ``baseline`` lacks."""
    return (
        f"baseline {baseline!r} has no noise floor to judge against: add a model with "
        f"'variant_of: {baseline}' and 'noise_floor: true' (the same weights under another batch size, "
        "kernel or backend)"
    )
