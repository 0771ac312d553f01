"""The run manifest (``manifest.json``): where, with what and on what a run was made, typed and versioned.

The runner builds a :class:`Manifest` and the writer serialises it (:meth:`Manifest.document`); ``report``,
``gate`` and ``compare`` read it back with :func:`parse_manifest`, which refuses a manifest it cannot
read in one line (a DataError, exit 2), and use its typed attributes.

Reading old run directories: every run directory written since schema ``evalsuite.manifest/1`` holds
this shape, but keys were added under /1 as evalsuite grew (``probes``, ``token_shift``, ``ranks``,
``files``, ``edits``, the storage fields of a model's info ...). What the first /1 writer wrote is
required; what came later has a default that says "not recorded", and :meth:`Manifest.document` writes
back only the keys that were read or set, so rewriting an old manifest (``--accept-edits``) adds no value
the run never recorded. A shape change would be ``evalsuite.manifest/2``, with /1 still read
(``MANIFEST_SCHEMAS`` in evalsuite/rundir.py).

Keys this evalsuite does not know are kept (``extra="allow"``), unlike the per-sample records' models:
the manifest is the run's provenance, so a key from another evalsuite of the same schema (or a fact a
backend's ``ModelInfo`` gained since) is carried through a rewrite rather than refused, which would shut
``report``, ``gate`` and ``compare`` out of the run, or dropped, which would lose it silently. Only
evalsuite writes the file and its checksum guards it, so an unknown key is not a typo to catch.

Imports no model library (``tests/test_outputs.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalsuite.config import format_validation_error
from evalsuite.errors import DataError
from evalsuite.records import MANIFEST_SCHEMA, JSONValue

MANIFEST_SCHEMAS = (MANIFEST_SCHEMA,)  # the manifest versions this evalsuite reads


class _Entry(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # unknown keys kept: see the module's docstring


class Hardware(_Entry):
    """The machine the run was made on."""

    platform: str  # platform.platform()
    machine: str  # e.g. x86_64
    cpu_count: int | None  # os.cpu_count(); None where it cannot tell
    torch_threads: int  # torch.get_num_threads() when the run started
    memory_bytes: int  # physical memory
    cuda_devices: list[str]  # the names of the CUDA devices torch saw (none: a CPU run)


class RequestCounts(_Entry):
    """Where a model's answers came from (evalsuite.engine.scheduler.Counts)."""

    computed: int  # sent to the backend
    cached: int  # read from the persistent answer cache
    failed: int  # the backend raised on them


class ModelInfoEntry(_Entry):
    """What the backend said about the loaded model (evalsuite.models.base.ModelInfo, as JSON)."""

    architecture: str  # dense, moe, ssm, hybrid or unknown
    model_type: str  # the checkpoint's model_type, e.g. llama, mixtral
    parameters: int  # 0 where not known (a served model)
    active_parameters: int  # per token; below parameters for an MoE
    dtype: str
    quantization: str  # the quantization's name, "none" without one
    weight_memory_bytes: int
    fingerprint: str  # identifies the weights: equal fingerprints, equal weights
    device: str  # cpu, cuda:0, a server's address ...
    max_length: int | None = None  # context length
    num_experts: int | None = None  # MoE: experts per layer
    experts_per_token: int | None = None  # MoE: experts each token is routed to
    # how the weights are stored and run (None where not known, or in runs written before they were kept)
    weight_format: str | None = None  # e.g. "GGUF Q4_K (q4_k_m)"
    bits_per_weight: float | None = None  # stored bytes * 8 / weights
    group_size: int | None = None  # quantization block size of the dominant format
    kernel: str | None = None  # what computes with them


class RoutingEntry(_Entry):
    """MoE routing over the run (evalsuite.models.base.RoutingStats, as JSON)."""

    expert_load: list[list[float]]  # [layer][expert]: the share of expert selections each expert received
    routing_entropy: list[float]  # [layer]: mean per-token entropy of the router softmax, nats
    load_entropy: list[float]  # [layer]: entropy of expert_load, nats
    tokens: int


class TelemetryEntry(_Entry):
    """What was measured while the model ran (evalsuite.models.base.Telemetry, as JSON, with its rates)."""

    peak_memory_bytes: int
    memory_kind: str  # cuda_max_allocated, process_rss_peak, or none (not measured)
    scored_tokens: int
    scoring_seconds: float
    generated_tokens: int
    generation_seconds: float
    oom_backoffs: int = 0  # times the batch size was halved after running out of GPU memory
    retries: int = 0  # served models: requests tried again
    routing: RoutingEntry | None = None  # MoE models only
    tokens_per_second: float  # scored_tokens / scoring_seconds (0 when nothing was scored)
    generated_tokens_per_second: float


class ModelEntry(_Entry):
    """One model of the run: ``models[name]``."""

    backend: str  # hf, llamacpp, vllm, openai, replay ...
    baseline: str | None  # the model it is compared against
    loaded: bool | None = None  # False: every answer came from the answer cache (None: not recorded)
    requests: RequestCounts | None = None  # None in runs written before the answer cache
    info: ModelInfoEntry
    telemetry: TelemetryEntry
    from_run: str | None = None  # "DIR (MODEL)": not evaluated here; its records came from that run


