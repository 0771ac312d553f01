"""textattack transformations and constraints applied word by word under a seed; fixes for 0.3.11.

Import this module only after :func:`~evalsuite.probes.adversarial.textattack_env.load_textattack`
(it imports textattack at the top). The fixes:

* ``WordSwapHomoglyphSwap()`` reads ``shared/intentional_homoglyphs.txt``, which the 0.3.11 wheel
  does not ship; only its differential-evolution search uses that table, so we build without it.
* ``WordSwapContract`` pairs list positions with word indices, so it finds nothing once any word
  is excluded (a stop word, an already modified word); both contraction swaps were case-sensitive.
* ``StopwordModification`` compares case-sensitively ("The" is modifiable) and skips deletions.
* ``WordSwapWordNet`` returns synonyms in set order (varies with PYTHONHASHSEED) and lowercase.
* ``Augmenter`` re-creates every candidate of every word for each of the k words it changes
  (O(k * n^2) texts: seconds for one paragraph), so :func:`perturb_words` walks the words once in
  a seeded order instead. textattack draws from the global ``random`` and ``numpy.random``; we
  seed both and restore them (:func:`seeded_global_rngs`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textattack.constraints.overlap import LevenshteinEditDistance
from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
from textattack.shared import AttackedText
from textattack.shared.data import EXTENSION_MAP
from textattack.transformations import (
    CompositeTransformation,
    WordDeletion,
    WordSwapChangeNumber,
    WordSwapContract,
    WordSwapExtend,
    WordSwapHomoglyphSwap,
    WordSwapInvisibleCharacters,
    WordSwapNeighboringCharacterSwap,
    WordSwapQWERTY,
    WordSwapRandomCharacterDeletion,
    WordSwapRandomCharacterInsertion,
    WordSwapWordNet,
)

from evalsuite.probes.adversarial.textattack_env import STOPWORDS, no_downloads


def _like(original: str, new: str) -> str:
    """``new`` capitalised when ``original`` starts with a capital."""
    return new[:1].upper() + new[1:] if original[:1].isupper() else new


class FileFreeHomoglyphSwap(WordSwapHomoglyphSwap):  # type: ignore[misc]
    """Each candidate replaces one character by a look-alike (Boucher et al. 2022, "Bad Characters").

    Uses textattack's built-in ``homos`` map; the Unicode intentional-homoglyph file is optional.
    """

    def __init__(self) -> None:
        try:
            super().__init__(random_one=False)
        except FileNotFoundError:  # homos and random_one are set before the file is read
            if not getattr(self, "homos", None):
                raise
            self.homos_intentional: dict[str, list[str]] = {}


class Contract(WordSwapContract):  # type: ignore[misc]
    """Contract adjacent modifiable words ("do not" -> "don't"), any case."""

    def _get_transformations(self, current_text: Any, indices_to_modify: set[int]) -> list[Any]:
        words, found = current_text.words, []
        for i in sorted(indices_to_modify):
            if i + 1 not in indices_to_modify:
                continue
            key = f"{words[i]} {words[i + 1]}"
            short = self.reverse_contraction_map.get(key) or self.reverse_contraction_map.get(key.lower())
            if short:
                new = current_text.replace_word_at_index(i, _like(words[i], short))
                found.append(new.delete_word_at_index(i + 1))
        return found


class Extend(WordSwapExtend):  # type: ignore[misc]
    """Expand a contraction ("Don't" -> "Do not"), any case."""

    def _get_transformations(self, current_text: Any, indices_to_modify: set[int]) -> list[Any]:
        words, found = current_text.words, []
        for i in sorted(indices_to_modify):
            long = EXTENSION_MAP.get(words[i]) or EXTENSION_MAP.get(words[i].lower())
            if long:
                found.append(current_text.replace_word_at_index(i, _like(words[i], long)))
        return found


class Stopwords(StopwordModification):  # type: ignore[misc]
    """Never modify (or delete) a stop word, whatever its case."""

    def __init__(self) -> None:
        super().__init__(stopwords=STOPWORDS)

    def _get_modifiable_indices(self, current_text: Any) -> set[int]:
        return {i for i, word in enumerate(current_text.words) if word.lower() not in self.stopwords}

    def check_compatibility(self, transformation: Any) -> bool:
        return True


class WordNetSynonyms(WordSwapWordNet):  # type: ignore[misc]
    """WordNet synonyms in a fixed order, capitalised like the word they replace."""

    def __init__(self) -> None:
        with no_downloads():  # WordSwapWordNet.__init__ calls nltk.download("omw-1.4")
            super().__init__(language="eng")

    def _get_replacement_words(self, word: str, random: bool = False) -> list[str]:
        return sorted({_like(word, w) for w in super()._get_replacement_words(word)} - {word})


def words_to_change(text: str, rate: float) -> int:
    """How many words a perturbation changes at most: ``max(1, int(rate * words))``."""
    return max(1, int(rate * len(AttackedText(text).words)))


def perturb_words(
    text: str,
    transformation: Any,
    rate: float,
    *,
    protect_stopwords: bool,
    max_char_edits: int = 0,
    pairs: bool = False,
) -> str:
    """Change up to ``words_to_change(text, rate)`` words of ``text``, each at most once.

    Words are visited in a seeded random order; each gets the candidates ``transformation`` makes
    for it alone (for it and its right neighbour with ``pairs``, as contractions need) under the
    constraints, and one is drawn. ``max_char_edits`` > 0 bounds the Levenshtein distance to
    ``text`` by that many edits per changed word. Call inside :func:`seeded_global_rngs`.
    Returns ``text`` when nothing can be changed.
    """
    if not text.strip():
        return text
    original = AttackedText(text)
    budget = max(1, int(rate * original.num_words))  # as words_to_change(text, rate)
    pre: list[Any] = [RepeatModification(), *([Stopwords()] if protect_stopwords else [])]
    order = list(range(original.num_words))
    random.shuffle(order)
    current, changed = original, 0
    for i in order:
        at = int(current.attack_attrs["original_index_map"][i])  # where word i is now; -1: deleted
        if changed == budget:
            break
        if at < 0:
            continue
        candidates = transformation(current, pre, indices_to_modify={at, at + 1} if pairs else {at})
        if candidates and max_char_edits:
            bound = LevenshteinEditDistance(max_char_edits * (changed + 1))
            candidates = bound.call_many(candidates, original)
        if candidates:
            current = random.choice(sorted(candidates, key=lambda t: t.text))
            changed += 1
    result: str = current.text
    return result


@dataclass(frozen=True)
class WordPerturbation:
    """A textattack transformation with how :func:`perturb_words` applies it."""

    transformation: Any
    protect_stopwords: bool = True
    max_char_edits: int = 0  # per changed word; 0: no character bound
    pairs: bool = False

    def __call__(self, text: str, rate: float) -> str:
        """Perturb ``text``; call inside :func:`seeded_global_rngs`."""
        return perturb_words(
            text,
            self.transformation,
            rate,
            protect_stopwords=self.protect_stopwords,
            max_char_edits=self.max_char_edits,
            pairs=self.pairs,
        )


# Character edits: DeepWordBug (Gao et al. 2018) and Belinkov & Bisk 2018 ("Synthetic and Natural Noise
# Both Break Neural Machine Translation", whose "key" noise is the QWERTY typo); homoglyph and invisible:
# Boucher et al. 2022, "Bad Characters: Imperceptible NLP Attacks" (zero-width space/non-joiner/joiner
# inside a word). contraction and number come from textattack's CheckList recipe (Ribeiro et al. 2020,
# "Beyond Accuracy: Behavioral Testing of NLP Models with CheckList"); contractions are made of stop words
# ("do not" -> "don't"), so they are not protected there. synonym: the WordNet swap of PWWS (Ren et al.
# 2019), without its saliency search.
WORD_PERTURBATIONS: dict[str, Callable[[], WordPerturbation]] = {
    "char_swap": lambda: WordPerturbation(WordSwapNeighboringCharacterSwap(), max_char_edits=2),
    "typo": lambda: WordPerturbation(WordSwapQWERTY(), max_char_edits=1),
    "char_delete": lambda: WordPerturbation(WordSwapRandomCharacterDeletion(), max_char_edits=1),
    "char_insert": lambda: WordPerturbation(WordSwapRandomCharacterInsertion(), max_char_edits=1),
    "homoglyph": lambda: WordPerturbation(FileFreeHomoglyphSwap(), max_char_edits=1),
    "invisible": lambda: WordPerturbation(WordSwapInvisibleCharacters(random_one=False), max_char_edits=1),
    "contraction": lambda: WordPerturbation(
        CompositeTransformation([Contract(), Extend()]), protect_stopwords=False, pairs=True
    ),
    "number": lambda: WordPerturbation(WordSwapChangeNumber()),
    "word_delete": lambda: WordPerturbation(WordDeletion()),
    "synonym": lambda: WordPerturbation(WordNetSynonyms()),
}
"""The textattack transformation of each word-level perturbation kind, with its constraints."""


def word_perturbation(kind: str) -> WordPerturbation:
    """The textattack transformation of a perturbation kind and its constraints."""
    if kind not in WORD_PERTURBATIONS:
        raise ValueError(f"{kind!r} is not a textattack perturbation")
    return WORD_PERTURBATIONS[kind]()
