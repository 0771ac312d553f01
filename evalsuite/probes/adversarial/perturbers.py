"""Text perturbations for robustness probes: one name per kind, three severities, seeded.

A :class:`Perturber` maps ``(text, seed)`` to a perturbed text, the same one for the same
arguments in any process. Kinds, by what they change (sources in :mod:`._textattack_glue` and
:mod:`.distractors`):

* characters, one edit in each changed word (textattack word swaps): ``char_swap`` (two neighbouring
  characters, WordSwapNeighboringCharacterSwap), ``typo`` (a neighbouring QWERTY key,
  WordSwapQWERTY), ``char_delete`` (WordSwapRandomCharacterDeletion), ``char_insert``
  (WordSwapRandomCharacterInsertion), ``homoglyph`` (a look-alike code point,
  WordSwapHomoglyphSwap) and ``invisible`` (a zero-width character, WordSwapInvisibleCharacters);
* words: ``contraction`` (contract or expand, WordSwapContract/WordSwapExtend), ``number``
  (WordSwapChangeNumber), ``word_delete`` (WordDeletion), ``synonym`` (WordNet, WordSwapWordNet);
* ``helm``: HELM's robustness mix (Liang et al. 2022): lowercase, contractions, misspellings and
  1-3 spaces for every space, in that order under one seed. HELM's misspelling dictionary is not
  shipped, so its misspellings are QWERTY typos here;
* added sentences: ``tautology``, ``irrelevant``, ``misleading`` and ``injection``.

Severity is the share of words a word-level kind may change (``max(1, int(share * words))``,
each word at most once, stop words never except by ``contraction``) and the number of sentences
``irrelevant`` adds (1, 2 or 3). A kind with nothing to change (``number`` in a text without
numbers) returns the text unchanged. textattack draws from the global ``random`` and
``numpy.random`` generators: a call seeds both and restores them before returning, so calls must
not run concurrently in threads.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from evalsuite.errors import ConfigError, did_you_mean
from evalsuite.probes.adversarial import distractors
from evalsuite.probes.adversarial.textattack_env import load_textattack, require_wordnet, seeded_global_rngs
from evalsuite.probes.kinds.perturbation import PERTURBATIONS, PerturbationKind, Severity

SEVERITY: Mapping[str, float] = MappingProxyType({"low": 0.05, "medium": 0.15, "high": 0.3})
DISTRACTOR_SENTENCES: Mapping[str, int] = MappingProxyType({"low": 1, "medium": 2, "high": 3})

Apply = Callable[[str, int, str | None], str]


@dataclass(frozen=True)
class Perturber:
    """One perturbation kind at one severity; built by :func:`build_perturber`."""

    kind: PerturbationKind
    severity: Severity
    _apply: Apply = field(repr=False, compare=False)

    def __call__(self, text: str, seed: int, wrong_answer: str | None = None) -> str:
        """The perturbed ``text``. ``wrong_answer`` is named by ``misleading`` and ``injection``."""
        return self._apply(text, seed, wrong_answer)


def build_perturber(kind: str, severity: str, cache_dir: Path) -> Perturber:
    """A :class:`Perturber`; textattack is imported (offline) and its objects built here, once.

    ``cache_dir`` holds the NLTK data folder (see :func:`.textattack_env.nltk_data_dir`).
    """
    if kind not in PERTURBATIONS:
        known = ", ".join(PERTURBATIONS)
        raise ConfigError(f"unknown perturbation {kind!r}{did_you_mean(kind, PERTURBATIONS)}; known: {known}")
    if severity not in SEVERITY:
        raise ConfigError(f"unknown severity {severity!r}; known: {', '.join(SEVERITY)}")
    if kind in DISTRACTORS:
        apply = _distractor(DISTRACTORS[kind], DISTRACTOR_SENTENCES[severity])
    else:
        if kind == "synonym":
            require_wordnet(cache_dir)
        load_textattack(cache_dir)
        from evalsuite.probes.adversarial import _textattack_glue as glue

        apply = _helm(glue, SEVERITY[severity]) if kind == "helm" else _swaps(glue, kind, SEVERITY[severity])
    return Perturber(cast(PerturbationKind, kind), cast(Severity, severity), apply)


def _swaps(glue: Any, kind: str, rate: float) -> Apply:
    swap = glue.word_perturbation(kind)

    def apply(text: str, seed: int, wrong_answer: str | None = None) -> str:
        with seeded_global_rngs(seed):
            result: str = swap(text, rate)
        return result

    return apply


_SPACES = re.compile(r" +")


def _helm(glue: Any, rate: float) -> Apply:
    """HELM's robustness perturbations, in HELM's order (lowercase, contraction, misspelling at
    ``rate``, spaces as in its SpacePerturbation(max_spaces=3)), under one seed."""
    contraction, typo = glue.word_perturbation("contraction"), glue.word_perturbation("typo")

    def apply(text: str, seed: int, wrong_answer: str | None = None) -> str:
        with seeded_global_rngs(seed):
            text = typo(contraction(text.lower(), rate), rate)
        rng = random.Random(seed)
        return _SPACES.sub(lambda _: " " * rng.randint(1, 3), text)

    return apply


# Sentences added to or placed inside the context: (text, seed, sentences, wrong answer) -> text.
Distractor = Callable[[str, int, int, str | None], str]
DISTRACTORS: Mapping[str, Distractor] = MappingProxyType(
    {
        "tautology": lambda text, seed, sentences, wrong: distractors.tautology(text, seed),
        "irrelevant": lambda text, seed, sentences, wrong: distractors.irrelevant(text, seed, sentences),
        "misleading": lambda text, seed, sentences, wrong: distractors.misleading(text, seed, wrong),
        "injection": lambda text, seed, sentences, wrong: distractors.injection(text, seed, wrong),
    }
)


def _distractor(add: Distractor, sentences: int) -> Apply:
    def apply(text: str, seed: int, wrong_answer: str | None = None) -> str:
        return add(text, seed, sentences, wrong_answer)

    return apply
