"""Every perturbation kind: seeded, really changes the text, and keeps to its constraints."""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from evalsuite.errors import ConfigError
from evalsuite.probes.adversarial import distractors
from evalsuite.probes.adversarial.perturbers import PERTURBATIONS, SEVERITY, Perturber, build_perturber
from evalsuite.probes.adversarial.textattack_env import STOPWORDS, WORDNET_SOURCE

Make = Callable[..., Perturber]
HAS_WORDNET = (WORDNET_SOURCE / "data.noun").is_file()
TEXT = (
    "The quick brown fox jumps over the lazy dog near 12 old barns. It doesn't know what I'm doing, "
    "but she is not happy! Do not forget the 3 keys and the 25 silver coins in the kitchen drawer."
)
CHARACTER = ("char_swap", "typo", "char_delete", "char_insert", "homoglyph", "invisible")
WORD = ("number", "word_delete", "synonym")
ZERO_WIDTH = "\u200b\u200c\u200d\u2060"


def kinds() -> list[str]:
    return [k for k in PERTURBATIONS if HAS_WORDNET or k != "synonym"]


def words(text: str) -> list[str]:
    from textattack.shared.utils import words_from_text

    return list(words_from_text(text))


def budget(text: str, severity: str = "medium") -> int:
    return max(1, int(SEVERITY[severity] * len(words(text))))


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def is_stopword(token: str) -> bool:
    return token.strip(".,!?;:\"'").lower() in STOPWORDS


@pytest.mark.parametrize("kind", kinds())
def test_seeded_and_really_changes(kind: str, perturber: Make) -> None:
    perturb = perturber(kind, "low")  # one word: the seed picks which
    outputs = [perturb(TEXT, seed, "Paris") for seed in range(6)]
    assert outputs == [perturb(TEXT, seed, "Paris") for seed in range(6)]
    assert all(out != TEXT for out in outputs)
    assert len(set(outputs)) >= 2


@pytest.mark.parametrize("kind", kinds())
def test_global_random_states_are_untouched(kind: str, perturber: Make) -> None:
    perturb = perturber(kind)
    random.seed(99)
    np.random.seed(99)
    perturb(TEXT, 3, "Paris")
    after = (random.random(), float(np.random.random()))
    random.seed(99)
    np.random.seed(99)
    assert after == (random.random(), float(np.random.random()))


@pytest.mark.parametrize("severity", list(SEVERITY))
@pytest.mark.parametrize("kind", ["char_swap", "typo", "char_delete", "char_insert"])
def test_character_edits_stay_inside_few_content_words(kind: str, severity: str, perturber: Make) -> None:
    limit = 2 if kind == "char_swap" else 1
    for seed in range(4):
        before, after = TEXT.split(), perturber(kind, severity)(TEXT, seed).split()
        assert len(after) == len(before)
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert 1 <= len(changed) <= budget(TEXT, severity)
        for a, b in changed:
            assert not is_stopword(a)
            assert 1 <= edit_distance(a, b) <= limit


def test_homoglyphs_swap_code_points_not_looks(perturber: Make) -> None:
    from evalsuite.probes.adversarial._textattack_glue import FileFreeHomoglyphSwap

    homos = FileFreeHomoglyphSwap().homos
    for seed in range(4):
        out = perturber("homoglyph")(TEXT, seed)
        assert len(out) == len(TEXT)
        swaps = [(a, b) for a, b in zip(TEXT, out, strict=True) if a != b]
        assert 1 <= len(swaps) <= budget(TEXT)
        assert all(homos[a] == b for a, b in swaps)
        assert not any(is_stopword(t) for t, u in zip(TEXT.split(), out.split(), strict=True) if t != u)


def test_invisible_characters_only_add_zero_width_code_points(perturber: Make) -> None:
    for seed in range(4):
        out = perturber("invisible")(TEXT, seed)
        assert out.translate({ord(c): None for c in ZERO_WIDTH}) == TEXT
        added = [c for c in out if c in ZERO_WIDTH]
        assert 1 <= len(added) <= budget(TEXT)
        assert not any(token[0] in ZERO_WIDTH for token in out.split())


def test_word_deletion_drops_few_content_words(perturber: Make) -> None:
    for seed in range(4):
        out = perturber("word_delete")(TEXT, seed)
        ops = difflib.SequenceMatcher(a=words(TEXT), b=words(out)).get_opcodes()
        deleted = [w for tag, i1, i2, _, _ in ops if tag != "equal" for w in words(TEXT)[i1:i2]]
        assert {tag for tag, *_ in ops} <= {"equal", "delete"}
        assert 1 <= len(deleted) <= budget(TEXT)
        assert not any(is_stopword(w) for w in deleted)


