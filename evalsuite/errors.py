"""The exceptions evalsuite raises on purpose.

Every one of them means "the input was wrong or a resource was unusable", never "evalsuite has a
bug". The CLI turns each into one readable line and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EvalsuiteError(Exception):
    """Base class: a problem the user can fix."""


class ConfigError(EvalsuiteError):
    """model.yaml (or another user-supplied setting) is invalid."""


class DataError(EvalsuiteError):
    """A data file or task definition cannot be read or is malformed."""


class BackendError(EvalsuiteError):
    """A model backend cannot load or answer."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
