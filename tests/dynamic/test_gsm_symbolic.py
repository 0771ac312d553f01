"""GSM-Symbolic templates against the GSM8K test set: every template fits its row and reproduces its
answer, and fresh instances are valid, new and reproducible from their seed."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from evalsuite.dynamic import gsm_symbolic as gs
from evalsuite.errors import DataError

Row = dict[str, str]


@pytest.fixture(scope="module")
def gsm8k(data_dir: Path) -> Path:
    if not (data_dir / "gsm8k" / "test.jsonl").is_file():
        pytest.skip(f"no GSM8K test set under {data_dir}")
    return data_dir


@pytest.fixture(scope="module")
def rows(gsm8k: Path) -> list[Row]:
    lines = (gsm8k / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def templates(gsm8k: Path) -> list[gs.Template]:
    return gs.load(gsm8k)


def final_answer(row: Row) -> Fraction:
    """The row's answer as the data writes it, read here rather than by the module under test."""
    return Fraction(row["answer"].split("#### ")[-1].strip().replace(",", ""))


def test_at_least_fifty_templates_each_on_its_own_row(templates: list[gs.Template]) -> None:
    assert len(templates) >= 50
    assert len({t.row for t in templates}) == len(templates)


def test_every_program_gives_the_original_answer(templates: list[gs.Template], rows: list[Row]) -> None:
    for template in templates:
        got = gs.evaluate(template.program, gs.original(template))
        assert got == final_answer(rows[template.row]), template.row
        for constraint in template.constraints:
            assert gs.evaluate(constraint, gs.original(template)) is True, (template.row, constraint)


def test_every_slot_literal_is_found_and_the_template_rebuilds_its_question(
    templates: list[gs.Template], rows: list[Row]
) -> None:
    for template in templates:
        question = rows[template.row]["question"]
        assert template.question == question
        for slot in template.slots:
            assert slot.literal in question, (template.row, slot.name)
            assert len(gs.occurrences(question, slot.literal)) == slot.count, (template.row, slot.name)
        assert gs.render(template, {s.name: s.literal for s in template.slots}) == question
        assert "{" + template.holes[0] + "}" in template.text


def test_instances_are_new_valid_and_exact(templates: list[gs.Template], rows: list[Row]) -> None:
    for template in templates:
        originals = gs.original(template)
        original_answer = final_answer(rows[template.row])
        drawn = gs.instances(template, seed=0, count=8)
        assert len(drawn) == 8
        assert len({i.question for i in drawn}) == 8, template.row
        for instance in drawn:
            values = dict(instance.values)
            assert instance.row == template.row
            assert values != originals, template.row
            assert instance.question != template.question, template.row
            for constraint in template.constraints:
                assert gs.evaluate(constraint, values) is True, (template.row, constraint, values)
            assert instance.answer == gs.evaluate(template.program, values)
            assert instance.answer.denominator == 1, (template.row, values)
            if original_answer > 0:
                assert instance.answer > 0, (template.row, values)
            assert instance.answer_text == str(int(instance.answer))
            for slot in template.slots:
                if isinstance(slot.domain, gs.Names):
                    name = values[slot.name]
                    assert isinstance(name, str) and name in slot.domain.choices(), template.row
                    assert name in instance.question
                elif isinstance(slot.domain, gs.Range):
                    value = values[slot.name]
                    assert isinstance(value, Fraction)
                    assert slot.domain.low <= value <= slot.domain.high, (template.row, slot.name)


def test_instances_are_deterministic_per_seed_and_differ_across_seeds(
    templates: list[gs.Template],
) -> None:
    for template in templates:
        first = gs.instances(template, seed=7, count=4)
        assert gs.instances(template, seed=7, count=4) == first, template.row
        assert gs.instances(template, seed=8, count=4) != first, template.row
        # Asking for more instances extends the list: the first ones stay the same.
        assert gs.instances(template, seed=7, count=2) == first[:2], template.row


