"""evalsuite report, gate and compare work from a run's records alone: no model library is imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.test_compare import scripted_run

MODEL_LIBRARIES = ("torch", "transformers", "lm_eval", "datasets", "llama_cpp", "vllm")
CHECK = """
import sys
from evalsuite import cli
code = cli.main(sys.argv[1:])
loaded = [name for name in {libraries!r} if name in sys.modules]
print("LOADED", loaded)
sys.exit(code)
"""


def run_fresh(*args: str) -> tuple[int, list[str]]:
    """A command in a fresh interpreter (this one has imported everything already)."""
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(libraries=MODEL_LIBRARIES), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("LOADED"))
    return done.returncode, ast.literal_eval(line.removeprefix("LOADED "))


def test_report_gate_and_compare_import_no_model_library(data_dir: Path, tmp_path: Path) -> None:
    base = set(range(0, 40, 2))
    models = {"base": base, "variant": base - {0, 2}}
    gates = {"rules": [{"kind": "threshold", "task": "quickstart_mc", "min": 0.1}]}
    run_dir = scripted_run(tmp_path, data_dir, models, name="records", gates=gates)
    assert run_fresh("report", str(run_dir)) == (0, [])
    assert run_fresh("gate", str(run_dir)) == (0, [])
    assert run_fresh("compare", str(run_dir), "--output", str(tmp_path / "compared")) == (0, [])
