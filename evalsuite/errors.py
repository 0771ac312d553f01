"""The exceptions evalsuite raises on purpose.

Every one of them means "the input was wrong or a resource was unusable", never "evalsuite has a
bug". The CLI turns each into one readable line and exit code 2, except BackendUnavailable (exit code 3:
nothing was wrong with the input; the run can be resumed once the server answers again).
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


class BackendUnavailable(EvalsuiteError):
    """A backend can answer no request now (a server unreachable after its retry budget, a refused key).

    Unlike a BackendError, which fails one sample, this stops the run: the answers already computed are
    in the answer cache, and rerunning the same command resumes from them."""
