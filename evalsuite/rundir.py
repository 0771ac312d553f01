"""Reading a finished run directory back: manifest, results and samples, without any model.

``evalsuite compare`` (and the report and gates after it) work from these files alone, so any finished
run can be re-compared, re-rendered or re-gated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalsuite.config import RunConfig, format_validation_error, parse_config
from evalsuite.errors import DataError
from evalsuite.records import Results, SampleRecord, read_samples

FILES = ("manifest.json", "results.json", "samples.jsonl")


@dataclass(frozen=True)
class RunDir:
    path: Path
    manifest: dict[str, Any]
    results: Results
    samples: tuple[SampleRecord, ...]

    @property
    def name(self) -> str:
        return str(self.manifest.get("run", self.path.name))

    @property
    def config(self) -> RunConfig:
        return parse_config(self.manifest.get("config"), f"{self.path / 'manifest.json'} (config)")

    @property
    def token_shift(self) -> dict[tuple[str, str], tuple[float, float, int]]:
        pairs = self.manifest.get("token_shift", {}).get("pairs", {})
        out = {}
        for key, value in pairs.items():
            base, _, variant = key.partition(" -> ")
            out[(base, variant)] = (float(value["token_kl"]), float(value["tail_mass"]), int(value["tokens"]))
        return out


def load_run(path: Path) -> RunDir:
    """Read a run directory; a missing or malformed file is a DataError naming it."""
    if not path.is_dir():
        raise DataError(f"{path}: no such run directory")
    for name in FILES:
        if not (path / name).is_file():
            raise DataError(f"{path}: not a run directory (no {name})")
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        results = Results.model_validate_json((path / "results.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path / 'manifest.json'}: not valid JSON: {error.msg}") from None
    except ValidationError as error:
        raise DataError(format_validation_error(error, str(path / "results.json"))) from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path / 'manifest.json'}: expected a JSON object")
    return RunDir(path, manifest, results, tuple(read_samples(path / "samples.jsonl")))
