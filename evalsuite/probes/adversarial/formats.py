"""Prompt-format probe: the same questions in N plausible formats, and how far apart their scores are.

Formats come from a small grammar in the spirit of FormatSpread (Sclar et al. 2024, "Quantifying
Language Models' Sensitivity to Spurious Features in Prompt Design"): the descriptor of the question and
its casing, the separator after a descriptor, the space between parts, how options are numbered, and the
answer cue. Each format renders every sample zero-shot, so the format is the only thing that varies.

Reported: each format's score with a Wilson interval, the best and worst format by name, ``spread`` =
best - worst (bootstrapped over samples, re-picking best and worst in every resample, so the selection
is part of the interval) and ``mean`` over formats (clustered by sample).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np

from evalsuite.probes.base import (
    ProbeUnit,
    Sample,
    Variant,
    build_requests,
    check_task,
    get_options,
    options_field,
    text_fields,
)
from evalsuite.probes.kinds.prompt_format import FormatDetails, format_rows
from evalsuite.probes.metrics import metric, spread_interval, summary, task_result
from evalsuite.probes.scoring import StaticProbe
from evalsuite.records import FormatScore, MetricResult, ProbeDetail, SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings, mean_interval

DESCRIPTORS = ("Question", "QUESTION", "question", "Q", "Input", "Query")
SEPARATORS = (": ", ":: ", " - ", ":\n", " = ", ":")
SPACES = ("\n", "\n\n", " ", " || ", "\n\t")
NUMBERINGS = ("A.", "(A)", "A)", "[A]", "a.", "1.", "(1)", "i.")
ANSWERS = ("Answer", "ANSWER", "A", "Answer choice", "The answer is", "Solution")
_ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii")
_LEADING_DESCRIPTOR = re.compile(r"^\s*(question|q)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Format:
    descriptor: str
    separator: str
    space: str
    numbering: str
    answer: str

    def label(self, i: int) -> str:
        """The option label at position ``i`` (the text scored as the answer when options are listed)."""
        if "A" in self.numbering:
            core = chr(ord("A") + i)
        elif "a" in self.numbering:
            core = chr(ord("a") + i)
        elif "1" in self.numbering:
            core = str(i + 1)
        else:
            core = _ROMAN[i] if i < len(_ROMAN) else str(i + 1)
        return core

    def marker(self, i: int) -> str:
        return re.sub(r"A|a|1|i", lambda _: self.label(i), self.numbering, count=1)

    def render(self, context: list[str], question: str, options: list[str] | None) -> str:
        parts = [*context, f"{self.descriptor}{self.separator}{question}"]
        if options is not None:
            parts.append("\n".join(f"{self.marker(i)} {o}" for i, o in enumerate(options)))
        answer_separator = self.separator.rstrip() or ":"
        return self.space.join(parts) + self.space + f"{self.answer}{answer_separator}"

    def describe(self, options: bool) -> str:
        """The format as a template, e.g. ``Q: {question}\\n(A) {option}\\nAnswer:``."""
        return repr(self.render([], "{question}", ["{option}"] if options else None))[1:-1]


def sample_formats(count: int, seed: int) -> list[Format]:
    """``count`` distinct formats drawn from the grammar with ``seed``."""
    rng = random.Random(seed)
    seen: list[Format] = []
    while len(seen) < count:
        candidate = Format(
            rng.choice(DESCRIPTORS),
            rng.choice(SEPARATORS),
            rng.choice(SPACES),
            rng.choice(NUMBERINGS),
            rng.choice(ANSWERS),
        )
        if candidate not in seen:
            seen.append(candidate)
    return seen


class FormatProbe(StaticProbe):
    def __init__(self, formats: int) -> None:
        self.formats = formats  # drawn from the grammar

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        first = samples[0]
        check_task(unit, first)
        fields = sorted(text_fields(unit, first), key=lambda f: first.text.find(str(first.doc[f]).strip()))
        listed = options_field(first.doc, first.options, first.text) if first.options else None
        listed = (
            listed if listed and list(get_options(first.doc, listed)) != list(first.options or ()) else None
        )
        formats = sample_formats(self.formats, unit.seed_for("formats"))
        variants = []
        for sample in samples:
            context = [str(sample.doc[f]).strip() for f in fields[:-1]]
            question = _LEADING_DESCRIPTOR.sub("", str(sample.doc[fields[-1]]).strip())
            shown = get_options(sample.doc, listed) if listed else None
            for index, fmt in enumerate(formats):
                text = fmt.render(context, question, shown)
                scored = [fmt.label(i) for i in range(len(shown))] if shown else sample.options
                requests = build_requests(unit, sample, text, scored)
                details = {"format": index, "description": fmt.describe(shown is not None)}
                variants.append(
                    Variant(
                        sample,
                        f"format-{index}",
                        sample.doc,
                        requests,
                        sample.text,
                        text,
                        sample.gold,
                        None,
                        details,
                    )
                )
        return variants

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        table, descriptions, examples, errors = score_table(records)
        n, conf = len(table), settings.confidence
        scores = []
        for j, description in enumerate(descriptions):
            interval = mean_interval(table[:, j], conf) if n else None
            scores.append(
                FormatScore(
                    format=description,
                    example=examples[j],
                    value=interval.value if interval else None,
                    ci_low=interval.low if interval else None,
                    ci_high=interval.high if interval else None,
                    n=n,
                )
            )
        ranked = sorted(scores, key=lambda s: -(s.value if s.value is not None else -1))
        metrics: dict[str, MetricResult] = {}
        if n:
            best, worst = int(np.argmax(table.mean(axis=0))), int(np.argmin(table.mean(axis=0)))
            clusters = [i for i in range(n) for _ in descriptions]
            rng = np.random.default_rng(settings.seed)
            metrics = {
                "mean": metric(mean_interval(table.ravel(), conf, clusters), table.size, errors, True),
                "best": metric(mean_interval(table[:, best], conf), n, errors, True),
                "worst": metric(mean_interval(table[:, worst], conf), n, errors, True),
                "spread": metric(spread_interval(table, rng, settings), n, errors, False, "spread"),
            }
        extra = summary(
            unit,
            n,
            formats=ranked,
            best_format=ranked[0].format if ranked else None,
            worst_format=ranked[-1].format if ranked else None,
        )
        return task_result(unit, model, metrics, extra, "spread")


def score_table(records: list[SampleRecord]) -> tuple[np.ndarray, list[str], list[str], int]:
    """(samples x formats) scores of the samples scored in every format, format descriptions and the
    first sample's prompt in each format, and how many samples were left out for errors."""
    by_doc: dict[int, dict[int, ProbeDetail]] = {}
    for record in records:
        if record.probe is not None:
            detail = record.probe if record.error is None else record.probe.model_copy(update={"score": None})
            by_doc.setdefault(record.doc_id, {})[record.probe.details_as(FormatDetails).format] = detail
    count = max((len(g) for g in by_doc.values()), default=0)
    first = next(iter(by_doc.values()), {})
    descriptions = [first[j].details_as(FormatDetails).description for j in sorted(first)]
    examples = [first[j].perturbed for j in sorted(first)]
    rows = list(format_rows(records).values())
    table = np.array(rows, dtype=np.float64).reshape(len(rows), count)
    return table, descriptions, examples, len(by_doc) - len(rows)
