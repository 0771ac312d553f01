"""Every hallucination probe kind on a fresh machine makes no network connection: a new interpreter with an
empty HOME and cache, sockets refused before evalsuite is imported (the guard of
tests/probes/test_no_network.py), the real tiny model, and the sentence-embedding model loaded from its
PyPI package (``embedding: true``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from evalsuite.records import read_samples
from tests.probes.test_no_network import _GUARDED_RUN

LIMIT = 2
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
    config = {
        "run": {"name": "offline", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir)},
        "stats": {"resamples": 200},
        "models": [{"name": "stories", "path": str(stories)}],
        "probes": [{**p, "limit": LIMIT} for p in PROBES],
    }
    path = tmp_path / "offline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    cleared = ("TA_CACHE_DIR", "HF_HOME", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE", "EVALSUITE_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", _GUARDED_RUN, str(path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["rc"] == 0, done.stderr[-3000:]
    assert result["attempts"] == []
    assert "Downloading" not in done.stderr
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
