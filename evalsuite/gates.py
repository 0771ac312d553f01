"""Deployment gates: a policy over a run's results whose verdict is the exit code CI obeys.

A policy is a list of gates, declared under ``gates:`` in model.yaml or in a separate policy file::

    gates:
      inconclusive: fail            # how an inconclusive check counts: fail (default) or pass
      rules:
        - {kind: threshold, task: arc_challenge_local, metric: acc, min: 0.30}
        - {kind: non_inferiority, margin: 0.03}       # every variant against its baseline, every task
        - {kind: shift, variants: [q4], max_flip_rate: 0.05, within_noise: true}

Each rule expands into checks (one per model x task, or per comparison), and each check is ``pass``,
``fail`` or ``inconclusive`` with a one-line reason. A threshold is judged on the confidence bound by
default: a minimum passes when the whole interval is above it, fails when the whole interval is below it,
and is inconclusive when the interval straddles it. Gates read records only (``results.json``), so a
finished run can be re-gated with another policy and no model.

A comparison has one non-inferiority margin: the margin of the non-inferiority gate that judges it, where
one gives a margin, else the task's or ``stats.margin``. Comparisons are built with it (``gate_margin``),
and re-gating a finished run (``apply_policy``) moves each comparison to the new policy's margin, so the
verdict, the comparison table and the forest plot never disagree.

A shift gate judges how far a variant moves from its baseline: the flip rate (b + c) / n per task, on its
exact binomial (Clopper-Pearson) interval by default; the pair's next-token KL mean and 99th percentile,
on their values (one check per pair); and, with ``within_noise``, flips and KL against the baseline's
noise floor by the same rule the report's quantization panel marks "within noise" with
(:mod:`evalsuite.noise`). A measure the records lack is inconclusive, with the reason naming it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import yaml

from evalsuite import noise
from evalsuite.config import (
    GatePolicy,
    GateRule,
    NonInferiorityGate,
    ProbeChangeGate,
    RunConfig,
    ShiftGate,
    ThresholdGate,
    read_yaml,
    validate_mapping,
)
from evalsuite.errors import ConfigError, did_you_mean
from evalsuite.probes.registry import ProbeConfigBase, probe_kind
from evalsuite.records import (
    Check,
    Comparison,
    ProbeComparison,
    Results,
    SkippedProbeComparison,
    Status,
    TaskResult,
    Verdict,
)

GATE_SOURCE = "gate "  # how a margin a gate sets is named in a comparison: "gate 'name'" or "gate 2 (...)"


def load_policy(path: Path) -> GatePolicy:
    """Read a policy file: either a bare policy or a document with a ``gates:`` key."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such policy file")
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))  # a duplicate key is an error, as in model.yaml
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if isinstance(data, dict) and "gates" in data:
        data = data["gates"]
    return parse_policy(data, str(path))


def parse_policy(data: object, source: str) -> GatePolicy:
    not_a_mapping = "a gate policy is a mapping with 'rules' (and optionally 'inconclusive')"
    return validate_mapping(GatePolicy, data, source, not_a_mapping)


