"""What a run keeps on disk: versioned per-sample records, the manifest and the results, written atomically.

``samples.jsonl`` holds one :class:`SampleRecord` per (model, task, sample, variant) — enough to
recompute every metric without the model. Every file is written to a temporary name in the same
folder and renamed into place, so a reader (or a crash) never sees a truncated file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalsuite.errors import DataError
from evalsuite.files import file_mode

M = TypeVar("M", bound=BaseModel)
SAMPLE_SCHEMA = "evalsuite.sample/1"
RESULTS_SCHEMA = "evalsuite.results/1"
MANIFEST_SCHEMA = "evalsuite.manifest/1"

JSONValue = Any  # anything json.dumps accepts


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChoiceScore(_Record):
    text: str
    loglikelihood: float | None  # None when the request failed
    is_greedy: bool


class ProbeDetail(_Record):
    """What a probe did to one sample: the text before and after, and what the model answered."""

    probe: str  # the probe's name in the config
    kind: str
    task: str  # the task the sample comes from
    original: str  # the sample's own text (the part of the prompt the probe may change), untouched
    perturbed: str  # the same text as the model saw it
    answer: JSONValue = None  # the option index (in the original order) or the extracted answer
    score: float | None = None  # the sample's score under the probe's metric (1/0 for accuracy)
    details: dict[str, JSONValue] = {}  # per kind: seed, rotation, format, attack status and queries

    def details_as(self, model: type[M]) -> M:
        """``details`` read through the kind's typed model (``Details`` in its module under
        ``evalsuite.probes.kinds``); a record that does not fit it is a DataError naming the key."""
        try:
            return model.model_validate(self.details)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise DataError(f"probe {self.probe!r}: details.{where}: {first['msg']}") from None


class SampleRecord(_Record):
    """One model's answer to one sample of one task (or probe variant), with its per-sample metrics."""

    schema_: str = Field(SAMPLE_SCHEMA, alias="schema")
    model: str
    task: str
    doc_id: int
    variant: str = "original"
    prompt: str
    target: JSONValue = None
    choices: list[ChoiceScore] | None = None
    generation: str | None = None  # raw model output
    filtered: JSONValue = None  # what the task's filters made of it (e.g. the extracted number)
    loglikelihood: float | None = None  # for whole-text (rolling) scoring
    metrics: dict[str, JSONValue] = {}
    error: str | None = None
    doc: dict[str, JSONValue] = {}
    probe: ProbeDetail | None = None  # set on the records of robustness probes

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MetricResult(_Record):
    """A metric over one task: value, standard error and confidence interval with its method named."""

    value: float | None
    stderr: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float = 0.95
    ci_method: str = "none"
    clusters: int | None = None  # number of clusters when the interval is cluster-robust
    n: int
    n_errors: int
    higher_is_better: bool | None
    aggregation: str


class Discordant(_Record):
    both: int
    baseline_only: int  # b: baseline right, variant wrong
    variant_only: int  # c: baseline wrong, variant right
    neither: int


class McNemarResult(_Record):
    """Exact McNemar test of clean against perturbed answers, one perturbed copy per sample."""

    discordant: Discordant  # "baseline" = clean, "variant" = perturbed
    p_value: float


class FormatScore(_Record):
    format: str  # a readable description of the prompt format
    example: str  # the first sample's prompt in that format
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class ReliabilityBin(_Record):
    """One bin of a reliability diagram: predictions whose confidence fell in [low, high)."""

    low: float
    high: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


class GapTest(_Record):
    """The paired test of a gap metric: gsm_symbolic's originals against their fresh instances, by
    template (:func:`evalsuite.stats.gaps.template_gap`)."""

    p_value: float | None  # two-sided, of no difference
    statistic: float | None
    templates: int
    method: str


