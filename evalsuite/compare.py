"""Paired comparisons of models over the samples they share, built from records alone.

For each (baseline, variant) pair and each task, the task's primary metric is compared on the samples
both models answered without error: binary metrics with McNemar's test (mid-p by default,
``stats.mcnemar``) and the score interval that agrees with it, continuous means and perplexity-style
aggregates with a paired bootstrap interval and a paired permutation test. Where the task clusters its
samples (``cluster_by``: MMLU's subjects), means are compared with a cluster-robust paired t test and
interval instead, because samples of one cluster move together. Each comparison carries its
non-inferiority and equivalence verdicts, power, and the shift between the two models' answer
distributions. p-values are adjusted across every comparison of
the run (the family), by Holm and by Benjamini-Hochberg; the configured one is ``p_adjusted``.

Each comparison has one non-inferiority margin, named with where it comes from: the margin of the
non-inferiority gate that judges it (when that gate gives one), else the task's ``margin``, else
``stats.margin``. Power is computed at that margin (unless ``stats.effect`` is set).

A comparison whose variant the config marks ``noise_floor: true`` says so (``noise_floor``), so the
quantization panel and the ``shift`` gate find the noise floor in ``results.json`` alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations

import numpy as np

from evalsuite.config import GatePolicy, RunConfig, StatsSettings
from evalsuite.errors import ConfigError, DataError, did_you_mean
from evalsuite.gates import gate_margin
from evalsuite.probes.comparisons import ProbeComparisons, build_probe_comparisons
from evalsuite.records import (
    Comparison,
    Discordant,
    EquivalenceResult,
    NonInferiorityResult,
    PowerResult,
    SampleRecord,
    SequentialResult,
    ShiftResult,
    SkippedComparison,
    TaskResult,
)
from evalsuite.rundir import RunDir
from evalsuite.stats import power as pw
from evalsuite.stats.aggregates import AGGREGATES, paired_ratio_test
from evalsuite.stats.decisions import family_adjustment, interval_equivalence, non_inferiority, tost_paired
from evalsuite.stats.intervals import is_binary
from evalsuite.stats.paired import (
    McNemarTest,
    bootstrap_intervals_of_mean,
    clustered_binary,
    clustered_paired,
    discordance,
    mcnemar,
    permutation_pvalue,
    score_interval,
)
from evalsuite.stats.shift import TokenKL, choice_shift

CLUSTERED_METHOD = "cluster-robust paired t (CR1, G - 1 df); its interval"
CLUSTERED_BINARY_METHOD = (
    "cluster-robust paired t (CR1, G - 1 df) and {test} McNemar: the larger p, both intervals"
)
MEAN_METHOD = "paired permutation; paired bootstrap percentile interval"
RATIO_METHOD = "paired permutation and paired bootstrap of the aggregate"


def binary_method(test: McNemarTest) -> str:
    """How a comparison of right/wrong scores names its test and interval."""
    return f"{test} McNemar; Tango score interval agreeing with it"


class Skipped(Exception):
    """A comparison that cannot be made; the reason is recorded instead of a result."""


@dataclass(frozen=True)
class TaskPolicy:
    """What is compared on one task, and with which margins."""

    metric: str
    margin: float
    equivalence_margin: float
    alpha: float
    margin_source: str = "stats.margin"  # where ``margin`` comes from, as the comparison names it
    cluster_by: str | None = None  # the document field whose values group dependent samples


STATS_MARGIN, CLI_MARGIN = "stats.margin", "compare --margin"


@dataclass(frozen=True)
class Plan:
    pairs: tuple[tuple[str, str], ...]  # (baseline, variant)
    policies: Mapping[str, TaskPolicy]
    settings: StatsSettings
    token_shift: Mapping[tuple[str, str], TokenKL] = field(default_factory=dict)
    # MoE pairs: routing agreement per (task, document) of the prompts it was measured on
    routing: Mapping[tuple[str, str], Mapping[tuple[str, int], float]] = field(default_factory=dict)
    gates: GatePolicy | None = None  # a non-inferiority gate's margin is the margin of what it judges
    noise_floor: frozenset[str] = frozenset()  # models marked noise_floor: their comparisons say so

    def policy(self, task: str, variant: str) -> TaskPolicy:
        """The task's policy for one comparison, with the margin of the gate that judges it, if any."""
        policy = self.policies[task]
        chosen = gate_margin(self.gates, task, variant)
        return policy if chosen is None else replace(policy, margin=chosen[0], margin_source=chosen[1])


