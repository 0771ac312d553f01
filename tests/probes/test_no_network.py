"""A probe run on a fresh machine makes no network connection: a new interpreter with an empty HOME and
cache, sockets refused before evalsuite is imported, and one probe of every family through `evalsuite run`.

The guard is the one of tests/probes/adversarial/test_textattack_env.py (which guards the perturbers
alone), here around the whole CLI run: task data, model, textattack, the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from evalsuite.probes.adversarial.textattack_env import WORDNET_SOURCE

HAS_WORDNET = (WORDNET_SOURCE / "data.noun").is_file()
LIMIT = 2

_GUARDED_RUN = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr((args, kwargs))[:200])
        raise OSError("network access is disabled in this test")

    socket.socket.connect = lambda self, *a: refuse(*a)
    socket.socket.connect_ex = lambda self, *a: refuse(*a)
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from evalsuite import cli

    rc = cli.main(["run", sys.argv[1]])
    print("RESULT " + json.dumps({"rc": rc, "attempts": attempts}))
    """
)

PROBES: list[dict[str, Any]] = [
    {"kind": "typo", "tasks": ["sst2_local"], "seeds": 1},
    *([{"kind": "synonym", "tasks": ["sst2_local"], "seeds": 1}] if HAS_WORDNET else []),
    {"kind": "option_order", "tasks": ["mmlu_local"]},
    {"kind": "prompt_format", "tasks": ["arc_challenge_local"], "formats": 2},
    {"kind": "attack", "tasks": ["sst2_local"], "query_budget": 8},
]


def run_offline(tmp_path: Path, stories: Path, data_dir: Path, probes: list[dict[str, Any]]) -> str:
    """Run ``probes`` on the stories model in a fresh interpreter whose sockets refuse to connect, with
    a fresh HOME and cache; assert it succeeded without a connection attempt; return its stderr."""
    config = {
        "run": {"name": "offline", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir)},
        "stats": {"resamples": 200, "interval_resamples": 200},
        "models": [{"name": "stories", "path": str(stories)}],
        "probes": [{**p, "limit": LIMIT} for p in probes],
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
    return done.stderr


def test_a_probe_run_on_a_fresh_machine_stays_offline(tmp_path: Path, stories: Path, data_dir: Path) -> None:
    run_offline(tmp_path, stories, data_dir, PROBES)
    results = json.loads((tmp_path / "out" / "offline" / "results.json").read_text(encoding="utf-8"))
    units = {r["task"] for r in results["results"]}
    assert units == {f"{p['kind']}/{task}" for p in PROBES for task in p["tasks"]}
    # the evalsuite cache (NLTK data for textattack) went under the fresh XDG cache folder
    assert (tmp_path / "xdg-cache" / "evalsuite" / "nltk_data" / "corpora" / "stopwords").is_dir()
