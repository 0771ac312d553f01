"""The scripted model of tests/dynamic/scripted.py, registered for each test module that asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dynamic import scripted


@pytest.fixture(scope="module")
def scripted_backend(data_dir: Path) -> Iterator[str]:
    scripted.register(data_dir)
    try:
        yield scripted.BACKEND
    finally:
        scripted.unregister()
