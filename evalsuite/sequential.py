"""Sequential evaluation (``stats.sequential``): stop a comparison once its verdict is settled.

Each task's documents are evaluated in a seeded random order, in looks of growing size
(``first``, then ``growth`` times as many each look: :func:`evalsuite.stats.sequential.checkpoints`).
After each look, every open comparison of the task (variant against baseline on the primary metric)
is judged on the pairs seen so far with an anytime-valid confidence sequence
(:func:`evalsuite.stats.sequential.decide`): once the variant is settled non-inferior or inferior at
the comparison's margin, the comparison closes, and a model whose comparisons on the task are all
closed stops being asked that task's documents. The confidence sequence holds at every look at once,
so stopping when it crosses the margin keeps each error at most alpha. A random order of an iid
benchmark is itself iid, so what it estimates is what the full run estimates.

A task runs in full (and its comparisons are judged as usual) when its metric is not a mean of values
in [0, 1], when it clusters its samples (the confidence sequence counts samples as independent), or
for the models a threshold gate judges on it, or that are in no comparison. Probes always run in full.
The answer cache and resume work as in any run: the same seed gives the same order and the same looks,
so a resumed run reaches the same decisions from cached answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from evalsuite.config import RunConfig, ThresholdGate
from evalsuite.records import Comparison, NonInferiorityResult, SampleRecord, SequentialResult, TaskResult
from evalsuite.stats.decisions import non_inferiority
from evalsuite.stats.sequential import checkpoints, decide
from evalsuite.tasks import PreparedTask, aggregate, score_task

if TYPE_CHECKING:
    from evalsuite.compare import Plan as ComparisonPlan
    from evalsuite.engine import Engine
    from evalsuite.runner import Progress
    from evalsuite.stats.intervals import IntervalSettings

Key = tuple[str, str, str]  # (task, baseline, variant)


@dataclass
class Outcome:
    """Each model's task records and results, and each sequentially judged comparison's result."""

    records: dict[str, list[SampleRecord]] = field(default_factory=dict)
    results: dict[str, list[TaskResult]] = field(default_factory=dict)
    decisions: dict[Key, SequentialResult] = field(default_factory=dict)


def evaluation_order(prepared: PreparedTask, seed: int) -> list[int]:
    """The task's documents in the order the looks take them: a permutation fixed by the run's seed
    and the task's name."""
    docs = sorted({int(instance.doc_id) for instance in prepared.instances})
    digest = hashlib.blake2b(f"{seed}\x1f{prepared.spec.name}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "big"))
    return [docs[i] for i in rng.permutation(len(docs))]


def evaluate_tasks(
    config: RunConfig,
    tasks: Sequence[PreparedTask],
    engines: Mapping[str, Engine],
    plan: ComparisonPlan,
    progress: Progress,
    interval_settings: IntervalSettings,
) -> Outcome:
    """Every task on every model, in looks; ``engines`` in evaluation order (baselines first)."""
    outcome = Outcome({m: [] for m in engines}, {m: [] for m in engines})
    for prepared in tasks:
        task = _Task(config, prepared, engines, plan, progress, interval_settings)
        records = task.run()
        outcome.decisions.update(task.decisions)
        cluster_by = (
            plan.policies[prepared.spec.name].cluster_by if prepared.spec.name in plan.policies else None
        )
        for model, mine in records.items():
            mine.sort(key=lambda r: r.doc_id)
            outcome.records[model] += mine
            outcome.results[model].append(aggregate(prepared, model, mine, interval_settings, cluster_by))
    return outcome


class _Task:
    """One task's looks: which models still answer, and the decisions reached."""

    def __init__(
        self,
        config: RunConfig,
        prepared: PreparedTask,
        engines: Mapping[str, Engine],
        plan: ComparisonPlan,
        progress: Progress,
        intervals: IntervalSettings,
    ) -> None:
        settings = config.stats.sequential
        assert settings is not None
        self.name = prepared.spec.name
        self.prepared, self.engines, self.plan, self.progress = prepared, engines, plan, progress
        self.order = evaluation_order(prepared, config.run.seed)
        self.looks = checkpoints(len(self.order), settings.first, settings.growth)
        self.spend, self.intervals = settings.spend, intervals
        self.policy = plan.policies.get(self.name)
        self.open = [pair for pair in plan.pairs if all(m in engines for m in pair)] if self.policy else []
        judged = _threshold_models(config, self.name)
        paired = {m for pair in self.open for m in pair}
        # models that must answer every document: judged alone, or in no comparison
        self.in_full = set(engines) if judged is None else judged | (set(engines) - paired)
        self.decisions: dict[Key, SequentialResult] = {}
        self.full_reason = self._full_reason()

    def _full_reason(self) -> str | None:
        if self.policy is None:
            return "it has no metric to compare"
        if self.policy.cluster_by is not None:
            return (
                f"it clusters its samples by {self.policy.cluster_by!r}, and the confidence sequence "
                "counts samples as independent"
            )
        return None

    def run(self) -> dict[str, list[SampleRecord]]:
        records: dict[str, list[SampleRecord]] = {m: [] for m in self.engines}
        if self.full_reason is not None and self.open:
            self.progress.note(f"{self.name}: evaluated in full: {self.full_reason}")
            self.open, self.in_full = [], set(self.engines)
        if not self.open:  # nothing to judge along the way: one look, batched as a full run's
            self.looks = [len(self.order)]
        done = 0
        for number, size in enumerate(self.looks, start=1):
            active = [m for m in self.engines if m in self.in_full or any(m in pair for pair in self.open)]
            if not active:
                break
            chunk = set(self.order[done:size])
            for model in active:
                engine = self.engines[model]
                requests = [i for i in self.prepared.instances if i.doc_id in chunk]
                label = f"{self.name} (look {number}: {size} of {len(self.order)})"
                self.progress.unit_started(model, label, engine.count(requests))
                records[model] += score_task(self.prepared, model, engine, self.progress.advance, chunk)
                self.progress.unit_finished(aggregate(self.prepared, model, records[model], self.intervals))
            done = size
            self._judge(records, self.looks[:number], final=size == len(self.order))
        return records

    def _judge(self, records: Mapping[str, list[SampleRecord]], looks: list[int], final: bool) -> None:
        assert self.policy is not None
        metric, total = self.policy.metric, len(self.order)
        higher = self.prepared.task.higher_is_better().get(metric.split(":", 1)[0]) is not False
        rank = {doc: i for i, doc in enumerate(self.order)}
        for baseline, variant in list(self.open):
            differences = _differences(records[baseline], records[variant], metric, rank)
            if differences is None:
                self.progress.note(
                    f"{variant} vs {baseline} on {self.name}: evaluated in full: {metric!r} is not a score "
                    "in [0, 1]"
                )
                self.open.remove((baseline, variant))
                self.in_full |= {baseline, variant}
                continue
            policy = self.plan.policy(self.name, variant)
            alpha = policy.alpha * self.spend
            decision = decide(differences, policy.margin, alpha, higher)
            if not decision.settled and not final:
                continue
            status = decision.status
            self.decisions[(self.name, baseline, variant)] = SequentialResult(
                status=status,
                n=decision.n,
                of=total,
                looks=looks,
                low=decision.low,
                high=decision.high,
                confidence=1 - 2 * alpha,
                reason=decision.reason,
            )
            self.open.remove((baseline, variant))
            if decision.settled:
                self.progress.note(
                    f"{variant} vs {baseline} on {self.name}: settled {status}: {decision.reason}"
                )


def _differences(
    baseline: Sequence[SampleRecord], variant: Sequence[SampleRecord], metric: str, rank: Mapping[int, int]
) -> list[float] | None:
    """``variant - baseline`` on the documents both scored, in evaluation order; None when a score is
    not a number in [0, 1] (the confidence sequence needs bounded scores)."""
    scores = {r.doc_id: r.metrics.get(metric) for r in baseline if r.error is None}
    pairs = []
    for record in variant:
        theirs, ours = scores.get(record.doc_id), record.metrics.get(metric) if record.error is None else None
        if theirs is None or ours is None:
            continue
        if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in (theirs, ours)):
            return None
        pairs.append((rank[record.doc_id], float(ours) - float(theirs)))
    return [d for _, d in sorted(pairs)]


