"""Start-up: `evalsuite run` imports what it needs before the model's first request, and no more.

scipy.stats costs about half a second to import and is needed only once the answers are in (intervals,
comparisons, gates): evalsuite.stats imports it inside the functions that use it. These checks run in
a fresh interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml

LOADED = 'print("LOADED", sorted(m for m in sys.modules if m == "scipy" or m.startswith("scipy.")))'


def scipy_modules(code: str) -> list[str]:
    """The scipy modules loaded after running ``code`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\n{LOADED}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("LOADED"))
    loaded: list[str] = ast.literal_eval(line.removeprefix("LOADED "))
    return loaded


def test_importing_the_runner_imports_no_scipy() -> None:
    assert scipy_modules("import evalsuite.cli, evalsuite.runner") == []


def test_planning_a_run_imports_no_scipy_stats(tmp_path: Path, stories: Path) -> None:
    config = tmp_path / "model.yaml"
    text = {"models": [{"name": "stories", "path": str(stories)}], "tasks": ["quickstart_mc"]}
    config.write_text(yaml.safe_dump(text), encoding="utf-8")
    argv = ["run", str(config), "--dry-run", "--output-dir", str(tmp_path / "out")]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    loaded = scipy_modules(f"from evalsuite import cli\nassert cli.main({argv!r}) == 0")
    assert "scipy.stats" not in loaded  # lm-eval and datasets, which planning imports, do not need it