def test_numbers_change_and_nothing_else(perturber: Make) -> None:
    for seed in range(4):
        before, after = words(TEXT), words(perturber("number")(TEXT, seed))
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert 1 <= len(changed) <= budget(TEXT)
        assert all(a.isdigit() and b.lstrip("-").isdigit() for a, b in changed)


def test_a_text_without_numbers_is_left_alone(perturber: Make) -> None:
    assert perturber("number")("No digits here at all.", 0) == "No digits here at all."


@pytest.mark.skipif(not HAS_WORDNET, reason="WordNet not installed (apt-get install wordnet-base)")
def test_synonyms_come_from_wordnet(perturber: Make) -> None:
    from nltk.corpus import wordnet

    for seed in range(4):
        before, after = words(TEXT), words(perturber("synonym")(TEXT, seed))
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert 1 <= len(changed) <= budget(TEXT)
        for a, b in changed:
            assert not is_stopword(a)
            assert b.lower() in {name.lower() for s in wordnet.synsets(a) for name in s.lemma_names()}


def _expanded(text: str) -> list[str]:
    from textattack.shared.data import EXTENSION_MAP

    return " ".join(EXTENSION_MAP.get(w.lower(), w.lower()) for w in words(text)).split()


def test_contractions_keep_the_meaning(perturber: Make) -> None:
    for seed in range(4):
        out = perturber("contraction")(TEXT, seed)
        assert _expanded(out) == _expanded(TEXT)
        edits = difflib.SequenceMatcher(a=words(TEXT), b=words(out)).get_opcodes()
        assert 1 <= sum(tag != "equal" for tag, *_ in edits) <= budget(TEXT)
    short = {"Don't go. It is late.", "Do not go. It's late."}
    assert perturber("contraction")("Do not go. It is late.", 0) in short


def test_helm_lowercases_contracts_misspells_and_spaces(perturber: Make) -> None:
    for seed in range(4):
        out = perturber("helm")(TEXT, seed)
        assert out == out.lower() and re.fullmatch(r"[^\t\n]*", out)
        assert "  " in out
        assert len(words(out)) >= len(words(TEXT)) - budget(TEXT)  # contractions merge at most a few


def test_tautology_is_five_times_true(perturber: Make) -> None:
    for seed in range(4):
        out = perturber("tautology")(TEXT, seed)
        assert out.count(" and true is true") == 5
        assert out.replace(" and true is true" * 5, "") == TEXT


@pytest.mark.parametrize(("severity", "count"), [("low", 1), ("medium", 2), ("high", 3)])
def test_irrelevant_sentences_by_severity(severity: str, count: int, perturber: Make) -> None:
    out = perturber("irrelevant", severity)(TEXT, 5)
    added = [s for s in distractors.IRRELEVANT if s in out]
    assert len(added) == count
    for sentence in added:
        out = out.replace(sentence, "")
    assert " ".join(out.split()) == TEXT


@pytest.mark.parametrize("kind", ["misleading", "injection"])
def test_suggestions_name_the_wrong_answer_at_a_boundary(kind: str, perturber: Make) -> None:
    for seed in range(6):
        out = perturber(kind)(TEXT, seed, "Paris")
        added = " ".join(out.split()).replace(TEXT, "").strip()
        assert "Paris" in added and added.endswith((".", '".'))
        plain = perturber(kind)(TEXT, seed)
        assert "Paris" not in plain and plain != TEXT


def test_sentence_boundaries_skip_option_labels() -> None:
    text = "Which is red? A. apple B. sky. Pick one."
    ends = distractors.sentence_ends(text)
    assert [text[:i][-4:] for i in ends] == ["red?", "sky.", "one."]


def test_unknown_kind_and_severity_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'typo'"):
        build_perturber("typoo", "low", tmp_path)
    with pytest.raises(ConfigError, match=r"unknown severity 'extreme'"):
        build_perturber("typo", "extreme", tmp_path)


def test_every_perturbation_kind_has_one_perturber(perturber: Make) -> None:
    """The kinds are declared once (evalsuite/probes/kinds/perturbation.py); each has exactly one builder:
    a textattack transformation, a distractor, or HELM's mix."""
    perturber("typo")  # textattack is loaded (offline), so its glue imports
    from evalsuite.probes.adversarial._textattack_glue import WORD_PERTURBATIONS
    from evalsuite.probes.adversarial.perturbers import DISTRACTORS

    builders = [*WORD_PERTURBATIONS, *DISTRACTORS, "helm"]
    assert sorted(builders) == sorted(PERTURBATIONS) and len(set(builders)) == len(builders) == 15