def apply(comparisons: Sequence[Comparison], decisions: Mapping[Key, SequentialResult]) -> list[Comparison]:
    """The comparisons with their sequential results; a settled one's non-inferiority is the
    confidence sequence's, so the table, the forest plot and the gate agree."""
    out = []
    for c in comparisons:
        result = decisions.get((c.task, c.baseline, c.variant))
        if result is None:
            out.append(c)
            continue
        update: dict[str, object] = {"sequential": result}
        if result.status != "unsettled":
            ni = c.non_inferiority
            bound = result.low if c.higher_is_better else -result.high  # the improvement's lower bound
            decided = non_inferiority(bound, ni.margin, (1 - result.confidence) / 2)
            update["non_inferiority"] = NonInferiorityResult(**vars(decided), source=ni.source)
        out.append(c.model_copy(update=update))
    return out


def remaining(
    plan: ComparisonPlan, decisions: Mapping[Key, SequentialResult], spend: float
) -> ComparisonPlan:
    """The comparison plan with what the looks left of alpha: on a task judged in looks, the last
    analysis of a comparison still unsettled gets ``(1 - spend) alpha``, so the looks and it together
    err with probability at most alpha (a union bound)."""
    looked = {task for task, _, _ in decisions}
    policies = {
        task: replace(policy, alpha=policy.alpha * (1 - spend)) if task in looked else policy
        for task, policy in plan.policies.items()
    }
    return replace(plan, policies=policies)


def _threshold_models(config: RunConfig, task: str) -> set[str] | None:
    """Models a threshold gate judges on ``task`` (None: every model)."""
    judged: set[str] = set()
    for gate in config.gates.rules if config.gates is not None else ():
        if isinstance(gate, ThresholdGate) and gate.task == task:
            if gate.models is None:
                return None
            judged |= set(gate.models)
    return judged
