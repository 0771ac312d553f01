"""The typed run manifest: old /1 manifests still read, and one that is not a manifest refused in one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from evalsuite.errors import DataError
from evalsuite.manifest import Manifest, parse_manifest

INFO: dict[str, Any] = {  # a model's info as the first /1 writer wrote it
    "architecture": "dense",
    "model_type": "llama",
    "parameters": 260_000,
    "active_parameters": 260_000,
    "dtype": "float32",
    "quantization": "none",
    "weight_memory_bytes": 1_040_000,
    "fingerprint": "fp-0001",
    "device": "cpu",
    "max_length": 512,
    "num_experts": None,
    "experts_per_token": None,
}
TELEMETRY: dict[str, Any] = {  # without oom_backoffs and retries, which came later
    "peak_memory_bytes": 0,
    "memory_kind": "none",
    "scored_tokens": 1200,
    "scoring_seconds": 2.0,
    "generated_tokens": 0,
    "generation_seconds": 0.0,
    "routing": None,
    "tokens_per_second": 600.0,
    "generated_tokens_per_second": 0.0,
}


def manifest_json(
    run: str = "old",
    models: dict[str, dict[str, Any]] | None = None,
    tasks: dict[str, dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A schema /1 manifest with every key the first /1 writer wrote and none it did not (no probes,
    token_shift, ranks, files or edits); ``models`` entries are merged over a full one (their ``info``
    and ``telemetry`` over INFO and TELEMETRY)."""
    entries = models if models is not None else {"base": {}}
    return {
        "schema": "evalsuite.manifest/1",
        "run": run,
        "created": "2025-11-25T10:00:00+00:00",
        "seed": 1234,
        "config": config if config is not None else {"run": {"name": run}, "models": [], "tasks": []},
        "versions": {"python": "3.11.7", "evalsuite": "0.1.0", "torch": "2.5.1", "bitsandbytes": None},
        "git_sha": "0123abcd",
        "hardware": {
            "platform": "Linux-6.1-x86_64",
            "machine": "x86_64",
            "cpu_count": 2,
            "torch_threads": 2,
            "memory_bytes": 8_000_000_000,
            "cuda_devices": [],
        },
        "models": {
            name: {
                "backend": "hf",
                "baseline": None,
                **entry,
                "info": {**INFO, **entry.get("info", {})},
                "telemetry": {**TELEMETRY, **entry.get("telemetry", {})},
            }
            for name, entry in entries.items()
        },
        "tasks": tasks
        if tasks is not None
        else {
            "quickstart_mc": {
                "source": "local",
                "output_type": "multiple_choice",
                "num_fewshot": 0,
                "limit": 40,
                "samples": 40,
            }
        },
        "finished": "2025-11-25T10:05:00+00:00",
    }


def a_manifest(run: str = "old", **fields: Any) -> Manifest:
    """A Manifest of ``manifest_json(run, ...)``, for tests that build a RunDir in code."""
    return Manifest.model_validate(manifest_json(run, **fields))


V1 = manifest_json(
    models={"base": {}, "int8": {"baseline": "base", "info": {"quantization": "torchao-int8"}}}
)


def test_a_v1_manifest_of_the_first_shape_is_read_into_typed_fields() -> None:
    manifest = parse_manifest(json.dumps(V1), Path("old/manifest.json"))
    assert manifest.models["int8"].baseline == "base"
    assert manifest.models["int8"].info.quantization == "torchao-int8"
    assert manifest.models["base"].telemetry.tokens_per_second == 600.0
    assert manifest.tasks["quickstart_mc"].samples == 40
    assert manifest.hardware.cpu_count == 2 and manifest.versions["bitsandbytes"] is None
    # what the first writer did not record reads as "not recorded"
    assert manifest.tasks["quickstart_mc"].primary_metric is None
    assert manifest.models["base"].telemetry.retries == 0 and manifest.models["base"].requests is None
    assert (manifest.probes, manifest.token_shift, manifest.ranks, manifest.files, manifest.edits) == (
        {},
        None,
        1,
        None,
        [],
    )


def test_a_v1_manifest_is_written_back_with_the_keys_it_had_and_no_other(tmp_path: Path) -> None:
    """Rewriting an old manifest (--accept-edits does) records no value the run never recorded."""
    old = dict(V1, legacy_note="kept")  # a key this evalsuite does not know is carried, not refused
    assert parse_manifest(json.dumps(old), tmp_path / "manifest.json").document() == old


def broken(data: dict[str, Any], keys: tuple[str, ...], value: Any = None) -> dict[str, Any]:
    """``data`` with the key at ``keys`` set to ``value``, or removed when ``value`` is None."""
    out = copy.deepcopy(data)
    place = out
    for key in keys[:-1]:
        place = place[key]
    if value is None:
        del place[keys[-1]]
    else:
        place[keys[-1]] = value
    return out


def test_the_reader_names_the_file_and_the_first_problem() -> None:
    with pytest.raises(DataError) as raised:
        parse_manifest(
            json.dumps(broken(V1, ("models", "int8", "info", "parameters"), "many")), Path("r/manifest.json")
        )
    assert str(raised.value) == (
        "r/manifest.json: models.int8.info.parameters: Input should be a valid integer, unable to parse "
        "string as an integer (got 'many')"
    )