class ProbeSummary(_Record):
    """What a probe unit reports beyond its metrics."""

    probe: str
    kind: str
    task: str
    metric: str  # what each sample is scored by (acc for multiple choice, else the task's primary metric)
    samples: int
    mcnemar: McNemarResult | None = None
    formats: list[FormatScore] = []  # prompt_format: every format, best first
    best_format: str | None = None
    worst_format: str | None = None
    reliability: list[ReliabilityBin] = []  # calibration: the reliability diagram's bins
    settings: dict[str, JSONValue] = {}  # severity, seeds, recipe, query budget ...
    tests: dict[str, GapTest] = {}  # gap metric -> its paired test (gsm_symbolic)
    sets: list[float] = []  # gsm_symbolic: the accuracy of each drawn set of fresh instances
    notes: list[str] = []  # what the unit could not measure, and why


class TaskResult(_Record):
    model: str
    task: str
    output_type: str
    num_fewshot: int
    primary_metric: str | None = None
    metrics: dict[str, MetricResult]
    probe: ProbeSummary | None = None  # set on the results of robustness probes


class NonInferiorityResult(_Record):
    margin: float
    alpha: float
    lower_bound: float
    non_inferior: bool
    # where the margin comes from: "gate 'name'" (a non-inferiority gate that judges this comparison),
    # "task 'name'", "stats.margin" or "compare --margin"; None in runs written before it was recorded
    source: str | None = None

    @property
    def margin_text(self) -> str:
        """``margin 0.1, from gate 'x'``: the margin and where it comes from, as every view names it."""
        return f"margin {self.margin:g}" + (f", from {self.source}" if self.source else "")


class EquivalenceResult(_Record):
    margin: float
    alpha: float
    method: str  # "TOST paired t" or "(1 - 2 alpha) interval within the margins"
    p_value: float | None
    equivalent: bool


class PowerResult(_Record):
    target: float  # the power asked for
    effect: float  # the effect it is asked for (default: the margin)
    power_at_effect: float
    mde: float | None  # minimum detectable effect at this n, alpha and discordance
    n_needed: int | None  # samples needed to detect `effect` with `target` power
    underpowered: bool


class ShiftResult(_Record):
    choice_kl: float | None = None  # mean KL(baseline || variant) over multiple-choice answer distributions
    top1_agreement: float | None = None
    questions: int = 0
    token_kl: float | None = None  # mean next-token KL(baseline || variant), top-k + tail lower bound
    token_kl_tail_mass: float | None = None
    tokens: int = 0
    token_kl_p99: float | None = None  # 99th percentile of the per-token KL
    # MoE pairs: the share of (token, layer) places of the measured prompts routed to the same experts,
    # over all of them and over the prompts of this task's items that flipped (None: none flipped)
    routing_agreement: float | None = None
    routing_agreement_flipped: float | None = None
    routing_items: int = 0


class SequentialResult(_Record):
    """Where a sequential evaluation stopped a comparison, and why (docs/statistics.md)."""

    status: Literal["non_inferior", "inferior", "unsettled"]
    n: int  # pairs the decision rests on
    of: int  # documents of the task
    looks: list[int]  # documents evaluated at each look, up to the one that decided
    low: float  # the anytime-valid confidence sequence of the difference (variant - baseline) at the stop
    high: float
    confidence: float  # its level: 1 - 2 alpha, so each one-sided error is at most alpha
    reason: str