class TaskEntry(_Entry):
    """One task of the run: ``tasks[name]``."""

    source: str  # where the task's definition comes from
    output_type: str  # multiple_choice, generate_until, loglikelihood_rolling ...
    num_fewshot: int
    limit: int | None  # the config's limit (None: every document)
    samples: int  # documents per model: check_records counts the records against it
    primary_metric: str | None = None  # the metric comparisons and the report lead with
    cluster_by: str | None = None  # the document field grouping dependent samples, as the run resolved it
    # documents each model answered, where stats.sequential stopped some early (None: every model, all)
    evaluated: dict[str, int] | None = None


class ProbeEntry(_Entry):
    """One probe unit (a probe on one task): ``probes[unit]``."""

    probe: str  # the probe's name in the config
    kind: str  # homoglyph, option_order, prompt_format ...
    task: str | None  # the task it perturbs (None: a probe with its own data)
    samples: int  # documents it draws from
    variants: int  # records per model: check_records counts the records against it
    num_fewshot: int
    # records per model, as written: an adaptive probe decides them while it runs (an attack adds one for
    # each sample it attacks), so they can differ from the variants; absent in runs written before
    records: dict[str, int] | None = None


class PairShift(_Entry):
    """Next-token KL(baseline || variant) of one pair over the measured prompts (stats.shift.TokenKL)."""

    token_kl: float  # mean over the tokens
    tail_mass: float  # the baseline's probability outside its top k, over which the bound is taken
    tokens: int
    token_kl_p99: float | None = None  # 99th percentile per token (None: not finite, or not recorded)


class TokenShiftEntry(_Entry):
    """What evalsuite.token_shift measured while the models were loaded; pairs are "baseline -> variant"."""

    method: str  # how, in words
    pairs: dict[str, PairShift] = {}
    skipped: dict[str, str] = {}  # pair -> why it was not measured
    # MoE pairs: per measured prompt, [task, document, share of (token, layer) places routed alike]
    routing: dict[str, list[tuple[str, int, float]]] = {}


class Edit(_Entry):
    """Changes let through with --accept-edits, and when."""

    accepted: str  # UTC time, ISO 8601
    changes: list[str]  # "FILE: what" (evalsuite.rundir.Change.note)


class ManifestHeader(_Entry):
    """What is known when the run starts (evalsuite.environment.manifest_header)."""

    schema_: str = Field(MANIFEST_SCHEMA, alias="schema")
    run: str  # the run's name
    created: str  # UTC time the run started, ISO 8601
    seed: int
    # the resolved RunConfig as JSON: kept as the run wrote it and parsed on use (RunDir.config), so a run
    # whose config an older or newer evalsuite resolved differently still opens for what needs no config
    config: dict[str, JSONValue]
    versions: dict[str, str | None]  # python and each package evalsuite uses (None: not installed)
    git_sha: str | None  # the evalsuite checkout's commit; None outside a git checkout
    hardware: Hardware

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Manifest(ManifestHeader):
    """manifest.json: the header, then what the run did. Keys in the order they are written."""

    models: dict[str, ModelEntry]  # in evaluation order (every baseline before its variants)
    tasks: dict[str, TaskEntry]
    probes: dict[str, ProbeEntry] = {}  # by unit name, "probe/task"
    token_shift: TokenShiftEntry | None = None  # None in runs written before it was measured
    ranks: int = 1  # processes of a data-parallel run (runs before ranks were recorded had one)
    finished: str  # UTC time the run ended, ISO 8601
    # the sha256 of samples.jsonl and results.json as the run wrote them (see evalsuite/rundir.py);
    # None in runs written before run directories were sealed
    files: dict[str, str] | None = None
    edits: list[Edit] = []  # what --accept-edits let through since, oldest first

    def document(self) -> dict[str, Any]:
        """What manifest.json holds: every key that was set or read, in the order above (unknown keys
        last), the schema first. Python values, for records.write_json: a NaN stays NaN as it always
        has (pydantic's JSON mode would make it null)."""
        return {"schema": self.schema_, **self.model_dump(by_alias=True, exclude_unset=True)}


def parse_manifest(text: str, where: Path) -> Manifest:
    """A manifest.json's text as a Manifest; anything else is a DataError naming ``where`` and the first
    problem: not JSON, not an object, a schema this evalsuite does not read, a key missing or of the
    wrong type."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON: {error.msg} (line {error.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object")
    schema = data.get("schema")
    if schema not in MANIFEST_SCHEMAS:
        known = ", ".join(MANIFEST_SCHEMAS)
        raise DataError(f"{where}: schema {schema!r} is not one this evalsuite reads ({known})")
    try:
        return Manifest.model_validate(data)
    except ValidationError as error:
        raise DataError(format_validation_error(error, str(where))) from None