def configured_margin(config: RunConfig, task: str, margin_source: str = STATS_MARGIN) -> tuple[float, str]:
    """A task's non-inferiority margin without gates, and where it comes from."""
    own = next((t.margin for t in config.tasks if t.name == task), None)
    return (own, f"task {task!r}") if own else (config.stats.margin, margin_source)


def comparison_pairs(
    baselines: Mapping[str, str | None], models: Sequence[str], all_pairs: bool
) -> tuple[tuple[str, str], ...]:
    """Every model against its baseline; with ``all_pairs`` every pair, earlier model as the baseline."""
    pairs = [(base, model) for model in models if (base := baselines.get(model))]
    if all_pairs:
        pairs += [(a, b) for a, b in combinations(models, 2) if (a, b) not in pairs and (b, a) not in pairs]
    return tuple(pairs)


def plan_for(
    config: RunConfig,
    results: Sequence[TaskResult],
    margin_source: str = STATS_MARGIN,
    clusters: Mapping[str, str | None] | None = None,
    primary: Mapping[str, str | None] | None = None,
) -> Plan:
    """Pairs and per-task policies from a run's config and its primary metrics (from ``results``, or
    ``primary`` before there are any); the margins of its non-inferiority gates apply to the
    comparisons they judge. ``margin_source`` names where ``config.stats.margin`` came from;
    ``clusters`` gives each task's cluster field as the run resolved it (the config's ``cluster_by``,
    else the task file's), the config's alone when not given."""
    settings = config.stats
    primary = {**(primary or {}), **{r.task: r.primary_metric for r in results if r.primary_metric}}
    policies = {}
    for task in config.tasks:
        metric = task.metric or primary.get(task.name)
        if metric is None:
            continue
        margin, source = configured_margin(config, task.name, margin_source)
        policies[task.name] = TaskPolicy(
            metric=metric,
            margin=margin,
            equivalence_margin=task.equivalence_margin or settings.equivalence_margin or margin,
            alpha=task.alpha or settings.alpha,
            margin_source=source,
            cluster_by=task.cluster_by or (clusters or {}).get(task.name),
        )
    names = [m.name for m in config.models]
    pairs = comparison_pairs({m.name: m.baseline for m in config.models}, names, settings.all_pairs)
    floors = frozenset(m.name for m in config.models if m.noise_floor)
    return Plan(pairs, policies, settings, gates=config.gates, noise_floor=floors)


def build_comparisons(
    plan: Plan, results: Sequence[TaskResult], samples: Sequence[SampleRecord], seed: int
) -> tuple[list[Comparison], list[SkippedComparison]]:
    """Every planned comparison that can be made, adjusted as one family; and why the others cannot."""
    by_unit: dict[tuple[str, str], dict[tuple[int, str], SampleRecord]] = {}
    for record in samples:
        by_unit.setdefault((record.model, record.task), {})[(record.doc_id, record.variant)] = record
    info = {(r.model, r.task): r for r in results}
    comparisons: list[Comparison] = []
    skipped: list[SkippedComparison] = []
    for task in plan.policies:
        for index, (baseline, variant) in enumerate(plan.pairs):
            if (baseline, task) not in info or (variant, task) not in info:
                continue
            policy = plan.policy(task, variant)
            metric = info[(baseline, task)].metrics.get(policy.metric)
            if metric is None:
                raise DataError(f"task {task!r} has no metric {policy.metric!r} to compare")
            rng = np.random.default_rng([seed, index, sorted(plan.policies).index(task)])
            try:
                comparisons.append(
                    compare_pair(
                        task,
                        policy,
                        baseline,
                        variant,
                        by_unit[(baseline, task)],
                        by_unit[(variant, task)],
                        metric.aggregation,
                        metric.higher_is_better is not False,
                        plan,
                        rng,
                    )
                )
            except Skipped as reason:
                skipped.append(
                    SkippedComparison(task=task, baseline=baseline, variant=variant, reason=str(reason))
                )
    return adjust_family(comparisons, plan.settings), skipped


