"""benchmarks/gpu_generation.py at its tiny preset on CPU: the GPU generation check runs and holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_generation_check_agrees_and_runs_fewer_tokens(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import gpu_generation
    finally:
        sys.path.remove(str(ROOT))
    out = tmp_path / "generation.json"
    assert gpu_generation.main(["--tiny", "--device", "cpu", "--dtype", "float32", "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["checks"] == {"identical_in_float32": True}
    assert report["identical"] == "10/10"
    # the shared few-shot prefix runs once and rows leave as they finish: fewer decoder positions
    assert report["model_tokens"]["evalsuite"] < report["model_tokens"]["lm_eval"]
    assert report["generated_tokens"]["evalsuite"] == report["generated_tokens"]["lm_eval"] > 0
