"""``evalsuite import FORMAT PATH ...``: another tool's per-sample output as a normal run directory.

A format is a reader registered in :data:`FORMATS` under the word the command line takes; the reader
turns the tool's files into :class:`~evalsuite.imports.core.ImportedModel` values and
:func:`~evalsuite.imports.core.import_run` does the rest, the same for every format (docs/import.md).
"""

from __future__ import annotations

from evalsuite.imports import inspect_logs, lm_eval
from evalsuite.imports.core import ImportedModel, ImportSettings, Reader, Source, build_run, import_run
from evalsuite.registry import Registry

FORMATS: Registry[Reader] = Registry("import format")
FORMATS.register(lm_eval.FORMAT)(lm_eval.read)
FORMATS.register(inspect_logs.FORMAT)(inspect_logs.read)

__all__ = ["FORMATS", "ImportSettings", "ImportedModel", "Reader", "Source", "build_run", "import_run"]
