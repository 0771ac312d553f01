"""Run-directory integrity: `report`, `gate` and `compare` refuse a damaged or edited run directory (exit 2,
one line naming the file and what changed, nothing written, never a verdict), unless --accept-edits says
the edit was meant; then the report and summary.md show it. Records that disagree with the manifest or
results.json are refused even then."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import cli
from evalsuite.rundir import CHECKSUMS, PENDING, SEALED, file_digest, open_run, read_checksums
from tests.test_compare import BASE, WORSE, replay_rows, scripted_run

COMMANDS = ("report", "gate", "compare")
GATES = {"rules": [{"kind": "non_inferiority", "margin": 0.45}]}  # worse passes it: a verdict to withhold


@pytest.fixture(scope="module")
def pristine(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base 30/40 right, worse 23/40, a passing non-inferiority gate; never changed by a test."""
    folder = tmp_path_factory.mktemp("pristine")
    return scripted_run(folder, data_dir, {"base": BASE, "worse": WORSE}, name="sealed", gates=GATES)


@pytest.fixture
def run_dir(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "sealed"
    shutil.copytree(pristine, copy)
    return copy


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    """Change the document in place (what ``change`` returns is ignored)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def edit_records(path: Path, change: Callable[[list[dict[str, Any]]], Any]) -> None:
    """Change the records in place, or replace them with the list ``change`` returns."""
    records = lines(path)
    write_lines(path, change(records) or records)


def set_in(data: Any, keys: tuple[Any, ...], value: Any) -> None:
    for key in keys[:-1]:
        data = data[key]
    data[keys[-1]] = value


def rename_model(records: list[dict[str, Any]]) -> None:
    records[3]["model"] = "worse" if records[3]["model"] == "base" else "base"


def edit_metric(records: list[dict[str, Any]]) -> None:
    records[0]["metrics"]["acc"] = 1.0 - records[0]["metrics"]["acc"]


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# name -> (damage, what the one line must say); the six that silently gave a verdict are marked
DAMAGE: dict[str, tuple[Callable[[Path], Any], str]] = {
    "manifest deleted": (lambda d: (d / "manifest.json").unlink(), "manifest.json: missing"),
    "results deleted": (lambda d: (d / "results.json").unlink(), "results.json: missing"),
    "samples deleted": (lambda d: (d / "samples.jsonl").unlink(), "samples.jsonl: missing"),
    "manifest truncated": (lambda d: truncate(d / "manifest.json", 0.5), "manifest.json: not valid JSON"),
    "results truncated": (lambda d: truncate(d / "results.json", 0.5), "results.json: Invalid JSON"),
    "samples cut mid-line": (lambda d: truncate(d / "samples.jsonl", 0.99), "samples.jsonl:80: not a sample"),
    "samples garbage line": (
        lambda d: (d / "samples.jsonl").write_text("garbage\n" + (d / "samples.jsonl").read_text("utf-8")),
        "samples.jsonl:1: not a sample record",
    ),
    "results wrong type": (
        lambda d: edit_json(
            d / "results.json", lambda r: set_in(r, ("results", 0, "metrics", "acc", "n"), "x")
        ),
        "results.json: results[0].metrics.acc.n",
    ),
    "manifest not an object": (
        lambda d: (d / "manifest.json").write_text("[1, 2]", encoding="utf-8"),
        "manifest.json: expected a JSON object",
    ),
    "samples not UTF-8": (
        lambda d: (d / "samples.jsonl").write_bytes((d / "samples.jsonl").read_bytes() + b"\xff\xfe\n"),
        "samples.jsonl: not UTF-8 text",
    ),
    # the six that gave a verdict before the run directory was sealed
    "record deleted": (
        lambda d: edit_records(d / "samples.jsonl", lambda r: r[1:]),
        "samples.jsonl: changed",
    ),
    "record duplicated": (
        lambda d: edit_records(d / "samples.jsonl", lambda r: [*r, r[5]]),
        "samples.jsonl: changed",
    ),
    "record's model renamed": (
        lambda d: edit_records(d / "samples.jsonl", rename_model),
        "samples.jsonl: changed",
    ),
    "one sample's metric edited": (
        lambda d: edit_records(d / "samples.jsonl", edit_metric),
        "samples.jsonl: changed",
    ),
    "record of schema evalsuite.sample/99": (
        lambda d: edit_records(
            d / "samples.jsonl", lambda r: set_in(r, (7, "schema"), "evalsuite.sample/99")
        ),
        "samples.jsonl:8: schema 'evalsuite.sample/99' is not one this evalsuite reads",
    ),
    "samples emptied": (lambda d: (d / "samples.jsonl").write_text(""), "samples.jsonl: changed"),
    # more edits a sealed run directory shows
    "results value edited": (
        lambda d: edit_json(
            d / "results.json", lambda r: set_in(r, ("results", 1, "metrics", "acc", "value"), 0.99)
        ),
        "results.json: changed",
    ),
    "verdict flipped": (
        lambda d: edit_json(d / "results.json", lambda r: set_in(r, ("gates", "passed"), False)),
        "results.json: changed",
    ),
    "results of schema 99": (
        lambda d: edit_json(d / "results.json", lambda r: set_in(r, ("schema",), "evalsuite.results/99")),
        "results.json: schema 'evalsuite.results/99' is not one this evalsuite reads",
    ),
    "manifest edited": (
        lambda d: edit_json(d / "manifest.json", lambda m: set_in(m, ("seed",), 99)),
        "manifest.json: changed",
    ),
    "report edited": (
        lambda d: (d / "report.html").write_text("<p>all good</p>", encoding="utf-8"),
        "report.html: changed",
    ),
    "checksums deleted": (lambda d: (d / CHECKSUMS).unlink(), f"{CHECKSUMS}: deleted"),
    "checksums damaged": (
        lambda d: (d / CHECKSUMS).write_text("not a digest\n", encoding="utf-8"),
        f"{CHECKSUMS}: line 1 is not",
    ),
    "checksum edited": (
        lambda d: (d / CHECKSUMS).write_text(
            (d / CHECKSUMS).read_text("utf-8").replace(file_digest(d / "manifest.json"), "0" * 64), "utf-8"
        ),
        "manifest.json: changed",
    ),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_run_directory_gets_exit_2_one_line_and_no_verdict(
    damage: str, command: str, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply, message = DAMAGE[damage]
    apply(run_dir)
    before = snapshot(run_dir)
    assert cli.main([command, str(run_dir)]) == 2
    out, err = capsys.readouterr()
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "gates:" not in out and "comparisons written" not in out and "report written" not in out
    assert snapshot(run_dir) == before  # nothing rewritten


def test_the_line_names_the_file_and_the_flag(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_records(run_dir / "samples.jsonl", edit_metric)
    (run_dir / "report.html").write_text("edited", encoding="utf-8")
    assert cli.main(["gate", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"error: {run_dir / 'samples.jsonl'}: changed since evalsuite wrote it (sha256 " in err
    assert "(also report.html: changed); pass --accept-edits to use it anyway" in err


def test_a_damaged_run_is_refused_among_several(
    pristine: Path, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_records(run_dir / "samples.jsonl", edit_metric)
    argv = ["compare", str(pristine), str(run_dir), "--output", str(tmp_path / "joint")]
    assert cli.main(argv) == 2
    assert "samples.jsonl: changed" in capsys.readouterr().err
    assert not (tmp_path / "joint").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_sealed_run_passes_and_stays_sealed(
    command: str, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(run_dir)
    assert cli.main([command, str(run_dir)]) == 0
    assert snapshot(run_dir) == before  # re-rendered byte for byte, checksums included
    assert_sealed(run_dir)
    out, err = capsys.readouterr()
    assert err == "" and "was edited" not in out


def assert_sealed(folder: Path) -> None:
    """Every file evalsuite writes is in checksums.sha256 (the sha256sum -c format) with its digest."""
    digests, problem = read_checksums(folder / CHECKSUMS)
    assert problem is None and digests is not None
    written = {name for name in SEALED if (folder / name).is_file()}
    assert set(digests) == written
    assert all(file_digest(folder / name) == digests[name] for name in written)
    text = (folder / CHECKSUMS).read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"{digests['manifest.json']}  manifest.json"
    assert not (folder / PENDING).exists() and not list(folder.glob(".*.new"))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_deleted_view_is_drawn_again(
    command: str, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """report.html, summary.md and junit.xml show results.json: deleting one hides nothing."""
    before = snapshot(run_dir)
    for name in ("report.html", "summary.md", "junit.xml"):
        (run_dir / name).unlink()
    assert cli.main([command, str(run_dir)]) == 0
    assert snapshot(run_dir) == before
    capsys.readouterr()


def test_the_manifest_keeps_the_digests_of_what_the_run_wrote(pristine: Path) -> None:
    manifest = json.loads((pristine / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"] == {
        name: file_digest(pristine / name) for name in ("samples.jsonl", "results.json")
    }
    assert_sealed(pristine)


def test_rewritten_outputs_are_resealed_and_the_original_results_still_check(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = (run_dir / "results.json").read_bytes()
    assert cli.main(["compare", str(run_dir), "--adjust", "bh"]) == 0
    assert (run_dir / "results.json").read_bytes() != original
    assert_sealed(run_dir)
    assert cli.main(["gate", str(run_dir)]) == 0  # the gate judges with its own margin
    capsys.readouterr()
    # a results.json put back byte for byte as the run wrote it is not an edit (the manifest has its digest)
    (run_dir / "results.json").write_bytes(original)
    assert cli.main(["report", str(run_dir)]) == 0
    assert_sealed(run_dir)
    assert "Edited after the run" not in (run_dir / "summary.md").read_text(encoding="utf-8")


def test_a_command_killed_while_writing_leaves_a_run_that_checks(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Between renaming the new results.json into place and replacing the checksums, the pending list
    vouches for the new files."""
    real_replace = os.replace
    calls: list[str] = []

    def dying_replace(source: Any, target: Any) -> None:
        calls.append(Path(target).name)
        if Path(target).name == "report.html":  # results.json is already in place
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr("evalsuite.rundir.os.replace", dying_replace)
    assert cli.main(["compare", str(run_dir), "--adjust", "bh"]) == 130
    monkeypatch.undo()
    assert (run_dir / PENDING).is_file() and "results.json" in calls
    assert cli.main(["report", str(run_dir)]) == 0
    assert_sealed(run_dir)
    comparison = json.loads((run_dir / "results.json").read_text("utf-8"))["comparisons"][0]
    assert comparison["adjustment"] == "bh"  # the interrupted command's results.json, now sealed
    capsys.readouterr()


def redact_prompt(records: list[dict[str, Any]]) -> None:
    records[2]["prompt"] = "[redacted]"  # changes no metric: nothing decided moves
    records[42]["prompt"] = "[redacted]"  # the same document for the other model, so pairs still match


@pytest.mark.parametrize("command", COMMANDS)
def test_accept_edits_uses_the_run_and_the_report_and_summary_say_so(
    command: str, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_records(run_dir / "samples.jsonl", redact_prompt)
    assert lines(run_dir / "samples.jsonl")[42]["doc_id"] == lines(run_dir / "samples.jsonl")[2]["doc_id"]
    assert cli.main([command, str(run_dir)]) == 2
    capsys.readouterr()
    assert cli.main([command, str(run_dir), "--accept-edits"]) == 0
    err = capsys.readouterr().err
    assert "was edited after the run: samples.jsonl: changed (accepted now)" in err
    assert_edits_shown(run_dir, "samples.jsonl: changed")
    assert_sealed(run_dir)
    # accepted once, recorded for good: later commands need no flag and keep showing it
    for later in COMMANDS:
        assert cli.main([later, str(run_dir)]) == 0
        assert "samples.jsonl: changed (accepted 20" in capsys.readouterr().err
    assert_edits_shown(run_dir, "samples.jsonl: changed")


def assert_edits_shown(folder: Path, change: str) -> None:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert [e["changes"] for e in manifest["edits"]] == [[change]]
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    assert summary.splitlines()[2].startswith(
        "> ⚠️ **Edited after the run** (accepted with `--accept-edits`): "
    )
    assert change in summary.splitlines()[2]
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="edited-banner"' in report and change in report


def test_accept_edits_on_several_runs_compares_without_writing_them(
    pristine: Path, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_records(run_dir / "samples.jsonl", redact_prompt)
    before = snapshot(run_dir)
    copy = tmp_path / "other"
    shutil.copytree(pristine, copy)
    edit_json(copy / "manifest.json", lambda m: set_in(m, ("run",), "other"))
    argv = ["compare", str(run_dir), str(copy), "--output", str(tmp_path / "joint"), "--accept-edits"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "samples.jsonl: changed (accepted now)" in err and "manifest.json: changed (accepted now)" in err
    assert snapshot(run_dir) == before


# Records that no longer agree with the manifest or results.json: nothing could be derived from them,
# so --accept-edits does not let them through.
DISAGREEING: dict[str, tuple[Callable[[Path], Any], str]] = {
    "record deleted": (
        lambda d: edit_records(d / "samples.jsonl", lambda r: r[1:]),
        "samples.jsonl: 39 documents of model 'base' on 'quickstart_mc'; the run wrote 40",
    ),
    "record duplicated": (
        lambda d: edit_records(d / "samples.jsonl", lambda r: [*r, r[5]]),
        "samples.jsonl:81: a second record of model 'base' on 'quickstart_mc', document 5, variant "
        "'original' (the first is on line 6)",
    ),
    "record's model renamed": (
        lambda d: edit_records(d / "samples.jsonl", rename_model),
        "samples.jsonl:44: a second record of model 'worse' on 'quickstart_mc', document 3, variant "
        "'original' (the first is on line 4)",
    ),
    "record of an undeclared model": (
        lambda d: edit_records(d / "samples.jsonl", lambda r: set_in(r, (3, "model"), "ghost")),
        "samples.jsonl:4: model 'ghost' is not one the manifest declares (base, worse)",
    ),
    "record of an undeclared task": (
        lambda d: edit_records(d / "samples.jsonl", lambda r: set_in(r, (3, "task"), "arc_easy")),
        "samples.jsonl:4: task 'arc_easy' is not one the manifest declares (quickstart_mc)",
    ),
    "one sample's metric edited": (
        lambda d: edit_records(d / "samples.jsonl", edit_metric),
        "results.json: base on quickstart_mc: acc is 0.75, but its 40 records give 0.725",
    ),
    "samples emptied": (
        lambda d: (d / "samples.jsonl").write_text(""),
        "samples.jsonl: no records; the run wrote 80",
    ),
    "results value edited": (
        lambda d: edit_json(
            d / "results.json", lambda r: set_in(r, ("results", 0, "metrics", "acc", "value"), 0.9)
        ),
        "results.json: base on quickstart_mc: acc is 0.9, but its 40 records give 0.75",
    ),
    "results n edited": (
        lambda d: edit_json(
            d / "results.json", lambda r: set_in(r, ("results", 0, "metrics", "acc", "n"), 400)
        ),
        "results.json: base on quickstart_mc: acc rests on n=400 (0 failed), but samples.jsonl has 40",
    ),
    "comparison edited": (
        lambda d: edit_json(
            d / "results.json", lambda r: set_in(r, ("comparisons", 0, "variant_value"), 0.75)
        ),
        "results.json: comparisons[0] (worse vs base on quickstart_mc): the variant's acc is 0.75, but its "
        "records give 0.575",
    ),
    "result of an undeclared model": (
        lambda d: edit_json(d / "results.json", lambda r: set_in(r, ("results", 1, "model"), "ghost")),
        "results.json: results[1] is for model 'ghost' on 'quickstart_mc', which the manifest does not "
        "declare",
    ),
    "model dropped from the manifest": (
        lambda d: edit_json(d / "manifest.json", lambda m: m["models"].pop("worse")),
        "model 'worse' is not one the manifest declares (base)",
    ),
    "token shift mangled": (
        lambda d: edit_json(d / "manifest.json", lambda m: set_in(m, ("token_shift",), {"pairs": {"a": 1}})),
        "manifest.json: token_shift.method: required key is missing (and 1 more problem)",
    ),
    "manifest of schema 99": (
        lambda d: edit_json(d / "manifest.json", lambda m: set_in(m, ("schema",), "evalsuite.manifest/99")),
        "manifest.json: schema 'evalsuite.manifest/99' is not one this evalsuite reads",
    ),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", list(DISAGREEING))
def test_records_that_disagree_are_refused_even_with_accept_edits(
    damage: str, command: str, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply, message = DISAGREEING[damage]
    apply(run_dir)
    before = snapshot(run_dir)
    assert cli.main([command, str(run_dir), "--accept-edits"]) == 2
    out, err = capsys.readouterr()
    assert message in err, err
    assert err.count("\n") == 1 and "gates:" not in out
    assert snapshot(run_dir) == before


def test_a_run_directory_without_checksums_needs_the_flag(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As written before run directories were sealed: no checksums, no digests in the manifest."""
    (run_dir / CHECKSUMS).unlink()
    edit_json(run_dir / "manifest.json", lambda m: m.pop("files"))
    assert cli.main(["gate", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{CHECKSUMS}: missing (written before evalsuite sealed its run directories)" in err
    assert err.count("\n") == 1 and "--accept-edits" in err
    assert cli.main(["report", str(run_dir), "--accept-edits"]) == 0
    assert_edits_shown(run_dir, f"{CHECKSUMS}: missing (written before evalsuite sealed its run directories)")
    assert_sealed(run_dir)
    assert cli.main(["gate", str(run_dir)]) == 0
    capsys.readouterr()


def test_deleted_checksums_are_the_one_change_named(run_dir: Path) -> None:
    (run_dir / CHECKSUMS).unlink()
    assert open_run(run_dir, accept_edits=True).accepted == (f"{CHECKSUMS}: deleted",)
    (run_dir / "results.json").write_text((run_dir / "results.json").read_text("utf-8") + " ", "utf-8")
    assert open_run(run_dir, accept_edits=True).accepted == (f"{CHECKSUMS}: deleted", "results.json: changed")


def test_open_run_records_nothing_until_written(run_dir: Path) -> None:
    (run_dir / "summary.md").write_text("edited", encoding="utf-8")
    run = open_run(run_dir, accept_edits=True)
    assert run.accepted == ("summary.md: changed",) and run.edits == ("summary.md: changed (accepted now)",)
    assert run.manifest.edits == [] and "edits" not in run.manifest.document()


@pytest.fixture(scope="module")
def probe_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A task and a robustness probe: the probe's records are counted against the manifest's variants."""
    folder = tmp_path_factory.mktemp("probes")
    entries: list[dict[str, str]] = []
    for name, correct in {"base": BASE, "worse": WORSE}.items():
        path = folder / f"{name}.jsonl"
        write_lines(path, replay_rows(data_dir, correct))
        entries.append({"name": name, "backend": "replay", "path": str(path)})
    entries[1]["baseline"] = "base"
    config = {
        "run": {"name": "probed", "output_dir": str(folder / "out"), "data_dir": str(data_dir)},
        "stats": {"resamples": 200, "interval_resamples": 200},
        "models": entries,
        "tasks": ["quickstart_mc"],
        "probes": [{"kind": "homoglyph", "tasks": ["quickstart_mc"], "limit": 5}],
    }
    (folder / "probed.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["run", str(folder / "probed.yaml")]) == 0
    return folder / "out" / "probed"


def test_a_run_with_probes_checks(
    probe_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "probed"
    shutil.copytree(probe_run, copy)
    for command in ("report", "compare"):
        assert cli.main([command, str(copy)]) == 0, capsys.readouterr().err
    assert_sealed(copy)
    probe_line = next(
        i for i, r in enumerate(lines(copy / "samples.jsonl")) if r["task"].startswith("homoglyph")
    )
    edit_records(copy / "samples.jsonl", lambda r: r[:probe_line] + r[probe_line + 1 :])
    assert cli.main(["report", str(copy), "--accept-edits"]) == 2
    err = capsys.readouterr().err
    assert "samples.jsonl: 19 records of model 'base' on 'homoglyph/quickstart_mc'; the run wrote 20" in err


def test_a_config_stored_before_probe_kinds_had_their_own_keys_still_reads() -> None:
    """Runs written before issue 18 stored every probe key on every entry, at its default where the kind
    did not read it; reading them drops those keys, and keeps every key the kind does read."""
    from evalsuite.config import parse_config
    from evalsuite.rundir import own_probe_keys

    flat = {
        **{"severity": "medium", "seeds": 3, "fields": None, "choices": False, "formats": 8},
        **{"recipe": "deepwordbug", "query_budget": 200, "samples": 5, "temperature": 0.7},
        **{"embedding": True, "max_tokens": 32, "name": None, "limit": None, "num_fewshot": None},
    }
    stored = {
        "models": [{"name": "m", "path": "org/model"}],
        "probes": [
            {**flat, "kind": "fabricated", "tasks": [], "max_tokens": 16, "embedding": False},
            {**flat, "kind": "typo", "tasks": ["sst2_local"], "seeds": 2},
        ],
    }
    with pytest.raises(Exception, match="does not apply to kind 'fabricated'"):
        parse_config(stored)
    fabricated, typo = parse_config(own_probe_keys(stored)).probes
    assert fabricated.settings() == {"embedding": False, "max_tokens": 16}
    assert typo.settings() == {"severity": "medium", "seeds": 2, "choices": False, "fields": None}
    assert own_probe_keys({"models": []}) == {"models": []}  # nothing to change without probes
