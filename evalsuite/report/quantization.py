"""The report's quantization panel: every variant of one baseline side by side, to pick a level from.

One table per baseline that has a compared variant (the pairs of ``results.json``'s comparisons). Rows:
the baseline, then its noise-floor models (config ``noise_floor: true``: the same weights under other
arithmetic, drawn as a shaded band), then the other variants by bits per weight, most first (unknown
last). Columns: how the weights are stored (format, bits per weight, group size), weight and peak
memory, scoring tokens/s, the pair's next-token KL (mean and 99th percentile), and per compared task the
change of its metric with the interval, the flips b/c and, for a perplexity metric, the ratio
variant / baseline of the task's values.

A variant whose flips (b + c, per task) and token KL (mean and 99th percentile) are all at most the
largest value the baseline's noise-floor models show is marked "within noise": what quantization changed
there cannot be told apart from what another batch size or kernel changes. The rule is
:mod:`evalsuite.noise`'s, the one the ``shift`` gate's ``within_noise`` applies, so the mark and the
verdict never disagree.

Everything here is read from the records (``manifest.json``'s models and resolved config,
``results.json``'s results and comparisons), so runs written before a field existed show "—" for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from evalsuite import noise as rule
from evalsuite.manifest import Manifest, ModelInfoEntry
from evalsuite.records import Comparison, TaskResult
from evalsuite.rundir import RunDir

# metrics whose values are perplexities (or, for bits_per_byte, their logarithm): their ratio is shown
PERPLEXITIES = ("word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity")
NOISE_FLOOR_LABEL = "noise floor (same weights, other arithmetic)"
NO_QUANTIZATION = ("", "none")

Role = Literal["baseline", "noise_floor", "variant"]


finite = rule.finite  # ``value`` as a float when it is a finite number (not a bool), else None


def positive_int(value: object) -> int | None:
    number = finite(value)
    return int(number) if number is not None and number > 0 and number == int(number) else None


def text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def human_bytes(value: object) -> str:
    """``135.0 MB``: decimal units, as the models table writes them; "—" when not known."""
    number = finite(value)
    if number is None or number <= 0:
        return "—"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if number < 1000 or unit == "TB":
            return f"{number:.0f} B" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def signed(value: object, digits: int = 4) -> str:
    """``+0.0123``; "—" when not a finite number."""
    number = finite(value)
    return "—" if number is None else f"{number:+.{digits}f}"


def significant(value: object, digits: int = 3) -> str:
    """``0.00123``: ``digits`` significant digits, for values spanning magnitudes (KL); "—" when missing."""
    number = finite(value)
    return "—" if number is None else f"{number:.{digits}g}"


def dash(value: object) -> str:
    """The value as text, "—" when missing or not a finite number."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    return str(value)


@dataclass(frozen=True)
class Storage:
    """How a model's weights are stored and run, from its manifest entry; None where not known."""

    format: str | None  # ModelInfo.weight_format, else the quantization name, else the dtype
    bits_per_weight: float | None
    group_size: int | None
    kernel: str | None


def storage(info: ModelInfoEntry | None, quantization: str | None = None) -> Storage:
    """``info`` is ``manifest.json``'s ``models[name].info`` (None: the manifest has no such model);
    ``quantization`` the config's, for an entry that has none of its own."""
    named = text(info.quantization if info else None) or text(quantization)
    fmt = text(info.weight_format if info else None)
    if fmt is None:
        fmt = named if named not in (None, *NO_QUANTIZATION) else text(info.dtype if info else None)
    bits = finite(info.bits_per_weight if info else None)
    return Storage(
        format=fmt,
        bits_per_weight=bits if bits is not None and bits > 0 else None,
        group_size=positive_int(info.group_size if info else None),
        kernel=text(info.kernel if info else None),
    )


@dataclass(frozen=True)
class Column:
    """One compared task: its metric, and whether that metric is a perplexity."""

    task: str
    metric: str
    higher_is_better: bool

    @property
    def perplexity(self) -> bool:
        return self.metric in PERPLEXITIES


@dataclass(frozen=True)
class Cell:
    """A variant on one task: the change from the baseline with its interval, the flips, the ratio."""

    difference: float | None
    ci_low: float | None
    ci_high: float | None
    baseline_only: int | None  # b: baseline right, variant wrong
    variant_only: int | None  # c: baseline wrong, variant right
    ratio: float | None  # variant / baseline of the task's metric values, for a perplexity metric

    @property
    def flips(self) -> int | None:
        if self.baseline_only is None or self.variant_only is None:
            return None
        return self.baseline_only + self.variant_only


@dataclass(frozen=True)
class Row:
    model: str
    role: Role
    storage: Storage
    weight_memory_bytes: float | None
    peak_memory_bytes: float | None
    memory_kind: str | None  # how the peak was measured (cuda_max_allocated, process_rss_peak)
    tokens_per_second: float | None  # scoring: scored_tokens / scoring_seconds
    token_kl: float | None  # the pair's mean next-token KL(baseline || variant)
    token_kl_p99: float | None  # its 99th percentile
    cells: tuple[Cell | None, ...]  # per column; None: not compared on that task (the baseline's row)
    values: tuple[float | None, ...]  # per column: this model's value of the task's metric
    within_noise: bool | None = None  # None: not judged (the baseline, a noise floor, or none to judge by)
    judged_on: tuple[str, ...] = ()  # what the noise-floor judgement compared
    # MoE pairs: share of (token, layer) places routed as the baseline routes them, over the measured
    # prompts and over the prompts of items that flipped (ShiftResult.routing_agreement*)
    routing_agreement: float | None = None
    routing_agreement_flipped: float | None = None