def compare_pair(
    task: str,
    policy: TaskPolicy,
    baseline: str,
    variant: str,
    base_records: Mapping[tuple[int, str], SampleRecord],
    variant_records: Mapping[tuple[int, str], SampleRecord],
    aggregation: str,
    higher_is_better: bool,
    plan: Plan,
    rng: np.random.Generator,
) -> Comparison:
    settings, metric = plan.settings, policy.metric
    keys = sorted(
        k
        for k in base_records.keys() & variant_records.keys()
        if _usable(base_records[k], metric) and _usable(variant_records[k], metric)
    )
    for key in keys:
        if base_records[key].prompt != variant_records[key].prompt:
            raise Skipped(f"the two models were asked different prompts (sample {key[0]})")
    if len(keys) < 2:
        raise Skipped(f"{len(keys)} scored sample(s) in common; a paired test needs at least 2")
    x = [base_records[k].metrics[metric] for k in keys]
    y = [variant_records[k].metrics[metric] for k in keys]
    sign = 1.0 if higher_is_better else -1.0  # non-inferiority looks at the improvement
    confidence, alpha = settings.confidence, policy.alpha
    table = clustered = None
    if aggregation == "mean":
        xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        diffs = ya - xa
        base_value, variant_value = float(xa.mean()), float(ya.mean())
        binary = is_binary(xa) and is_binary(ya)
        table = discordance(xa, ya) if binary else None
        if policy.cluster_by is not None:
            groups = [base_records[k].doc.get(policy.cluster_by) for k in keys]
            if table is not None:
                clustered = clustered_binary(table, diffs, groups, confidence, alpha, settings.mcnemar)
            else:
                clustered = clustered_paired(diffs, groups, confidence, alpha)
        if clustered is not None:
            method = (
                CLUSTERED_METHOD if table is None else CLUSTERED_BINARY_METHOD.format(test=settings.mcnemar)
            )
            p = clustered.p_value
            (low, high), one_sided = clustered.interval, clustered.one_sided
            equivalence = interval_equivalence(*one_sided, policy.equivalence_margin, alpha)
        elif table is not None:
            method, p = binary_method(settings.mcnemar), mcnemar(table, settings.mcnemar)
            low, high = score_interval(table, confidence, p)
            one_sided = score_interval(table, 1 - 2 * alpha, p)
            equivalence = interval_equivalence(*one_sided, policy.equivalence_margin, alpha)
        else:
            method = MEAN_METHOD
            p = permutation_pvalue(xa, ya, rng, settings.resamples)
            levels = (confidence, 1 - 2 * alpha)
            (low, high), one_sided = bootstrap_intervals_of_mean(diffs, rng, levels, settings.resamples)
            equivalence = tost_paired(diffs, policy.equivalence_margin, alpha)
        # clustered: the standard deviation that gives the cluster-robust standard error at this n
        sd = clustered.stderr * math.sqrt(len(keys)) if clustered else float(np.std(diffs, ddof=1))
    elif aggregation in AGGREGATES:
        ratio = AGGREGATES[aggregation]
        base_cols, var_cols = ratio.columns(x), ratio.columns(y)
        base_value, variant_value = float(ratio(*base_cols)), float(ratio(*var_cols))
        paired = paired_ratio_test(ratio, base_cols, var_cols, rng, confidence, settings.resamples)
        method, p, low, high = RATIO_METHOD, paired.p_value, paired.low, paired.high
        wide = paired_ratio_test(ratio, base_cols, var_cols, rng, 1 - 2 * alpha, settings.resamples)
        one_sided = (wide.low, wide.high)
        equivalence, sd = None, float("nan")
    else:
        raise Skipped(f"metric {metric!r} aggregates by {aggregation!r}, which has no paired test")
    difference = variant_value - base_value
    bound = min(sign * one_sided[0], sign * one_sided[1])  # lower bound of the improvement
    effect = settings.effect or policy.margin
    psi = table.flip_rate if table is not None else None  # McNemar's power, at the pairs' worth
    design = clustered.design_effect if clustered else 1.0
    power = _power(effect, settings.power, len(keys), psi, sd, alpha, design)
    decided = non_inferiority(bound, policy.margin, alpha)
    return Comparison(
        task=task,
        metric=metric,
        baseline=baseline,
        variant=variant,
        noise_floor=variant in plan.noise_floor,
        method=method,
        n=len(keys),
        higher_is_better=higher_is_better,
        baseline_value=base_value,
        variant_value=variant_value,
        difference=difference,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=p,
        discordant=Discordant(**vars(table)) if table else None,
        flip_rate=table.flip_rate if table else None,
        agreement=1 - table.flip_rate if table else None,
        clusters=clustered.clusters if clustered else None,
        cluster_by=policy.cluster_by if clustered else None,
        design_effect=clustered.design_effect if clustered else None,
        non_inferiority=NonInferiorityResult(**vars(decided), source=policy.margin_source),
        equivalence=EquivalenceResult(**vars(equivalence)) if equivalence else None,
        power=power,
        shift=_shift(
            base_records,
            variant_records,
            keys,
            plan.token_shift.get((baseline, variant)),
            _routing(plan.routing.get((baseline, variant)), task, table is not None, x, y, keys),
        ),
    )


