"""Fixtures for the probes: one offline textattack cache and one set of perturbers per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evalsuite.probes.adversarial.perturbers import Perturber, build_perturber


@pytest.fixture(scope="session")
def textattack_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder for ``load_textattack``; textattack itself is imported once per process."""
    return tmp_path_factory.mktemp("textattack-cache")


@pytest.fixture(scope="session")
def perturber(textattack_cache: Path) -> Callable[..., Perturber]:
    """``perturber(kind, severity="medium")``, each built once per session."""
    built: dict[tuple[str, str], Perturber] = {}

    def get(kind: str, severity: str = "medium") -> Perturber:
        if (kind, severity) not in built:
            built[kind, severity] = build_perturber(kind, severity, textattack_cache)
        return built[kind, severity]

    return get
