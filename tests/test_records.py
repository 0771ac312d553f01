"""Records: versioned, round-trip exactly, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evalsuite.errors import DataError
from evalsuite.records import ChoiceScore, SampleRecord, read_samples, write_atomic, write_samples


def record(doc_id: int, **fields: object) -> SampleRecord:
    return SampleRecord.model_validate(
        {"model": "m", "task": "t", "doc_id": doc_id, "prompt": "Q: <b>\u202e\x00?", **fields}
    )


def test_records_round_trip_through_jsonl(tmp_path: Path) -> None:
    records = [
        record(
            0,
            choices=[ChoiceScore(text=" yes", loglikelihood=-0.25, is_greedy=True)],
            target=0,
            metrics={"acc": 1.0},
        ),
        record(1, generation="Paris", filtered="paris", metrics={"exact_match": 0.0}, error=None),
        record(2, loglikelihood=-12.5, metrics={"word_perplexity": [-12.5, 3]}),
        record(3, error="RuntimeError: boom"),
    ]
    path = tmp_path / "samples.jsonl"
    write_samples(path, records)
    assert list(read_samples(path)) == records
    assert path.read_text(encoding="utf-8").count("\n") == 4
    assert '"schema": "evalsuite.sample/1"' in path.read_text(encoding="utf-8")


def test_a_malformed_line_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    write_samples(path, [record(0)])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"model": "m"}\n')
    with pytest.raises(DataError, match=r"samples\.jsonl:2: not a sample record"):
        list(read_samples(path))


def test_atomic_write_leaves_the_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.json"
    write_atomic(path, "old\n")

    def crash(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new and much longer\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left