def _usable(record: SampleRecord, metric: str) -> bool:
    return record.error is None and metric in record.metrics


def _power(
    effect: float,
    target: float,
    n: int,
    psi: float | None,
    sd: float,
    alpha: float,
    design_effect: float = 1.0,
) -> PowerResult:
    """Power to detect ``effect`` with ``n`` pairs: McNemar's at discordance ``psi`` for binary scores
    (clustered ones worth ``n / design_effect`` independent pairs), else the paired mean's at standard
    deviation ``sd`` of the differences (NaN: no closed form)."""
    if psi is not None:
        worth = max(1, math.floor(n / design_effect))
        achieved = pw.mcnemar_power(effect, worth, psi, alpha)
        mde: float | None = pw.mcnemar_mde(worth, psi, alpha, target)
        needed: int | None = math.ceil(pw.mcnemar_sample_size(effect, psi, alpha, target) * design_effect)
    elif np.isfinite(sd):
        achieved = pw.paired_mean_power(effect, sd, n, alpha)
        mde = pw.paired_mean_mde(sd, n, alpha, target)
        needed = pw.paired_mean_sample_size(effect, sd, alpha, target) if sd > 0 else None
    else:  # perplexity-style aggregates: no closed form; report the bootstrap interval's width instead
        achieved, mde, needed = float("nan"), None, None
    mde = None if mde is not None and not np.isfinite(mde) else mde
    underpowered = bool(np.isfinite(achieved) and achieved < target)
    return PowerResult(
        target=target,
        effect=effect,
        power_at_effect=achieved,
        mde=mde,
        n_needed=needed,
        underpowered=underpowered,
    )


def remargin(c: Comparison, margin: float, source: str, effect: float | None = None) -> Comparison:
    """The comparison judged at another non-inferiority margin, from its record alone: the verdict, the
    power (at ``effect``, else at the margin) and the reading; intervals and p-values are unchanged.
    ``remargin(c, m, s)`` equals building the comparison with margin ``m`` from the samples."""
    ni = c.non_inferiority
    decided = non_inferiority(ni.lower_bound, margin, ni.alpha)
    psi = c.flip_rate if _mcnemar_power(c) else None
    sd, design = _sd_of_differences(c), c.design_effect or 1.0
    power = _power(effect or margin, c.power.target, c.n, psi, sd, ni.alpha, design)
    updated = c.model_copy(
        update={"non_inferiority": NonInferiorityResult(**vars(decided), source=source), "power": power}
    )
    if c.p_adjusted is None:
        return updated
    return updated.model_copy(update={"reading": reading(updated, c.p_adjusted, ni.alpha)})


def _mcnemar_power(c: Comparison) -> bool:
    """Whether a comparison's power is McNemar's (right/wrong scores)."""
    return c.discordant is not None


