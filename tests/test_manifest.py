"""The typed run manifest: written by the run through the Manifest model, read back through it, old /1
manifests still read, and a manifest that is not one refused in one line (exit 2)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from lxml import html

from evalsuite import cli
from evalsuite.errors import DataError
from evalsuite.manifest import Manifest, parse_manifest
from evalsuite.records import Results, write_json
from evalsuite.report import render_report
from evalsuite.rundir import RunDir, open_run
from tests.test_compare import BASE, WORSE, scripted_run

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


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replay run of base and worse: its manifest written by the runner through Manifest."""
    return scripted_run(tmp_path_factory.mktemp("manifest"), data_dir, {"base": BASE, "worse": WORSE})


def test_the_run_writes_the_manifest_keys_in_the_order_they_always_had(run_dir: Path) -> None:
    on_disk = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert list(on_disk) == [
        "schema",
        "run",
        "created",
        "seed",
        "config",
        "versions",
        "git_sha",
        "hardware",
        "models",
        "tasks",
        "probes",
        "token_shift",
        "ranks",
        "finished",
        "files",
    ]
    assert list(on_disk["models"]["worse"]) == [
        "backend",
        "baseline",
        "loaded",
        "requests",
        "info",
        "telemetry",
    ]
    assert on_disk["schema"] == "evalsuite.manifest/1"
    assert on_disk["tasks"]["quickstart_mc"] == {
        "source": on_disk["tasks"]["quickstart_mc"]["source"],
        "output_type": "multiple_choice",
        "num_fewshot": 0,
        "limit": None,
        "samples": 40,
        "primary_metric": "acc",
        "cluster_by": None,
        "evaluated": None,
    }
    assert on_disk["token_shift"]["skipped"] == {
        "base -> worse": "worse's backend shows no token distributions"
    }


def test_round_trip_reads_what_the_run_wrote_and_writes_the_same_bytes(run_dir: Path, tmp_path: Path) -> None:
    text = (run_dir / "manifest.json").read_text(encoding="utf-8")
    manifest = open_run(run_dir).manifest
    assert (manifest.run, manifest.models["worse"].backend, manifest.models["worse"].baseline) == (
        "scripted",
        "replay",
        "base",
    )
    assert manifest.models["base"].requests is not None and manifest.models["base"].requests.computed == 160
    write_json(tmp_path / "manifest.json", manifest.document())
    assert (tmp_path / "manifest.json").read_text(encoding="utf-8") == text


def test_accepted_edits_are_written_after_the_digests(run_dir: Path, tmp_path: Path) -> None:
    copy_dir = tmp_path / "run"
    shutil.copytree(run_dir, copy_dir)
    (copy_dir / "summary.md").write_text("edited", encoding="utf-8")
    assert cli.main(["report", str(copy_dir), "--accept-edits"]) == 0
    on_disk = json.loads((copy_dir / "manifest.json").read_text(encoding="utf-8"))
    assert list(on_disk)[-2:] == ["files", "edits"]
    assert [e["changes"] for e in on_disk["edits"]] == [["summary.md: changed"]]
    assert open_run(copy_dir).manifest.edits[0].changes == ["summary.md: changed"]


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


BAD = {
    "a required key missing": (("tasks",), None, "manifest.json: tasks: required key is missing"),
    "a model's info without its fingerprint": (
        ("models", "base", "info", "fingerprint"),
        None,
        "manifest.json: models.base.info.fingerprint: required key is missing",
    ),
    "a count of the wrong type": (
        ("tasks", "quickstart_mc", "samples"),
        "forty",
        "manifest.json: tasks.quickstart_mc.samples: Input should be a valid integer",
    ),
    "a table that is not one": (("models",), [1, 2], "manifest.json: models: Input should be a mapping"),
    "token shift mangled": (
        ("token_shift",),
        {"pairs": {"a": 1}},
        "manifest.json: token_shift.method: required key is missing (and 1 more problem)",
    ),
    "a schema this evalsuite does not read": (
        ("schema",),
        "evalsuite.manifest/2",
        "manifest.json: schema 'evalsuite.manifest/2' is not one this evalsuite reads (evalsuite.manifest/1)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_manifest_that_is_not_one_is_one_line_and_exit_2(
    case: str, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, value, message = BAD[case]
    copy_dir = tmp_path / "run"
    shutil.copytree(run_dir, copy_dir)
    data = json.loads((copy_dir / "manifest.json").read_text(encoding="utf-8"))
    (copy_dir / "manifest.json").write_text(json.dumps(broken(data, keys, value)), encoding="utf-8")
    assert cli.main(["report", str(copy_dir), "--accept-edits"]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1


def test_the_reader_names_the_file_and_the_first_problem() -> None:
    with pytest.raises(DataError) as raised:
        parse_manifest(
            json.dumps(broken(V1, ("models", "int8", "info", "parameters"), "many")), Path("r/manifest.json")
        )
    assert str(raised.value) == (
        "r/manifest.json: models.int8.info.parameters: Input should be a valid integer, unable to parse "
        "string as an integer (got 'many')"
    )


def test_the_report_shows_the_manifest_through_its_typed_fields(tmp_path: Path) -> None:
    manifest = a_manifest(
        "shown",
        models={
            "base": {"info": {"fingerprint": "fp-base-77", "architecture": "moe", "parameters": 4_000_000}},
            "q4": {"baseline": "base", "telemetry": {"retries": 3}},
        },
    )
    page = render_report(RunDir(tmp_path, manifest, Results(run="shown", results=[]), ()))
    tree = html.fromstring(page)
    rows = tree.get_element_by_id("models-table").xpath(".//tr[td]")
    cells = {
        row.xpath("./td")[0].text_content(): [td.text_content() for td in row.xpath("./td")] for row in rows
    }
    assert cells["base"][1].split() == ["moe", "llama"]
    assert cells["base"][2] == "4,000,000 (260,000)"
    assert cells["q4"][9] == "cpu 3 retries" and cells["q4"][-1] == "base"
    assert "fp-base-77" in page and "seed 1234" in page and "git 0123abcd" in page