class Comparison(_Record):
    """A paired comparison of a variant against its baseline on one task and metric."""

    task: str
    metric: str
    baseline: str
    variant: str
    # the variant is a noise-floor model (config ``noise_floor: true``: the baseline's weights under other
    # arithmetic), so gates can judge the other variants against it from results.json alone; False in runs
    # written before it was recorded
    noise_floor: bool = False
    method: str
    n: int
    higher_is_better: bool
    baseline_value: float
    variant_value: float
    difference: float  # variant - baseline
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    p_holm: float | None = None
    p_bh: float | None = None
    adjustment: str = "holm"
    p_adjusted: float | None = None
    family: str = ""
    discordant: Discordant | None = None
    flip_rate: float | None = None
    agreement: float | None = None
    clusters: int | None = None  # clusters of a cluster-robust comparison (None: samples independent)
    cluster_by: str | None = None  # the document field that groups them
    # cluster-robust variance over the independent-samples one (at least 1): power counts the pairs as
    # n / design_effect independent ones
    design_effect: float | None = None
    non_inferiority: NonInferiorityResult
    equivalence: EquivalenceResult | None = None
    power: PowerResult
    shift: ShiftResult | None = None
    sequential: SequentialResult | None = None  # set when ``stats.sequential`` evaluated it in looks
    reading: str = ""


class SkippedComparison(_Record):
    task: str
    baseline: str
    variant: str
    reason: str


class ProbeComparison(_Record):
    """A variant against its baseline on one metric of one probe unit, over the source samples both
    scored (evalsuite.probes.comparisons): a paired cluster-bootstrap interval and a paired permutation
    test, adjusted over the run's probe comparisons only (``family``)."""

    unit: str  # the probe unit, e.g. "typo/arc_challenge_local" or "fabricated"
    probe: str  # the probe's label (its name, else its kind)
    kind: str
    task: str  # the task it probes; "" for probes that bring their own data
    metric: str
    baseline: str
    variant: str
    method: str
    n: int  # source samples (documents) both models scored
    higher_is_better: bool
    baseline_value: float  # the metric over those samples
    variant_value: float
    difference: float  # variant - baseline
    ci_low: float
    ci_high: float
    confidence: float
    alpha: float
    lower_bound: float  # one-sided (1 - alpha) bounds of the difference: the ends of its (1 - 2 alpha)
    upper_bound: float  # interval
    p_value: float
    p_holm: float | None = None
    p_bh: float | None = None
    adjustment: str = "holm"
    p_adjusted: float | None = None
    family: str = ""
    reading: str = ""


class SkippedProbeComparison(_Record):
    unit: str
    probe: str
    task: str
    metric: str
    baseline: str
    variant: str
    reason: str


Status = Literal["pass", "fail", "inconclusive"]


class Check(_Record):
    """One gate applied to one model (or comparison) on one task."""

    gate: str
    target: str  # e.g. "smollm2-int8 on arc_challenge_local"
    status: Status
    reason: str


class Verdict(_Record):
    inconclusive_policy: Literal["fail", "pass"]
    passed: bool
    checks: list[Check]

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


class Results(_Record):
    schema_: str = Field(RESULTS_SCHEMA, alias="schema")
    run: str
    results: list[TaskResult]
    comparisons: list[Comparison] = []
    skipped_comparisons: list[SkippedComparison] = []
    # variant against baseline on the probe units, a family of their own (runs before them have none)
    probe_comparisons: list[ProbeComparison] = []
    skipped_probe_comparisons: list[SkippedProbeComparison] = []
    gates: Verdict | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def to_json_line(record: SampleRecord) -> str:
    """One JSON line, readable UTF-8; a string that UTF-8 cannot hold (a lone surrogate from the data) is
    written with JSON escapes instead, which lose nothing."""
    data = record.model_dump(mode="json", by_alias=True)
    line = json.dumps(data, ensure_ascii=False, default=str)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(data, ensure_ascii=True, default=str)
    return line + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: write a sibling temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 would hide the run from every other user
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: JSONValue) -> None:
    write_atomic(path, json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def write_samples(path: Path, records: Iterable[SampleRecord]) -> None:
    write_atomic(path, "".join(to_json_line(r) for r in records))


def read_samples(path: Path) -> Iterator[SampleRecord]:
    """Stream records back; a malformed line is a DataError naming the file and line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield SampleRecord.model_validate_json(line)
            except ValidationError as error:
                raise DataError(f"{path}:{number}: not a sample record: {error.errors()[0]['msg']}") from None