def check_references(
    policy: GatePolicy,
    models: Mapping[str, str | None],
    metrics: Mapping[str, Sequence[str]],
    noise_floors: Collection[str] | None = None,
    probes: Sequence[ProbeConfigBase] = (),
) -> None:
    """Before a run: every task, metric and model a gate names exists (``models``: name -> baseline), no
    two non-inferiority gates judge one comparison with different margins, and (given ``noise_floors``,
    the models marked ``noise_floor``) every baseline a ``within_noise`` gate judges against has one.
    A probe_change gate's probe is one of ``probes`` (the config's), and its metric one its kind
    compares, limited in the direction that is worse."""
    _one_margin_each(policy)
    for index, gate in enumerate(policy.rules):
        label = gate_label(index, gate)
        if not isinstance(gate, ThresholdGate) and not any(models.values()):
            raise ConfigError(
                f"{label}: no model has a baseline to compare with (set baseline: or variant_of:)"
            )
        if isinstance(gate, ProbeChangeGate):
            _check_probe_change(label, gate, models, probes)
            continue
        tasks = [] if isinstance(gate, ThresholdGate) else list(metrics)
        if isinstance(gate, ThresholdGate):
            if gate.task not in metrics:
                raise ConfigError(
                    f"{label}: the run has no task {gate.task!r}{did_you_mean(gate.task, metrics)}"
                )
            if gate.metric is not None and gate.metric not in metrics[gate.task]:
                hint = did_you_mean(gate.metric, metrics[gate.task])
                raise ConfigError(f"{label}: task {gate.task!r} has no metric {gate.metric!r}{hint}")
            named = gate.models or ()
        else:
            for task in gate.tasks or ():
                if task not in tasks:
                    raise ConfigError(f"{label}: the run has no task {task!r}{did_you_mean(task, tasks)}")
            named = gate.variants or ()
        for model in named:
            if model not in models:
                raise ConfigError(f"{label}: the run has no model {model!r}{did_you_mean(model, models)}")
            if isinstance(gate, NonInferiorityGate) and models[model] is None:
                raise ConfigError(f"{label}: model {model!r} has no baseline to be non-inferior to")
            if isinstance(gate, ShiftGate) and models[model] is None:
                raise ConfigError(f"{label}: model {model!r} has no baseline to move from")
        if isinstance(gate, ShiftGate) and gate.within_noise and noise_floors is not None:
            floors = set(noise_floors)
            judged = gate.variants or [m for m, base in models.items() if base and m not in floors]
            for model in judged:
                baseline = models[model]
                if baseline is not None and not any(models.get(f) == baseline for f in floors):
                    raise ConfigError(f"{label}: within_noise: {noise.no_noise_floor(baseline)}")


def evaluate(policy: GatePolicy, results: Results) -> Verdict:
    """Apply every gate; a gate naming a task, metric or model the run does not have is a ConfigError."""
    checks: list[Check] = []
    for index, gate in enumerate(policy.rules):
        label = gate_label(index, gate)
        if isinstance(gate, ThresholdGate):
            checks += _threshold(label, gate, results.results)
        elif isinstance(gate, ShiftGate):
            checks += _shift(label, gate, results.comparisons)
        elif isinstance(gate, ProbeChangeGate):
            checks += _probe_change(label, gate, results)
        else:
            checks += _non_inferiority(label, gate, results.comparisons)
    failing = {"fail"} if policy.inconclusive == "pass" else {"fail", "inconclusive"}
    return Verdict(
        inconclusive_policy=policy.inconclusive,
        passed=not any(c.status in failing for c in checks),
        checks=checks,
    )


def gate_label(index: int, gate: GateRule) -> str:
    """How checks name a gate: its name, else its place and kind."""
    return gate.name or f"gate {index + 1} ({gate.kind})"


def margin_source(index: int, gate: NonInferiorityGate) -> str:
    """How a comparison names the gate its margin comes from: ``gate 'name'`` or ``gate 2 (...)``."""
    return f"{GATE_SOURCE}{gate.name!r}" if gate.name else gate_label(index, gate)


def covers(gate: NonInferiorityGate, task: str, variant: str) -> bool:
    """Whether a non-inferiority gate judges the comparison of ``variant`` on ``task``."""
    return (gate.tasks is None or task in gate.tasks) and (gate.variants is None or variant in gate.variants)


def gate_margin(policy: GatePolicy | None, task: str, variant: str) -> tuple[float, str] | None:
    """The margin ``policy`` judges the comparison of ``variant`` on ``task`` with, and the gate it comes
    from; None when no gate that covers it gives a margin (it is then judged on its own)."""
    if policy is None:
        return None
    found = [
        (gate.margin, margin_source(index, gate))
        for index, gate in enumerate(policy.rules)
        if isinstance(gate, NonInferiorityGate) and gate.margin is not None and covers(gate, task, variant)
    ]
    for margin, source in found[1:]:
        if margin != found[0][0]:
            raise ConfigError(_two_margins(found[0], (margin, source), f"{variant} on {task}"))
    return found[0] if found else None


