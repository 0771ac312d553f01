"""Every hallucination probe kind on a fresh machine makes no network connection: a new interpreter with an
empty HOME and cache, sockets refused before evalsuite is imported (the guard of
tests/probes/test_no_network.py), the real tiny model, and the sentence-embedding model loaded from its
PyPI package (``embedding: true``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalsuite.records import read_samples
from tests.probes.test_no_network import LIMIT, run_offline

PROBES: list[dict[str, Any]] = [
    {"kind": "fabricated", "embedding": True, "max_tokens": 4},
    {"kind": "unanswerable", "max_tokens": 4},
    {"kind": "halueval", "max_tokens": 4},
    {"kind": "faithfulness", "max_tokens": 4},
    {"kind": "self_consistency", "tasks": ["triviaqa_local"], "samples": 2},
    {"kind": "calibration", "tasks": ["arc_challenge_local"]},
]
UNITS = {
    "fabricated",
    "unanswerable",
    "halueval",
    "faithfulness",
    "self_consistency/triviaqa_local",
    "calibration/arc_challenge_local",
}


def test_every_hallucination_probe_stays_offline(tmp_path: Path, stories: Path, data_dir: Path) -> None:
    run_offline(tmp_path, stories, data_dir, PROBES)
    run_dir = tmp_path / "out" / "offline"
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert {r["task"] for r in results["results"]} == UNITS
    records = list(read_samples(run_dir / "samples.jsonl"))
    assert [r for r in records if r.error is not None] == []
    fabricated = [r for r in records if r.task == "fabricated"]
    assert len(fabricated) == 2 * LIMIT
    for record in fabricated:  # the embedding model was loaded and used
        assert record.probe is not None
        assert isinstance(record.probe.details["similarity"], float)