@dataclass(frozen=True)
class NoiseBand:
    """The largest flips and KL the baseline's noise-floor models show: the band variants are judged by."""

    models: tuple[str, ...]
    flips: tuple[int | None, ...]  # per column
    token_kl: float | None
    token_kl_p99: float | None
    band: rule.Band | None = None  # the same band, as evalsuite.noise judges by it

    def describe(self, columns: Sequence[Column]) -> str:
        """``flips (b + c) up to 3 on arc; token KL up to 0.001 (mean), 0.01 (p99)``."""
        flips = [f"{n} on {c.task}" for c, n in zip(columns, self.flips, strict=True) if n is not None]
        kl = [
            f"{significant(v)} ({name})" for name, v in (("mean", self.token_kl), ("p99", self.token_kl_p99))
        ]
        parts = [f"flips (b + c) up to {', '.join(flips)}"] if flips else []
        if self.token_kl is not None or self.token_kl_p99 is not None:
            parts.append(f"token KL up to {', '.join(kl)}")
        return "; ".join(parts) or "no flips or KL measured"


@dataclass(frozen=True)
class BaselineTable:
    baseline: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]  # the baseline, its noise floor, then the variants by bits per weight
    noise: NoiseBand | None  # None: no noise-floor model for this baseline
    hint: str = ""  # how to add a noise floor, when there is none

    @property
    def has_routing(self) -> bool:
        """Whether any variant here is an MoE whose routing agreement was measured (a column then)."""
        return any(row.routing_agreement is not None for row in self.rows)


@dataclass(frozen=True)
class QuantizationPanel:
    tables: tuple[BaselineTable, ...]


# The resolved config is read as the manifest keeps it (JSON, Manifest.config), not parsed into a
# RunConfig: the panel draws runs whose config this evalsuite would resolve differently, or refuse.
def noise_floor_models(manifest: Manifest) -> set[str]:
    """The models the resolved config marks ``noise_floor: true`` (none in runs older than the key)."""
    return {name for name, m in _config_models(manifest).items() if m.get("noise_floor") is True}


def _config_models(manifest: Manifest) -> dict[str, Mapping[str, Any]]:
    models = manifest.config.get("models")
    if not isinstance(models, list):
        return {}
    return {m["name"]: m for m in models if isinstance(m, Mapping) and isinstance(m.get("name"), str)}


def model_storage(manifest: Manifest, name: str) -> Storage:
    """The storage facts of model ``name`` in ``manifest``, for the models table and the panel."""
    entry = manifest.models.get(name)
    quantization = _config_models(manifest).get(name, {}).get("quantization")
    return storage(entry.info if entry is not None else None, text(quantization))


def _value(results: Mapping[tuple[str, str], TaskResult], model: str, column: Column) -> float | None:
    result = results.get((model, column.task))
    metric = result.metrics.get(column.metric) if result else None
    return finite(metric.value) if metric else None


def _ratio(variant: float | None, baseline: float | None) -> float | None:
    if variant is None or baseline is None or baseline == 0:
        return None
    return variant / baseline


def _row(
    run: RunDir,
    model: str,
    role: Role,
    columns: Sequence[Column],
    pair: Sequence[Comparison],
    results: Mapping[tuple[str, str], TaskResult],
    baseline: str,
) -> Row:
    entry = run.manifest.models.get(model)
    info, telemetry = (entry.info, entry.telemetry) if entry is not None else (None, None)
    kind = text(telemetry.memory_kind) if telemetry is not None else None
    peak = finite(telemetry.peak_memory_bytes) if telemetry is not None and kind != "none" else None
    seconds = finite(telemetry.scoring_seconds) if telemetry is not None else None
    tokens = finite(telemetry.scored_tokens) if telemetry is not None else None
    speed = tokens / seconds if tokens is not None and seconds else None
    weights = finite(info.weight_memory_bytes) if info is not None else None
    values = tuple(_value(results, model, column) for column in columns)
    cells: list[Cell | None] = []
    for column, value in zip(columns, values, strict=True):
        found = next((c for c in pair if (c.task, c.metric) == (column.task, column.metric)), None)
        if found is None:
            cells.append(None)
            continue
        ratio = _ratio(value, _value(results, baseline, column)) if column.perplexity else None
        discordant = found.discordant
        cells.append(
            Cell(
                difference=finite(found.difference),
                ci_low=finite(found.ci_low),
                ci_high=finite(found.ci_high),
                baseline_only=discordant.baseline_only if discordant else None,
                variant_only=discordant.variant_only if discordant else None,
                ratio=ratio,
            )
        )
    kl, p99 = rule.pair_kl(pair)
    routed = next(
        (c.shift for c in pair if c.shift is not None and c.shift.routing_agreement is not None), None
    )
    return Row(
        model=model,
        role=role,
        storage=model_storage(run.manifest, model),
        weight_memory_bytes=weights if weights is not None and weights > 0 else None,
        peak_memory_bytes=peak if peak is not None and peak > 0 else None,
        memory_kind=kind if peak is not None and peak > 0 else None,
        tokens_per_second=speed,
        token_kl=kl,
        token_kl_p99=p99,
        cells=tuple(cells),
        values=values,
        routing_agreement=finite(routed.routing_agreement) if routed else None,
        routing_agreement_flipped=finite(routed.routing_agreement_flipped) if routed else None,
    )