def _one_margin_each(policy: GatePolicy) -> None:
    """Two non-inferiority gates with different margins must not share a comparison."""
    ruled = [
        (index, gate)
        for index, gate in enumerate(policy.rules)
        if isinstance(gate, NonInferiorityGate) and gate.margin is not None
    ]
    for place, (i, a) in enumerate(ruled):
        for j, b in ruled[place + 1 :]:
            tasks = _overlap(a.tasks, b.tasks)
            variants = _overlap(a.variants, b.variants)
            if a.margin != b.margin and tasks is not None and variants is not None:
                what = f"{' and '.join(variants) or 'every variant'} on {' and '.join(tasks) or 'every task'}"
                assert a.margin is not None and b.margin is not None
                raise ConfigError(
                    _two_margins((a.margin, margin_source(i, a)), (b.margin, margin_source(j, b)), what)
                )


def _overlap(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """What two gates' scopes (None: all) share: some names, () for all, None for nothing."""
    if a is None and b is None:
        return ()
    shared = (b if a is None else a) if a is None or b is None else tuple(x for x in a if x in b)
    return shared or None


def _two_margins(a: tuple[float, str], b: tuple[float, str], what: str) -> str:
    return (
        f"{a[1]} and {b[1]} both judge {what}, with margins {a[0]:g} and {b[0]:g}: a comparison has one "
        "non-inferiority margin; give the gates the same margin or separate tasks or variants"
    )


def apply_policy(policy: GatePolicy, results: Results, config: RunConfig) -> Results:
    """Re-gate a finished run: every comparison takes the margin ``policy`` judges it with (or, where a
    gate of an earlier policy had set it, its configured margin again), then the verdict is reached.
    Returns the results with those comparisons and the verdict, so what is shown agrees with it."""
    from evalsuite.compare import configured_margin, remargin

    comparisons = []
    for c in results.comparisons:
        chosen = gate_margin(policy, c.task, c.variant)
        if chosen is None and (c.non_inferiority.source or "").startswith(GATE_SOURCE):
            chosen = configured_margin(config, c.task)
        if chosen is not None and chosen != (c.non_inferiority.margin, c.non_inferiority.source):
            c = remargin(c, *chosen, effect=config.stats.effect)
        comparisons.append(c)
    updated = results.model_copy(update={"comparisons": comparisons})
    return updated.model_copy(update={"gates": evaluate(policy, updated)})


def _threshold(label: str, gate: ThresholdGate, results: Sequence[TaskResult]) -> list[Check]:
    units = [r for r in results if r.task == gate.task]
    if not units:
        raise ConfigError(
            f"{label}: the run has no task {gate.task!r}{did_you_mean(gate.task, {r.task for r in results})}"
        )
    models = {r.model for r in units}
    for model in gate.models or ():
        if model not in models:
            raise ConfigError(f"{label}: the run has no model {model!r}{did_you_mean(model, models)}")
    checks = []
    for unit in units:
        if gate.models is not None and unit.model not in gate.models:
            continue
        metric_name = gate.metric or unit.primary_metric or ""
        metric = unit.metrics.get(metric_name)
        if metric is None:
            hint = did_you_mean(metric_name, unit.metrics)
            raise ConfigError(f"{label}: task {gate.task!r} has no metric {metric_name!r}{hint}")
        target = f"{unit.model} on {unit.task} ({metric_name})"
        limit = gate.min if gate.min is not None else gate.max
        assert limit is not None  # exactly one is set (validated)
        above = gate.min is not None
        word = ">=" if above else "<="
        if metric.value is None:
            checks.append(Check(gate=label, target=target, status="inconclusive", reason="no scored samples"))
            continue
        if gate.judge_on == "value" or metric.ci_low is None or metric.ci_high is None:
            ok = metric.value >= limit if above else metric.value <= limit
            status: Status = "pass" if ok else "fail"
            reason = f"{metric.value:.4f} {'meets' if ok else 'misses'} {word} {limit:g} (point estimate)"
        else:
            low, high = metric.ci_low, metric.ci_high
            interval = f"{metric.confidence:.0%} CI [{low:.4f}, {high:.4f}]"
            if (low >= limit) if above else (high <= limit):
                status, reason = "pass", f"{interval} lies {'above' if above else 'below'} {limit:g}"
            elif (high < limit) if above else (low > limit):
                status, reason = "fail", f"{interval} lies {'below' if above else 'above'} {limit:g}"
            else:
                status, reason = "inconclusive", f"{interval} straddles {limit:g}; more samples would decide"
        checks.append(Check(gate=label, target=target, status=status, reason=reason))
    return checks


def _named_in(label: str, gate: NonInferiorityGate | ShiftGate, comparisons: Sequence[Comparison]) -> None:
    """Every task and variant a gate names has a comparison (a finished run re-gated with a new policy)."""
    tasks, variants = {c.task for c in comparisons}, {c.variant for c in comparisons}
    for task in gate.tasks or ():
        if task not in tasks:
            raise ConfigError(f"{label}: no comparison on task {task!r}{did_you_mean(task, tasks)}")
    for variant in gate.variants or ():
        if variant not in variants:
            raise ConfigError(
                f"{label}: no comparison with variant {variant!r}{did_you_mean(variant, variants)}"
            )


def _non_inferiority(label: str, gate: NonInferiorityGate, comparisons: Sequence[Comparison]) -> list[Check]:
    _named_in(label, gate, comparisons)
    chosen = [c for c in comparisons if covers(gate, c.task, c.variant)]
    if not chosen:
        raise ConfigError(f"{label}: the run has no comparisons (declare a baseline for a model)")
    return [_judge_non_inferiority(label, gate, c) for c in chosen]


def comparison_target(c: Comparison) -> str:
    """What a non-inferiority check names as checked."""
    return f"{c.variant} vs {c.baseline} on {c.task} ({c.metric})"


def _judge_non_inferiority(label: str, gate: NonInferiorityGate, c: Comparison) -> Check:
    margin = gate.margin or c.non_inferiority.margin
    if c.sequential is not None and c.sequential.status != "unsettled":
        return _judge_sequential(label, margin, c)
    bound = c.non_inferiority.lower_bound
    sign = 1.0 if c.higher_is_better else -1.0
    best_case = max(sign * c.ci_low, sign * c.ci_high)  # the upper end of the improvement's interval
    target = comparison_target(c)
    if bound > -margin:
        return Check(
            gate=label, target=target, status="pass", reason=f"lower bound {bound:+.4f} is above -{margin:g}"
        )
    if best_case < -margin:
        return Check(
            gate=label,
            target=target,
            status="fail",
            reason=f"the whole {c.confidence:.0%} CI lies below -{margin:g} (at best {best_case:+.4f})",
        )
    power = c.power
    extra = (
        f"; underpowered: about {power.n_needed} samples needed"
        if power.underpowered and power.n_needed
        else ""
    )
    return Check(
        gate=label,
        target=target,
        status="inconclusive",
        reason=f"lower bound {bound:+.4f} is below -{margin:g} but the change may be smaller{extra}",
    )


def _judge_sequential(label: str, margin: float, c: Comparison) -> Check:
    """A comparison ``stats.sequential`` stopped early, judged on its anytime-valid confidence sequence:
    after optional stopping, the fixed-n interval would no longer hold its level."""
    assert c.sequential is not None
    seq = c.sequential
    sign = 1.0 if c.higher_is_better else -1.0
    low, high = sorted((sign * seq.low, sign * seq.high))  # of the improvement
    shown = f"{seq.confidence:.0%} confidence sequence [{low:+.4f}, {high:+.4f}] after {seq.n} of {seq.of}"
    if low > -margin:
        return Check(
            gate=label, target=comparison_target(c), status="pass", reason=f"{shown} lies above -{margin:g}"
        )
    if high < -margin:
        return Check(
            gate=label, target=comparison_target(c), status="fail", reason=f"{shown} lies below -{margin:g}"
        )
    return Check(
        gate=label,
        target=comparison_target(c),
        status="inconclusive",
        reason=f"{shown} straddles -{margin:g} (re-gated at another margin than it stopped at)",
    )


def _check_probe_change(
    label: str, gate: ProbeChangeGate, models: Mapping[str, str | None], probes: Sequence[ProbeConfigBase]
) -> None:
    by_label = {p.label: p for p in probes}
    probe = by_label.get(gate.probe)
    if probe is None:
        raise ConfigError(f"{label}: the run has no probe {gate.probe!r}{did_you_mean(gate.probe, by_label)}")
    compared = probe_kind(probe.kind).comparable
    if gate.metric not in compared:
        known = f"; it compares {', '.join(compared)}" if compared else "; its kind compares nothing"
        hint = did_you_mean(gate.metric, compared)
        raise ConfigError(f"{label}: probe {gate.probe!r} compares no metric {gate.metric!r}{hint}{known}")
    higher = compared[gate.metric].higher_is_better
    if higher == (gate.max_increase is not None):
        better, worse = ("higher", "max_decrease") if higher else ("lower", "max_increase")
        limit = "max_increase" if gate.max_increase is not None else "max_decrease"
        raise ConfigError(
            f"{label}: {gate.metric!r} is better {better}, so {limit} limits an improvement; "
            f"limit how far it gets worse with {worse}"
        )
    for task in gate.tasks or ():
        if task not in probe.tasks:
            own = " (it brings its own data)" if probe.brings_own_data else ""
            hint = did_you_mean(task, probe.tasks)
            raise ConfigError(f"{label}: probe {gate.probe!r} probes no task {task!r}{hint}{own}")
    for model in gate.variants or ():
        if model not in models:
            raise ConfigError(f"{label}: the run has no model {model!r}{did_you_mean(model, models)}")
        if models[model] is None:
            raise ConfigError(f"{label}: model {model!r} has no baseline to compare with")


def _probe_change(label: str, gate: ProbeChangeGate, results: Results) -> list[Check]:
    """One check per probe comparison the gate covers; a comparison that could not be made is
    inconclusive, with its reason."""

    def covered(c: ProbeComparison | SkippedProbeComparison) -> bool:
        return (
            c.probe == gate.probe
            and c.metric == gate.metric
            and (gate.tasks is None or c.task in gate.tasks)
            and (gate.variants is None or c.variant in gate.variants)
        )

    chosen = [c for c in results.probe_comparisons if covered(c)]
    missing = [s for s in results.skipped_probe_comparisons if covered(s)]
    if not chosen and not missing:
        _no_probe_comparison(label, gate, [*results.probe_comparisons, *results.skipped_probe_comparisons])
    checks = [_judge_probe_change(label, gate, c) for c in chosen]
    for s in missing:
        target = f"{s.variant} vs {s.baseline} on {s.unit} ({s.metric})"
        reason = f"not compared: {s.reason}"
        checks.append(Check(gate=label, target=target, status="inconclusive", reason=reason))
    return checks


def _no_probe_comparison(
    label: str, gate: ProbeChangeGate, made: Sequence[ProbeComparison | SkippedProbeComparison]
) -> None:
    """The ConfigError of a probe_change gate that covers no comparison (a finished run re-gated with a
    policy naming what it does not have), naming the first thing missing."""
    if not made:
        raise ConfigError(
            f"{label}: the run has no probe comparisons (declare a baseline for a model; a run written "
            "before they were made gets them from `evalsuite compare RUN_DIR`)"
        )
    named = {"probe": [gate.probe], "metric": [gate.metric], "task": gate.tasks, "variant": gate.variants}
    for field, names in named.items():
        have = {getattr(c, field) for c in made if field == "probe" or c.probe == gate.probe}
        for name in names or ():
            if name not in have:
                hint = did_you_mean(name, have)
                raise ConfigError(f"{label}: no probe comparison with {field} {name!r}{hint}")
    what = f"{gate.metric!r} on probe {gate.probe!r}"
    raise ConfigError(f"{label}: no comparison of {what} among the tasks and variants it names")


def _judge_probe_change(label: str, gate: ProbeChangeGate, c: ProbeComparison) -> Check:
    """Pass when the one-sided (1 - alpha) bound of the change is within the limit, fail when the whole
    two-sided interval lies beyond it, inconclusive otherwise (``judge_on: value``: the change itself)."""
    rising = gate.max_increase is not None
    limit = gate.max_increase if gate.max_increase is not None else gate.max_decrease
    assert limit is not None  # exactly one is set (validated)
    word = "increase" if rising else "decrease"
    sign = 1.0 if rising else -1.0
    change = sign * c.difference
    target = f"{c.variant} vs {c.baseline} on {c.unit} ({c.metric})"
    shown = f"{c.metric} {c.baseline_value:.4f} -> {c.variant_value:.4f}, {word} {change:+.4f}"
    status: Status
    if gate.judge_on == "value":
        ok = change <= limit
        reason = f"{shown} {'meets' if ok else 'misses'} <= {limit:g} (point estimate)"
        return Check(gate=label, target=target, status="pass" if ok else "fail", reason=reason)
    bound = max(sign * c.lower_bound, sign * c.upper_bound)  # the one-sided (1 - alpha) bound of the change
    low, high = sorted((sign * c.ci_low, sign * c.ci_high))  # its two-sided interval
    interval = f"{c.confidence:.0%} CI [{low:+.4f}, {high:+.4f}]"
    one_sided = f"one-sided {1 - c.alpha:.0%} bound {bound:+.4f}"
    if bound <= limit:
        status, reason = "pass", f"{shown}: {one_sided} is within {limit:g}"
    elif low > limit:
        status, reason = "fail", f"{shown}: the whole {interval} lies above {limit:g}"
    else:
        status = "inconclusive"
        reason = f"{shown}: {one_sided} is above {limit:g}, the {interval} reaches below it"
        reason += "; more samples would decide"
    return Check(gate=label, target=target, status=status, reason=reason)


Outcome = tuple[Status, str]  # one criterion of a shift check: its status and what it says


def _shift(label: str, gate: ShiftGate, comparisons: Sequence[Comparison]) -> list[Check]:
    """One check per (variant, task) for flips, one per (baseline, variant) pair for token KL."""
    _named_in(label, gate, comparisons)
    chosen = [
        c
        for c in comparisons
        if (c.variant in gate.variants if gate.variants is not None else not c.noise_floor)
    ]
    if not chosen:
        raise ConfigError(
            f"{label}: the run has no comparisons of a variant (declare a baseline for a model)"
        )
    checks: list[Check] = []
    for pair in dict.fromkeys((c.baseline, c.variant) for c in chosen):
        mine = [c for c in chosen if (c.baseline, c.variant) == pair]
        band = noise.band_of(comparisons, pair[0]) if gate.within_noise else None
        if gate.within_noise and band is None:
            raise ConfigError(f"{label}: within_noise: {noise.no_noise_floor(pair[0])}")
        judged = [c for c in mine if gate.tasks is None or c.task in gate.tasks]
        judgements = () if band is None else noise.judge(noise.measures(mine), band, [c.task for c in judged])
        flips_against_noise = {j.task: j for j in judgements if j.task is not None}
        for c in judged:
            outcomes = []
            if gate.max_flip_rate is not None:
                outcomes.append(_flip_rate(c, gate.max_flip_rate, gate.judge_on))
            if (j := flips_against_noise.get(c.task)) is not None:
                outcomes.append(_against_noise(j, band))
            if outcomes:
                target = f"{c.variant} vs {c.baseline} on {c.task} (flips)"
                checks.append(_combined(label, target, outcomes))
        if not judged:
            continue
        outcomes = _kl_limits(gate, mine)
        outcomes += [_against_noise(j, band) for j in judgements if j.task is None]
        if band is not None and not judgements:  # the panel's rule too: nothing judged, no mark
            outcomes.append(
                (
                    "inconclusive",
                    f"the noise floor ({', '.join(band.models)}) measured no flips on the judged tasks and "
                    "no token KL: nothing to judge within_noise by",
                )
            )
        if outcomes:
            checks.append(_combined(label, f"{pair[1]} vs {pair[0]} (token KL)", outcomes))
    return checks


def _flip_rate(c: Comparison, limit: float, judge_on: str) -> Outcome:
    flips = noise.flips(c)
    if flips is None:
        return (
            "inconclusive",
            f"no flips: metric {c.metric!r} is not right/wrong, so it has no discordant counts",
        )
    rate = flips / c.n
    shown = f"flip rate {rate:.4f} ({flips}/{c.n})"
    if judge_on == "value":
        word = "meets" if rate <= limit else "misses"
        return ("pass" if rate <= limit else "fail"), f"{shown} {word} <= {limit:g} (point estimate)"
    from scipy import stats  # only here: gates is imported where scipy is not otherwise needed

    interval = stats.binomtest(flips, c.n).proportion_ci(c.confidence, method="exact")  # Clopper-Pearson
    low, high = float(interval.low), float(interval.high)
    with_ci = f"{shown}, exact {c.confidence:.0%} CI [{low:.4f}, {high:.4f}]"
    if high <= limit:
        return "pass", f"{with_ci} lies below {limit:g}"
    if low > limit:
        return "fail", f"{with_ci} lies above {limit:g}"
    return "inconclusive", f"{with_ci} straddles {limit:g}; more samples would decide"


def _kl_limits(gate: ShiftGate, pair: Sequence[Comparison]) -> list[Outcome]:
    mean, p99 = noise.pair_kl(pair)
    outcomes: list[Outcome] = []
    for quantity, value, limit in (
        ("token KL mean", mean, gate.max_token_kl),
        ("token KL p99", p99, gate.max_token_kl_p99),
    ):
        if limit is None:
            continue
        if value is None:
            why = "the backend shows no next-token distributions, or stats.kl_samples is 0"
            if quantity.endswith("p99") and mean is not None:
                why = "the run was written before it was recorded"
            outcomes.append(("inconclusive", f"no {quantity} for the pair ({why})"))
        else:
            ok = value <= limit
            outcomes.append(
                ("pass" if ok else "fail", f"{quantity} {value:.4g} {'<=' if ok else '>'} {limit:g}")
            )
    return outcomes


def _against_noise(j: noise.Judgement, band: noise.Band | None) -> Outcome:
    """One quantity against the noise floor's largest, as :func:`evalsuite.noise.judge` decided it."""
    assert band is not None
    form = ".0f" if j.task is not None else ".4g"  # flips are counts
    floor = f"the noise floor's largest {j.limit:{form}} ({', '.join(band.models)})"
    if j.value is None:
        return "inconclusive", f"{j.quantity}: missing for the variant, against {floor}"
    word = "within" if j.within else "above"
    return ("pass" if j.within else "fail"), f"{j.quantity} {j.value:{form}} {word} {floor}"


def _combined(label: str, target: str, outcomes: Sequence[Outcome]) -> Check:
    """Fail when any criterion fails, else inconclusive when any is, else pass; every criterion named."""
    found = {status for status, _ in outcomes}
    status: Status = "fail" if "fail" in found else "inconclusive" if "inconclusive" in found else "pass"
    return Check(gate=label, target=target, status=status, reason="; ".join(text for _, text in outcomes))


def junit_xml(verdict: Verdict, run: str) -> str:
    """JUnit XML: one test case per check; failures carry the reason (inconclusive ones say so)."""
    failing = {"fail"} if verdict.inconclusive_policy == "pass" else {"fail", "inconclusive"}
    failures = sum(c.status in failing for c in verdict.checks)
    suites = ET.Element(
        "testsuites", name="evalsuite", tests=str(len(verdict.checks)), failures=str(failures), errors="0"
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=_xml_text(f"evalsuite gates: {run}"),
        tests=str(len(verdict.checks)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time="0",
    )
    for check in verdict.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_xml_text(f"evalsuite.gates.{check.gate}"),
            name=_xml_text(check.target),
            time="0",
        )
        reason = _xml_text(f"{check.status}: {check.reason}")
        if check.status in failing:
            failure = ET.SubElement(case, "failure", message=reason, type=check.status)
            failure.text = reason
        else:
            ET.SubElement(case, "system-out").text = reason
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry control characters even escaped; replace them with U+FFFD."""
    return _XML_INVALID.sub("\ufffd", text)
