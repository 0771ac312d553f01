"""What textattack's import needs of flair, so textattack imports without flair installed.

textattack 0.3.11 declares flair and imports it at import time, only for part-of-speech and
named-entity tagging (``textattack/shared/utils/strings.py``, ``shared/attacked_text.py``,
``constraints/grammaticality/part_of_speech.py``). flair 0.15.1 does not import under transformers 5
(``cannot import name 'LayoutLMv2FeatureExtractor'``), and evalsuite uses none of textattack's tagging.
So textattack is installed with ``--no-deps`` (docs/dependencies.md), and :func:`install` puts a
module named ``flair`` into ``sys.modules`` holding exactly what those imports read:

* ``flair.data.Sentence`` (imported by name; tagging would construct one),
* ``flair.data.Tokenizer`` (subclassed by ``TextAttackFlairTokenizer`` at import time),
* ``flair.models.SequenceTagger`` (imported by name; tagging would load one),
* ``flair.device`` (assigned by ``attacked_text.py``).

Anything that would tag a sentence raises :class:`FlairUnavailable` with the reason, instead of
failing somewhere inside textattack. ``tests/probes/adversarial/test_textattack_env.py`` fails loudly
when a textattack release stops importing flair, so this module can then go.
"""

from __future__ import annotations

import sys
import types
from typing import Any, NoReturn

STUB_MARKER = "__evalsuite_flair_stub__"
REASON = (
    "flair is not installed (evalsuite installs textattack without it: flair does not import under "
    "transformers 5); textattack's part-of-speech and named-entity tagging are unavailable"
)


class FlairUnavailable(RuntimeError):
    """Raised by anything that would need flair's tagging models."""


def _unavailable(*_args: object, **_kwargs: object) -> NoReturn:
    raise FlairUnavailable(REASON)


class Tokenizer:
    """flair's tokenizer base class: textattack subclasses it and overrides ``tokenize``."""

    def tokenize(self, text: str) -> list[str]:
        _unavailable(text)

    @property
    def name(self) -> str:
        return type(self).__name__


class Sentence:
    """Stands in for ``flair.data.Sentence``; constructing one (only tagging does) raises."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        _unavailable(*args, **kwargs)


class SequenceTagger:
    """Stands in for ``flair.models.SequenceTagger``; loading a tagger raises."""

    load = staticmethod(_unavailable)

    def __init__(self, *args: object, **kwargs: object) -> None:
        _unavailable(*args, **kwargs)


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(
        name, f"evalsuite's stand-in for {name} (evalsuite.probes.adversarial.flair_stub)"
    )
    for key, value in attributes.items():
        setattr(module, key, value)
    setattr(module, STUB_MARKER, True)
    return module


def install() -> bool:
    """Put the stand-in ``flair`` into ``sys.modules`` unless a flair module is already loaded.

    The stand-in is used even where flair is installed: an installed flair may not import (flair 0.15
    under transformers 5), and evalsuite never tags. Returns True when the stand-in is (now) in place,
    False when a real flair was imported before.
    """
    existing = sys.modules.get("flair")
    if existing is not None:
        return bool(getattr(existing, STUB_MARKER, False))
    data = _module("flair.data", Sentence=Sentence, Tokenizer=Tokenizer)
    models = _module("flair.models", SequenceTagger=SequenceTagger)
    flair = _module("flair", data=data, models=models, device="cpu")
    flair.__path__ = []  # a package, so `from flair.data import ...` resolves through sys.modules
    sys.modules.update({"flair": flair, "flair.data": data, "flair.models": models})
    return True