def measures(row: Row, columns: Sequence[Column]) -> rule.Measures:
    """What a row's model changed from the baseline, as :mod:`evalsuite.noise` reads it."""
    flips = {
        column.task: n
        for column, cell in zip(columns, row.cells, strict=True)
        if cell is not None and (n := cell.flips) is not None
    }
    return rule.Measures(flips=flips, token_kl=row.token_kl, token_kl_p99=row.token_kl_p99)


def noise_band(rows: Sequence[Row], columns: Sequence[Column]) -> NoiseBand | None:
    """The band of the noise-floor rows (:func:`evalsuite.noise.band`), per column for the table."""
    band = rule.band({r.model: measures(r, columns) for r in rows if r.role == "noise_floor"})
    if band is None:
        return None
    return NoiseBand(
        models=band.models,
        flips=tuple(band.flips.get(c.task) for c in columns),
        token_kl=band.token_kl,
        token_kl_p99=band.token_kl_p99,
        band=band,
    )


def judge(row: Row, band: NoiseBand, columns: Sequence[Column]) -> Row:
    """``row`` with its "within noise" mark, by :func:`evalsuite.noise.judge`: every quantity the noise
    floor measured (flips per task, token KL mean and 99th percentile) is known for the variant and at
    most the band's largest value. Quantities the noise floor lacks are not judged; with none left,
    neither is the row."""
    assert band.band is not None
    judgements = rule.judge(measures(row, columns), band.band, [c.task for c in columns])
    within = rule.within_noise(judgements)
    if within is None:
        return row
    return replace(row, within_noise=within, judged_on=tuple(j.quantity for j in judgements))


def _bits_order(row: Row) -> tuple[int, float]:
    bits = row.storage.bits_per_weight
    return (1, 0.0) if bits is None else (0, -bits)


def hint(baseline: str, config: Mapping[str, Any]) -> str:
    """How to add a noise floor to ``baseline``: a variant of it with other arithmetic, same weights."""
    if config.get("backend") == "llamacpp":
        other = "llamacpp: {batch_tokens: 64}"
        what = "another llama.cpp batch size"
    else:
        batch = config.get("batch_size")
        other = f"batch_size: {1 if batch != 1 else 2}"
        what = "another batch size"
    return (
        f"No noise floor for {baseline}: add {{name: {baseline}-noise, variant_of: {baseline}, "
        f"noise_floor: true, {other}}} to model.yaml ({what}, or another backend on the same weights, "
        "such as hf float32 against llamacpp F32). Its flips and KL are what arithmetic alone changes: the "
        "band each variant is then judged against."
    )


def quantization_panel(run: RunDir) -> QuantizationPanel | None:
    """The panel's view model, or None when the run compares no variant with a baseline."""
    comparisons = run.results.comparisons
    if not comparisons:
        return None
    results = {(r.model, r.task): r for r in run.results.results if r.probe is None}
    # the comparisons say which variants are noise floors; runs older than that, their config
    floors = noise_floor_models(run.manifest) | {c.variant for c in comparisons if c.noise_floor}
    configs = _config_models(run.manifest)
    tables = []
    for baseline in dict.fromkeys(c.baseline for c in comparisons):
        mine = [c for c in comparisons if c.baseline == baseline]
        columns = tuple(
            Column(
                task, metric, next(c.higher_is_better for c in mine if (c.task, c.metric) == (task, metric))
            )
            for task, metric in dict.fromkeys((c.task, c.metric) for c in mine)
        )
        variants = list(dict.fromkeys(c.variant for c in mine))
        rows = [_row(run, baseline, "baseline", columns, [], results, baseline)]
        for variant in variants:
            role: Role = "noise_floor" if variant in floors else "variant"
            pair = [c for c in mine if c.variant == variant]
            rows.append(_row(run, variant, role, columns, pair, results, baseline))
        noise = [r for r in rows if r.role == "noise_floor"]
        others = sorted((r for r in rows if r.role == "variant"), key=_bits_order)  # stable: ties keep order
        band = noise_band(rows, columns)
        if band is not None:
            others = [judge(r, band, columns) for r in others]
        tables.append(
            BaselineTable(
                baseline=baseline,
                columns=columns,
                rows=(rows[0], *noise, *others),
                noise=band,
                hint="" if band is not None else hint(baseline, configs.get(baseline, {})),
            )
        )
    return QuantizationPanel(tuple(tables))
