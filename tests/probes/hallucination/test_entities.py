"""Fabricated-entity items: determinism, names off the real-name list, matched controls, answer matching."""

from __future__ import annotations

import random
from collections import Counter
from importlib import resources

import pytest

from evalsuite.errors import ConfigError
from evalsuite.probes.hallucination import entities
from evalsuite.probes.hallucination.entities import (
    CATEGORIES,
    TEMPLATES,
    Category,
    EntityItem,
    answer_matches,
    controls,
    fabricated_name,
    generate,
    is_real,
    normalise,
    real_names,
)


def _runs(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every run of two or more words, the whole name included."""
    return [words[i : i + n] for n in range(2, len(words) + 1) for i in range(len(words) - n + 1)]


def test_same_seed_same_items_and_other_seed_other_items() -> None:
    assert generate(40, 7) == generate(40, 7)
    first, other = generate(40, 7), generate(40, 8)
    assert [i.entity for i in first if i.fabricated] != [i.entity for i in other if i.fabricated]


def test_items_interleave_fabricated_and_matched_controls() -> None:
    items = generate(100, 3)
    assert len(items) == 200
    assert len({item.id for item in items}) == 200
    by_id = {item.id: item for item in items}
    for fake, control in zip(items[::2], items[1::2], strict=True):
        assert fake.fabricated and not control.fabricated
        assert fake.pair == control.id and control.pair == fake.id
        assert (fake.category, fake.kind) == (control.category, control.kind)
        assert fake.answers == () and control.answers
        template = TEMPLATES[fake.category]
        assert fake.question == template[fake.kind].format(name=fake.entity)
        assert control.question == template[control.kind].format(name=control.entity)
        assert by_id[fake.pair] is control


def test_categories_round_robin_and_kinds_balanced() -> None:
    fakes = [item for item in generate(100, 5) if item.fabricated]
    assert [item.category for item in fakes[:10]] == list(CATEGORIES) * 2
    assert Counter(item.category for item in fakes) == dict.fromkeys(CATEGORIES, 20)
    assert set(Counter((item.category, item.kind) for item in fakes).values()) == {10}


def test_controls_are_used_once_before_any_repeats() -> None:
    pool_sizes = Counter((c.category, c.kind) for c in controls())
    per_pair: dict[tuple[Category, str], list[str]] = {}
    for item in generate(100, 9):
        if not item.fabricated:
            per_pair.setdefault((item.category, item.kind), []).append(item.entity)
    for key, names in per_pair.items():
        assert len(set(names)) == min(len(names), pool_sizes[key])


def test_no_generated_name_is_on_the_real_list() -> None:
    real = real_names()
    names = [item.entity for seed in range(12) for item in generate(500, seed) if item.fabricated]
    assert len(names) == 6000
    for name in names:
        words = normalise(name)
        assert words not in real, name
        assert not any(run in real for run in _runs(words)), name
        assert not is_real(name)
    for seed in range(12):
        fakes = [normalise(item.entity) for item in generate(500, seed) if item.fabricated]
        assert len(set(fakes)) == len(fakes)


def test_is_real_checks_the_name_its_word_runs_and_its_coined_words() -> None:
    assert is_real("Albert Einstein")
    assert is_real("the Coca-Cola Company")
    assert is_real("Professor Albert Einstein Jr")  # a run of two words
    assert is_real("Kyoto Biotech Holdings", coined=("Kyoto",))
    assert not is_real("Kyoto Biotech Holdings")  # one real word alone is no collision
    assert not is_real("Calric Brackwell", coined=("Calric", "Brackwell"))


def test_a_colliding_name_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    names = iter([("Marie Curie", ("Marie", "Curie")), ("Tamora Fairwick", ("Tamora", "Fairwick"))])
    monkeypatch.setitem(entities.GENERATORS, "person", lambda rng: next(names))
    assert fabricated_name("person", random.Random(0)) == "Tamora Fairwick"


def test_a_taken_name_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    names = iter([("Tamora Fairwick", ("Tamora",)), ("Tamora Fairwick", ("Tamora",)), ("Elisa Oakridge", ())])
    monkeypatch.setitem(entities.GENERATORS, "person", lambda rng: next(names))
    taken: set[str] = set()
    rng = random.Random(0)
    assert [fabricated_name("person", rng, taken) for _ in range(2)] == ["Tamora Fairwick", "Elisa Oakridge"]


def test_count_is_checked() -> None:
    assert generate(0, 1) == []
    with pytest.raises(ConfigError, match="count"):
        generate(-1, 1)
    with pytest.raises(ConfigError, match="count"):
        generate(entities.MAX_COUNT + 1, 1)


def test_controls_are_well_formed() -> None:
    per_category = Counter(c.category for c in controls())
    assert all(per_category[category] >= 15 for category in CATEGORIES)
    for category in CATEGORIES:
        assert {c.kind for c in controls() if c.category == category} == set(TEMPLATES[category])
    for control in controls():
        question = TEMPLATES[control.category][control.kind].format(name=control.entity)
        assert question.endswith("?") and "{" not in question
        assert control.answers and all(normalise(alias) for alias in control.answers)
        assert len(set(control.answers)) == len(control.answers)
        for alias in control.answers:
            assert answer_matches(f"I believe the answer is {alias}.", control.answers), (control, alias)
            assert answer_matches(f"{alias.upper()}!", control.answers)
    assert len({(c.category, c.kind, normalise(c.entity)) for c in controls()}) == len(controls())


def test_year_answers_reject_near_misses() -> None:
    years = [c for c in controls() if c.kind in {"born", "year", "released"}]
    assert len(years) >= 40
    for control in years:
        (year,) = control.answers
        assert year.isdigit() and len(year) == 4
        assert answer_matches(f"He was born in {year}.", control.answers)
        for miss in (f"{year}0", str(int(year) + 1), year[:3], f"1{year}"):
            assert not answer_matches(f"It was {miss}.", control.answers), (control.entity, miss)


@pytest.mark.parametrize(
    ("entity", "wrong"),
    [
        ("Albert Einstein", "He was born in 18790."),
        ("Microsoft", "Steve Ballmer founded it."),
        ("Apple", "It was founded by Tim Cook."),
        ("Kyoto", "Kyoto is in China."),
        ("Chile", "Chile is in North America."),
        ("Attention Is All You Need", "It was written by Geoffrey Hinton."),
        ("iPhone", "Samsung makes it."),
        ("Big Mac", "Burger King makes the Big Mac."),
        ("Alexander Graham Bell", "He is best known for the telegraph."),
    ],
)
def test_controls_reject_a_wrong_answer(entity: str, wrong: str) -> None:
    control = next(c for c in controls() if c.entity == entity)
    assert not answer_matches(wrong, control.answers)


def test_answer_matching_normalises_case_punctuation_articles_and_accents() -> None:
    assert answer_matches("It was founded by BILL GATES, in 1975.", ["Bill Gates"])
    assert answer_matches("The answer: the United Kingdom!", ["United Kingdom"])
    assert answer_matches("It's made by McDonalds.", ["McDonald's"])
    assert answer_matches("It is in Türkiye.", ["Turkiye"])
    assert answer_matches("Aidan N Gomez", ["Aidan N. Gomez"])
    assert not answer_matches("Applesauce is made by a farm.", ["Apple"])
    assert not answer_matches("Gates Foundation", ["Bill Gates"])
    assert not answer_matches("anything", [])
    assert not answer_matches("anything", ["", "the", "..."])
    assert normalise("McDonald's, the U.S.") == ("mcdonalds", "u", "s")


def test_real_list_contains_every_control_and_is_compact() -> None:
    real = real_names()
    missing = [c.entity for c in controls() if normalise(c.entity) not in real]
    assert missing == []
    assert 1000 <= len(real) <= 5000
    text = (
        resources.files("evalsuite").joinpath("probes/hallucination/data/real_names.txt").read_text("utf-8")
    )
    entries = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert all(line == line.lower().strip() for line in entries)


def test_items_are_plain_values() -> None:
    item = generate(1, 0)[0]
    assert isinstance(item, EntityItem)
    with pytest.raises(AttributeError):
        item.entity = "x"  # type: ignore[misc]