def test_values_are_written_as_the_question_writes_them(templates: list[gs.Template]) -> None:
    by_row = {t.row: t for t in templates}
    janet = gs.instances(by_row[0], seed=1, count=5)  # "She eats three for breakfast"
    for instance in janet:
        assert f"eats {gs.WORDS[int(instance.values['eaten'])]} for" in instance.question
    josh = gs.instances(by_row[2], seed=1, count=5)  # "$80,000"
    for instance in josh:
        assert f"${int(instance.values['cost']):,} " in instance.question
    mishka = gs.instances(by_row[26], seed=1, count=5)  # "$16.50"
    for instance in mishka:
        assert f"${gs.format_number(Fraction(instance.values['shorts']), 2)}." in instance.question
    assert gs.format_number(Fraction(3, 2)) == "1.5"
    assert gs.format_number(Fraction(88_000), commas=True) == "88,000"
    with pytest.raises(ValueError, match="decimal"):
        gs.format_number(Fraction(1, 3))


def test_a_broken_template_raises_an_error_naming_its_row(gsm8k: Path) -> None:
    absent = gs.Spec(0, (gs.num("eggs", "17", 10, 40),), "eggs")
    with pytest.raises(gs.TemplateError, match=r"row 0: slot 'eggs': the literal '17' does not occur"):
        gs.load(gsm8k, [absent])
    miscounted = gs.Spec(4, (gs.person("owner", "Wendi", "she"),), "20")
    with pytest.raises(gs.TemplateError, match=r"row 4: .*'Wendi' occurs 2 times .*expected 1"):
        gs.load(gsm8k, [miscounted])
    wrong = gs.Spec(1, (gs.num("blue", "2", 2, 20, 2),), "blue * 2")
    with pytest.raises(gs.TemplateError, match=r"row 1: the program gives 4 .*not the answer 3"):
        gs.load(gsm8k, [wrong])
    unknown = gs.Spec(1, (gs.num("blue", "2", 2, 20, 2),), "blue + blue / 2", ("white < 3",))
    with pytest.raises(gs.TemplateError, match=r"row 1: unknown name 'white'"):
        gs.load(gsm8k, [unknown])
    decimal = gs.Spec(1, (gs.num("blue", "2", "0.5", 20, "0.5"),), "blue + blue / 2")
    with pytest.raises(gs.TemplateError, match=r"row 1: slot 'blue': not every value .* written"):
        gs.load(gsm8k, [decimal])
    with pytest.raises(gs.TemplateError, match=r"row 99999: no such row"):
        gs.load(gsm8k, [gs.Spec(99_999, (), "1")])


def test_a_template_that_cannot_vary_raises_a_clear_error(gsm8k: Path) -> None:
    (fixed,) = gs.load(gsm8k, [gs.Spec(1, (gs.num("blue", "2", 2, 2),), "blue + blue / 2")])
    with pytest.raises(gs.TemplateError, match=r"row 1: only 0 of 1 valid distinct instances"):
        gs.instances(fixed, seed=0, count=1)


def test_a_missing_data_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="GSM8K test set not found"):
        gs.load(tmp_path)


def test_the_evaluator_runs_arithmetic_and_nothing_else() -> None:
    values: dict[str, gs.Value] = {"a": Fraction(7), "b": Fraction(2)}
    assert gs.evaluate("a / b", values) == Fraction(7, 2)
    assert gs.evaluate("floor(a / b) + ceil(a / b) + a % b + max(a, b) - abs(-b)", values) == 13
    assert gs.evaluate("half = a / b\nhalf * 2", values) == 7
    assert gs.evaluate("0 < b < a and whole(a / 7) and not whole(a / b)", values) is True
    assert gs.evaluate("a ** b if a != b else 0.25", values) == 49
    for hostile in ("__import__('os')", "a.real", "(lambda: 1)()", "[a, b]", "'text'", "open('x')"):
        with pytest.raises(ValueError):
            gs.evaluate(hostile, values)
