"""What every probe works with: a task's samples as probes see them, and rewritten copies (variants).

A probe never builds prompts from scratch. It takes the requests the task itself built for a sample
(few-shot examples, description, template), changes the sample's own text — the part of the prompt
that ``doc_to_text`` renders from the document — and puts the changed text back in the same place.
The few-shot examples stay byte-identical, so clean and perturbed copies differ only where the probe
meant them to.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lm_eval.api.instance import Instance

from evalsuite.errors import ConfigError, DataError, did_you_mean
from evalsuite.probes.registry import ProbeConfigBase
from evalsuite.tasks import PreparedTask

if TYPE_CHECKING:
    from collections.abc import Callable

    from evalsuite.engine import Engine
    from evalsuite.records import SampleRecord, TaskResult
    from evalsuite.stats.intervals import IntervalSettings

Doc = dict[str, Any]


@dataclass(frozen=True)
class ProbeUnit:
    """One probe applied to one task, or a probe that brings its own data (``task`` None)."""

    config: ProbeConfigBase  # its kind's Config (the probe keeps its own typed reference)
    task: PreparedTask | None
    seed: int  # the run's seed
    data_dir: Path | None = None  # where probes that bring their own data read it

    @property
    def name(self) -> str:
        """How results and records name the unit, e.g. ``typo/arc_challenge_local`` or ``fabricated``."""
        return self.config.label if self.task is None else f"{self.config.label}/{self.task.spec.name}"

    @property
    def task_name(self) -> str:
        return "" if self.task is None else self.task.spec.name

    @property
    def lm_task(self) -> Any:
        """The lm-eval task of a unit that has one."""
        if self.task is None:
            raise ConfigError(f"probe {self.config.label!r} needs a task")
        return self.task.task

    @property
    def multiple_choice(self) -> bool:
        return self.task is not None and str(self.task.task.OUTPUT_TYPE) == "multiple_choice"

    def seed_for(self, *parts: object) -> int:
        """A seed for one decision of this unit (a sample, a copy, a format), stable across runs."""
        text = "\x1f".join(map(str, (self.seed, self.config.label, self.task_name, *parts)))
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")

    def data_file(self, relative: str) -> Path:
        """A file of the data folder; a clear error when the folder or the file is missing."""
        if self.data_dir is None:
            raise ConfigError(
                f"probe {self.config.label!r} reads {relative} from the data folder: set run.data_dir, "
                "--data-dir or $EVALSUITE_DATA_DIR"
            )
        path = self.data_dir / relative
        if not path.is_file():
            raise DataError(f"probe {self.config.label!r}: {path} does not exist")
        return path


@dataclass(frozen=True)
class Sample:
    """One document of a task with the requests the task built for it."""

    doc_id: int
    doc: Doc
    requests: tuple[Instance, ...]  # in the task's order (one per option for multiple choice)
    text: str  # the sample's own text: ``doc_to_text(doc)``, the tail of the prompt
    options: tuple[str, ...] | None  # doc_to_choice(doc) for multiple choice
    gold: int | None  # index of the right option for multiple choice

    @property
    def prompt(self) -> str:
        return str(self.requests[0].args[0])


@dataclass(frozen=True)
class Variant:
    """A copy of a sample as a probe rewrote it, with the requests that copy makes."""

    sample: Sample
    name: str  # "clean", "seed-2", "rotation-1", "format-3" ...
    doc: Doc
    requests: tuple[Instance, ...]
    original: str
    perturbed: str
    gold: int | None  # where the right option is in this copy
    order: tuple[int, ...] | None = None  # option position -> index in the original order
    details: dict[str, Any] = field(default_factory=dict)


def samples(task: PreparedTask) -> list[Sample]:
    """Every document the task will score, with its requests, in document order."""
    by_doc: dict[int, list[Instance]] = defaultdict(list)
    for instance in task.instances:
        by_doc[instance.doc_id].append(instance)
    lm_task = task.task
    multiple_choice = str(lm_task.OUTPUT_TYPE) == "multiple_choice"
    out = []
    for doc_id, doc in lm_task.doc_iterator(limit=task.limit):
        requests = tuple(sorted(by_doc[doc_id], key=lambda i: i.idx))
        text = lm_task.doc_to_text(doc)
        if not isinstance(text, str):
            raise DataError(f"task {task.spec.name!r}: probes need a text prompt (doc_to_text gave {text!r})")
        options = tuple(map(str, lm_task.doc_to_choice(doc))) if multiple_choice else None
        gold = _gold(task.spec.name, lm_task.doc_to_target(doc), options) if options else None
        out.append(Sample(doc_id, dict(doc), requests, text, options, gold))
    return out


def _gold(task: str, target: Any, options: tuple[str, ...]) -> int:
    if isinstance(target, int) and 0 <= target < len(options):
        return target
    if isinstance(target, str) and target in options:
        return options.index(target)
    raise DataError(f"task {task!r}: probes need one right option per question, got target {target!r}")


def check_task(unit: ProbeUnit, sample: Sample) -> None:
    """Refuse task shapes the probes cannot rewrite, naming the reason."""
    lm_task = unit.lm_task
    kind = str(lm_task.OUTPUT_TYPE)
    if kind not in ("multiple_choice", "generate_until"):
        raise ConfigError(
            f"probe {unit.config.label!r}: task {unit.task_name!r} is a {kind} task; probes apply to "
            "multiple_choice and generate_until tasks"
        )
    if getattr(lm_task, "multiple_input", False):
        raise ConfigError(
            f"probe {unit.config.label!r}: task {unit.task_name!r} has several inputs per sample"
        )
    if sample.prompt.rfind(sample.text) < 0:
        raise DataError(f"task {unit.task_name!r}: the sample's text is not part of its prompt")


def text_fields(unit: ProbeUnit, sample: Sample, named: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The document fields a perturbation changes: those named in the config, else every string field
    whose value appears in the sample's text (minus the answer, and minus fields inside another one)."""
    doc = sample.doc
    label, task = unit.config.label, unit.task_name
    if named is not None:
        for name in named:
            if not isinstance(doc.get(name), str):
                hint = did_you_mean(name, [k for k, v in doc.items() if isinstance(v, str)])
                raise ConfigError(f"probe {label!r}: task {task!r} has no text field {name!r}{hint}")
        return named
    target = str(unit.lm_task.doc_to_target(doc)).strip()
    found = [
        k
        for k, v in doc.items()
        if isinstance(v, str) and v.strip() and v.strip() in sample.text and v.strip() != target
    ]
    fields = tuple(k for k in found if not any(k != o and doc[k].strip() in doc[o] for o in found))
    if not fields:
        raise ConfigError(
            f"probe {label!r}: no text field of task {task!r} appears in its prompt; name them with 'fields:'"
        )
    return fields


