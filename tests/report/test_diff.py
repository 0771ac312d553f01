"""Character diffs of a probe's original and perturbed text: every change visible, even invisible ones."""

from __future__ import annotations

import random

import pytest

from evalsuite.report.diff import CONTEXT, MAX_CHARS, char_diff


def sides(diff: list[list[str]]) -> tuple[str, str]:
    original = "".join(text for kind, text in diff if kind != "insert")
    perturbed = "".join(text for kind, text in diff if kind != "delete")
    return original, perturbed


def test_a_homoglyph_is_a_deleted_and_an_inserted_character() -> None:
    assert char_diff("What is the capital?", "What is the c\u0430pital?") == [
        ["equal", "What is the c"],
        ["delete", "a"],
        ["insert", "\u0430"],  # Cyrillic a: looks the same, highlighted as a change
        ["equal", "pital?"],
    ]


@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_a_zero_width_insertion_is_shown_as_a_marker(char: str) -> None:
    diff = char_diff("plants absorb", f"pla{char}nts absorb")
    assert diff == [["equal", "pla"], ["insert", f"⟨U+{ord(char):04X}⟩"], ["equal", "nts absorb"]]


def test_a_deletion() -> None:
    assert char_diff("robustness", "robstness") == [["equal", "rob"], ["delete", "u"], ["equal", "stness"]]


def test_identical_texts_are_one_equal_segment() -> None:
    assert char_diff("same text", "same text") == [["equal", "same text"]]
    assert char_diff("", "") == []
    assert char_diff("", "new") == [["insert", "new"]]


def test_word_changes_and_swaps_are_by_character() -> None:
    diff = char_diff("The cat sat on the mat.", "The cta sat on teh mat!")
    assert sides(diff) == ("The cat sat on the mat.", "The cta sat on teh mat!")
    assert all(len(text) == 1 for kind, text in diff if kind != "equal")


def test_controls_and_direction_overrides_are_named_not_kept() -> None:
    diff = char_diff("a \u202eevil\u202c <script>x</script>", "a \u202eevil\u202c <script>y</script>")
    original, perturbed = sides(diff)
    assert "\u202e" not in original + perturbed and "[U+202E]evil[U+202C]" in original
    assert ["delete", "x"] in diff and ["insert", "y"] in diff  # markup stays text, diffed like any other


def test_random_edits_reconstruct_both_sides() -> None:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "carbon", "dioxide", "plants"]
    for _ in range(50):
        original = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        chars = list(original)
        for _ in range(rng.randint(0, 6)):
            at = rng.randrange(len(chars) + 1)
            chars[at:at] = rng.choice("xyz.,")
            if chars and rng.random() < 0.5:
                del chars[rng.randrange(len(chars))]
        perturbed = "".join(chars)
        assert sides(char_diff(original, perturbed)) == (original, perturbed)


def test_long_unchanged_stretches_are_shortened_and_huge_texts_are_cut_before_diffing() -> None:
    passage = "word " * 2000
    diff = char_diff(passage + "end.", passage + "ends.")
    assert diff[0][0] == "equal" and "unchanged characters" in diff[0][1]
    assert len(diff[0][1]) < CONTEXT + 60 and diff[0][1].endswith("word word end")
    huge = char_diff("A" * 1_000_000, "B" * 1_000_000)
    # bounded work, whatever the machine's speed: only the first MAX_CHARS of each side are compared
    assert [kind for kind, _ in huge] == ["delete", "insert", "equal"]
    assert [len(text) for _, text in huge[:2]] == [MAX_CHARS, MAX_CHARS]
    assert huge[2][1].endswith(f"[{1_000_000 - MAX_CHARS:,} more characters not shown]")
    assert sum(len(text) for _, text in huge) < 50_000