def _sd_of_differences(c: Comparison) -> float:
    """The standard deviation of a mean comparison's paired differences (for a clustered one, the one
    its cluster-robust standard error implies), recovered from its minimum detectable effect
    (``mde = (z_{1-alpha/2} + z_power) sd / sqrt(n)``); NaN for McNemar and aggregate comparisons."""
    if _mcnemar_power(c) or c.power.mde is None:
        return float("nan")
    scale = pw.paired_mean_mde(1.0, c.n, c.non_inferiority.alpha, c.power.target)
    return c.power.mde / scale


def _shift(
    base: Mapping[tuple[int, str], SampleRecord],
    variant: Mapping[tuple[int, str], SampleRecord],
    keys: Sequence[tuple[int, str]],
    token: TokenKL | None,
    routing: dict[str, float | int | None] | None = None,
) -> ShiftResult | None:
    pairs = [(base[k].choices, variant[k].choices) for k in keys]
    choices = [(b, v) for b, v in pairs if b and v]
    shift = ShiftResult()
    if choices:
        kl, agreement, questions = choice_shift(
            [[c.loglikelihood if c.loglikelihood is not None else -np.inf for c in b] for b, _ in choices],
            [[c.loglikelihood if c.loglikelihood is not None else -np.inf for c in v] for _, v in choices],
        )
        shift = shift.model_copy(
            update={"choice_kl": kl, "top1_agreement": agreement, "questions": questions}
        )
    if token is not None:
        shift = shift.model_copy(
            update={
                "token_kl": token.mean,
                "token_kl_tail_mass": token.tail_mass,
                "tokens": token.tokens,
                "token_kl_p99": None if np.isnan(token.p99) else token.p99,
            }
        )
    if routing is not None:
        shift = shift.model_copy(update=routing)
    return shift if (choices or token or routing) else None


def _routing(
    agreement: Mapping[tuple[str, int], float] | None,
    task: str,
    binary: bool,
    base: Sequence[float],
    variant: Sequence[float],
    keys: Sequence[tuple[int, str]],
) -> dict[str, float | int | None] | None:
    """Routing agreement over every measured prompt, and over the prompts of this task's items whose
    binary score flipped between the two models (the link between moved routing and moved answers)."""
    if not agreement:
        return None
    flipped_docs = (
        {doc for (doc, _), b, v in zip(keys, base, variant, strict=True) if b != v} if binary else set()
    )
    flipped = [value for (t, doc), value in agreement.items() if t == task and doc in flipped_docs]
    return {
        "routing_agreement": float(np.mean(list(agreement.values()))),
        "routing_agreement_flipped": float(np.mean(flipped)) if flipped else None,
        "routing_items": len(agreement),
    }


def adjust_family(comparisons: list[Comparison], settings: StatsSettings) -> list[Comparison]:
    """Holm and BH over every comparison; the family is stated on each one; then a plain reading."""
    if not comparisons:
        return []
    family = (
        f"{len(comparisons)} comparisons: every (baseline, variant) pair x task of the run, primary metric"
    )
    adjustments = family_adjustment([c.p_value for c in comparisons], settings.adjust)
    return [
        c.model_copy(
            update={
                **a,
                "family": family,
                "reading": reading(c, float(a["p_adjusted"]), c.non_inferiority.alpha),
            }
        )
        for c, a in zip(comparisons, adjustments, strict=True)
    ]


def reading(c: Comparison, p_adjusted: float, alpha: float) -> str:
    """One phrase a reviewer can act on; "underpowered" rather than "no difference" when it is."""
    if p_adjusted < alpha:
        better = (c.difference > 0) == c.higher_is_better
        return "variant better" if better else "variant worse"
    if c.power.underpowered:
        return "underpowered"
    if math.isnan(c.power.power_at_effect):
        return "not significant (power unknown)"
    return "no significant difference"


@dataclass(frozen=True)
class Merged:
    """Several runs pooled for comparison: models renamed ``run:model`` where names collide."""

    config: RunConfig
    results: list[TaskResult]
    samples: list[SampleRecord]
    token_shift: dict[tuple[str, str], TokenKL]
    routing: dict[tuple[str, str], dict[tuple[str, int], float]] = field(default_factory=dict)
    # where stats.sequential stopped each comparison: (task, baseline, variant) -> its result
    sequential: dict[tuple[str, str, str], SequentialResult] = field(default_factory=dict)