def options_field(doc: Doc, options: Sequence[str], text: str) -> tuple[str, str | None] | None:
    """Where a document keeps its answer options: ``(key, None)`` for a list, ``(key, "text")`` for
    lm-eval's ``{"text": [...], "label": [...]}``. The options must be the choices scored, or be listed
    in the prompt (as in MMLU, where the scored choices are the letters)."""
    for key, value in doc.items():
        candidates: list[tuple[Any, str | None]] = [(value, None)]
        if isinstance(value, dict) and isinstance(value.get("text"), list):
            candidates.append((value["text"], "text"))
        for items, sub in candidates:
            if not isinstance(items, list) or len(items) != len(options):
                continue
            if not all(isinstance(i, str) for i in items):
                continue
            if list(items) == list(options) or all(i.strip() in text for i in items):
                return key, sub
    return None


def get_options(doc: Doc, where: tuple[str, str | None]) -> list[str]:
    key, sub = where
    return list(doc[key] if sub is None else doc[key][sub])


def set_options(doc: Doc, where: tuple[str, str | None], items: Sequence[str]) -> Doc:
    key, sub = where
    return {**doc, key: list(items) if sub is None else {**doc[key], sub: list(items)}}


def rewrite(
    unit: ProbeUnit,
    sample: Sample,
    name: str,
    doc: Doc,
    *,
    gold: int | None = None,
    order: tuple[int, ...] | None = None,
    details: dict[str, Any] | None = None,
) -> Variant:
    """The variant whose document is ``doc``: its text re-rendered by the task's own template and put
    where the sample's text was; options re-read with ``doc_to_choice``."""
    lm_task = unit.lm_task
    text = lm_task.doc_to_text(doc)
    prompt = sample.prompt
    at = prompt.rfind(sample.text)
    context = prompt[:at] + text + prompt[at + len(sample.text) :]
    options = tuple(map(str, lm_task.doc_to_choice(doc))) if sample.options is not None else None
    requests = build_requests(unit, sample, context, options)
    return Variant(
        sample,
        name,
        doc,
        requests,
        sample.text,
        text,
        sample.gold if gold is None else gold,
        order,
        details or {},
    )


def build_requests(
    unit: ProbeUnit, sample: Sample, context: str, options: Sequence[str] | None
) -> tuple[Instance, ...]:
    """Requests for ``context``: one per option (scored after the task's delimiter), or the generation."""
    first = sample.requests[0]
    metadata = (unit.name, sample.doc_id, 1)
    if options is None:
        return (Instance("generate_until", sample.doc, (context, first.args[1]), 0, metadata),)
    delimiter = unit.lm_task.config.target_delimiter
    return tuple(
        Instance("loglikelihood", sample.doc, (context, f"{delimiter}{option}"), i, metadata)
        for i, option in enumerate(options)
    )


def clean(unit: ProbeUnit, sample: Sample) -> Variant:
    """The sample as the task built it (the engine answers it from the static task's run if there was one)."""
    return Variant(
        sample,
        "clean",
        sample.doc,
        build_requests(unit, sample, sample.prompt, sample.options),
        sample.text,
        sample.text,
        sample.gold,
    )


class Probe(Protocol):
    """A probe. ``prepare`` runs at planning time (no model); ``run`` and ``summarize`` per model. Its
    kind (:mod:`evalsuite.probes.kinds`) declares what ``summarize`` reports; an ``adaptive`` probe
    decides its requests while it runs and reports progress per sample."""

    adaptive: bool

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]: ...

    def run(
        self,
        unit: ProbeUnit,
        variants: list[Variant],
        model: str,
        engine: Engine,
        progress: Callable[[int], None],
    ) -> list[SampleRecord]: ...

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult: ...