def merge_runs(runs: Sequence[RunDir]) -> Merged:
    """Pool runs; the first run's tasks and statistics settings apply to all."""
    counts: dict[str, int] = {}
    for run in runs:
        for name in {r.model for r in run.results.results}:
            counts[name] = counts.get(name, 0) + 1
    if len({run.name for run in runs}) < len(runs):
        raise DataError("two of the runs have the same name; compare runs with distinct names")
    models, results, samples, shift = [], [], [], {}
    routing: dict[tuple[str, str], dict[tuple[str, int], float]] = {}
    stopped: dict[tuple[str, str, str], SequentialResult] = {}
    for run in runs:
        config = run.config

        def rename(name: str | None, run_name: str = run.name) -> str | None:
            return None if name is None else (f"{run_name}:{name}" if counts.get(name, 0) > 1 else name)

        for model in config.models:
            models.append(
                model.model_copy(update={"name": rename(model.name), "baseline": rename(model.baseline)})
            )
        results += [r.model_copy(update={"model": rename(r.model)}) for r in run.results.results]
        samples += [s.model_copy(update={"model": rename(s.model)}) for s in run.samples]
        shift.update({(str(rename(b)), str(rename(v))): value for (b, v), value in run.token_shift.items()})
        routing.update({(str(rename(b)), str(rename(v))): value for (b, v), value in run.routing.items()})
        for c in run.results.comparisons:
            if c.sequential is not None:
                stopped[(c.task, str(rename(c.baseline)), str(rename(c.variant)))] = c.sequential
    first = runs[0].config
    merged = first.model_copy(update={"models": tuple(models)})
    return Merged(merged, results, samples, shift, routing, stopped)


def parse_pair(text: str, names: Sequence[str]) -> tuple[str, str]:
    """``BASELINE:VARIANT``; either side may be ``RUN:MODEL``. The one split that names two models wins."""
    parts = text.split(":")
    splits = [(":".join(parts[:i]), ":".join(parts[i:])) for i in range(1, len(parts))]
    known = [(a, b) for a, b in splits if a in names and b in names]
    if len(known) == 1:
        return known[0]
    if len(known) > 1:
        raise ConfigError(f"--pair {text!r} is ambiguous: it splits into {known}")
    if not splits:
        raise ConfigError(f"--pair {text!r}: expected BASELINE:VARIANT")
    unknown = [name for split in splits for name in split if name not in names]
    shortest = min(unknown, key=len)
    raise ConfigError(f"--pair {text!r}: no model named {shortest!r}{did_you_mean(shortest, names)}")


def compare_runs(
    runs: Sequence[RunDir], settings: StatsSettings, pair_texts: Sequence[str] = ()
) -> tuple[list[TaskResult], list[Comparison], list[SkippedComparison], ProbeComparisons]:
    """Comparisons over one or more finished runs, from their records alone; the probe units' too."""
    merged = merge_runs(runs)
    source = STATS_MARGIN if settings.margin == merged.config.stats.margin else CLI_MARGIN
    config = merged.config.model_copy(update={"stats": settings})
    names = [m.name for m in config.models]
    extra_pairs = [parse_pair(text, names) for text in pair_texts]
    clusters = {task: entry.cluster_by for task, entry in runs[0].manifest.tasks.items()}
    plan = plan_for(config, merged.results, source, clusters)
    pairs = tuple(dict.fromkeys([*plan.pairs, *extra_pairs]))
    plan = replace(plan, pairs=pairs, token_shift=merged.token_shift, routing=merged.routing)
    looks = merged.config.stats.sequential  # how the runs were evaluated, whatever the new settings say
    if merged.sequential and looks is not None:
        from evalsuite import sequential

        plan = sequential.remaining(plan, merged.sequential, looks.spend)
    comparisons, skipped = build_comparisons(plan, merged.results, merged.samples, config.run.seed)
    if merged.sequential:
        from evalsuite import sequential

        comparisons = sequential.apply(comparisons, merged.sequential)
    probed = build_probe_comparisons(pairs, merged.results, merged.samples, settings, config.run.seed)
    return merged.results, comparisons, skipped, probed
