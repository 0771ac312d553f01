"""DyVal items checked by a reader written here: every statement is parsed back with this file's own
regular expressions and evaluated here (deduction by forward chaining over the parsed facts and rules),
so no expected value comes from the module under test."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from statistics import mean

import pytest

from evalsuite.dynamic import dyval
from evalsuite.dynamic.dyval import Family

SEEDS = (0, 1, 2024)
PER_SET = 30

# The module docstring's table: graph depth, operands of a combining node, and nodes, per level.
DEPTH = {1: 3, 2: 4, 3: 5, 4: 6}
WIDTH = {1: 2, 2: 2, 3: 3, 4: 3}
NODES = {1: 6, 2: 10, 3: 18, 4: 29}

N = r"[a-z]{3}"
AND_LIST = rf"{N}(?:(?:, | and ){N})*"
OR_LIST = rf"{N}(?:(?:, | or ){N})*"
ARITHMETIC = {
    "leaf": re.compile(rf"The value of ({N}) is (-?\d+)\."),
    "+": re.compile(rf"({N}) gets its value by adding together the values of ({AND_LIST})\."),
    "*": re.compile(rf"({N}) gets its value by multiplying together the values of ({AND_LIST})\."),
    "-": re.compile(rf"({N}) gets its value by subtracting the value of ({N}) from the value of ({N})\."),
    "-sum": re.compile(
        rf"({N}) gets its value by subtracting the sum of the values of ({AND_LIST})"
        rf" from the value of ({N})\."
    ),
    "^2": re.compile(rf"({N}) gets its value by squaring the value of ({N})\."),
}
BOOLEAN = {
    "leaf": re.compile(rf"The value of ({N}) is (True|False)\."),
    "NOT": re.compile(rf"The value of ({N}) equals \(NOT ({N})\)\."),
    "AND": re.compile(rf"The value of ({N}) equals \(({N}(?: AND {N})+)\)\."),
    "OR": re.compile(rf"The value of ({N}) equals \(({N}(?: OR {N})+)\)\."),
}
DEDUCTION = {
    "fact": re.compile(rf"({N}) is (True|False)\."),
    "all": re.compile(rf"If ({AND_LIST}) are True, then ({N}) is (True|False)\."),
    "any": re.compile(rf"If ({OR_LIST}) is True, then ({N}) is (True|False)\."),
    "if-false": re.compile(rf"If ({N}) is False, then ({N}) is (True|False)\."),
}
WHAT = re.compile(rf"What is the value of ({N})\?")
IS = re.compile(rf"Is ({N}) True, False, or unknown\?")


def names(listing: str) -> list[str]:
    return re.split(r", | and | or ", listing)


@dataclass
class Problem:
    """A question read back: each statement's defined node and operands, in the order stated."""

    root: str
    defined: list[str]  # the node each statement defines, in statement order
    operands: dict[str, list[str]]
    answer: str  # computed here


def read_arithmetic(question: str) -> Problem:
    """Evaluates the DAG as stated, checking that every value, not only the answer, is in 1..10,000."""
    *statements, ask = question.split("\n")
    rules: dict[str, tuple[str, list[str]]] = {}
    leaves: dict[str, int] = {}
    for line in statements:
        if m := ARITHMETIC["leaf"].fullmatch(line):
            leaves[m[1]] = int(m[2])
        elif m := ARITHMETIC["-"].fullmatch(line):
            rules[m[1]] = ("-", [m[3], m[2]])  # the minuend first
        elif m := ARITHMETIC["-sum"].fullmatch(line):
            rules[m[1]] = ("-", [m[3], *names(m[2])])  # the minuend first
        elif m := ARITHMETIC["^2"].fullmatch(line):
            rules[m[1]] = ("^2", [m[2]])
        elif m := ARITHMETIC["+"].fullmatch(line):
            rules[m[1]] = ("+", names(m[2]))
        elif m := ARITHMETIC["*"].fullmatch(line):
            rules[m[1]] = ("*", names(m[2]))
        else:
            pytest.fail(f"unreadable arithmetic statement: {line!r}")
    values: dict[str, int] = {}

    def value(node: str) -> int:
        if node not in values:
            if node in leaves:
                values[node] = leaves[node]
            else:
                op, args = rules[node]
                values[node] = combine(op, [value(a) for a in args])
            assert 1 <= abs(values[node]) <= 10_000, (node, values[node], question)
        return values[node]

    root = _match(WHAT, ask)
    operands = {node: args for node, (_, args) in rules.items()} | {leaf: [] for leaf in leaves}
    for node in operands:
        value(node)
    return Problem(root, _defined(statements), operands, str(value(root)))


def combine(op: str, xs: list[int]) -> int:
    if op == "+":
        return sum(xs)
    if op == "-":
        return xs[0] - sum(xs[1:])
    if op == "*":
        return math.prod(xs)
    return xs[0] ** 2


def read_boolean(question: str) -> Problem:
    *statements, ask = question.split("\n")
    rules: dict[str, tuple[str, list[str]]] = {}
    leaves: dict[str, bool] = {}
    for line in statements:
        if m := BOOLEAN["leaf"].fullmatch(line):
            leaves[m[1]] = m[2] == "True"
        elif m := BOOLEAN["NOT"].fullmatch(line):
            rules[m[1]] = ("NOT", [m[2]])
        elif m := BOOLEAN["AND"].fullmatch(line):
            rules[m[1]] = ("AND", m[2].split(" AND "))
        elif m := BOOLEAN["OR"].fullmatch(line):
            rules[m[1]] = ("OR", m[2].split(" OR "))
        else:
            pytest.fail(f"unreadable boolean statement: {line!r}")

    def value(node: str) -> bool:
        if node in leaves:
            return leaves[node]
        op, args = rules[node]
        xs = [value(a) for a in args]
        return not xs[0] if op == "NOT" else all(xs) if op == "AND" else any(xs)

    root = _match(WHAT, ask)
    operands = {node: args for node, (_, args) in rules.items()} | {leaf: [] for leaf in leaves}
    return Problem(root, _defined(statements), operands, str(value(root)))


def read_deduction(question: str) -> Problem:
    """Forward chaining: fire every rule whose premises are known to hold until nothing changes."""
    *statements, ask = question.split("\n")
    known: dict[str, bool] = {}
    # (premises, all of them needed?, the value each premise must have, conclusion, concluded value)
    rules: list[tuple[list[str], bool, bool, str, bool]] = []
    for line in statements:
        if m := DEDUCTION["fact"].fullmatch(line):
            known[m[1]] = m[2] == "True"
        elif m := DEDUCTION["all"].fullmatch(line):
            rules.append((names(m[1]), True, True, m[2], m[3] == "True"))
        elif m := DEDUCTION["any"].fullmatch(line):
            rules.append((names(m[1]), False, True, m[2], m[3] == "True"))
        elif m := DEDUCTION["if-false"].fullmatch(line):
            rules.append(([m[1]], True, False, m[2], m[3] == "True"))
        else:
            pytest.fail(f"unreadable deduction statement: {line!r}")
    changed = True
    while changed:
        changed = False
        for premises, need_all, wanted, conclusion, concluded in rules:
            holds = [known.get(p) is wanted for p in premises]
            if conclusion not in known and (all(holds) if need_all else any(holds)):
                known[conclusion] = concluded
                changed = True
    root = _match(IS, ask)
    operands = {rule[3]: rule[0] for rule in rules}
    operands |= {node: [] for node in known if node not in operands}
    answer = str(known[root]) if root in known else "Unknown"
    return Problem(root, _defined(statements), operands, answer)


def _match(pattern: re.Pattern[str], line: str) -> str:
    m = pattern.fullmatch(line)
    assert m, f"unreadable question: {line!r}"
    return m[1]


def _defined(statements: list[str]) -> list[str]:
    """The node each statement defines: the name before "gets"/"is"/"equals", or after "then"."""
    defined = []
    for line in statements:
        conclusion = re.search(rf"then ({N}) is", line)
        defined.append(conclusion[1] if conclusion else line.removeprefix("The value of ")[:3])
    return defined


READERS = {"arithmetic": read_arithmetic, "boolean": read_boolean, "deduction": read_deduction}


@cache
def items(family: Family, level: int, seed: int, n: int = PER_SET) -> tuple[dyval.Item, ...]:
    return tuple(dyval.generate(family, level, n, seed))


def depth(node: str, operands: dict[str, list[str]]) -> int:
    return 1 + max((depth(a, operands) for a in operands[node]), default=0)


@pytest.mark.parametrize("family", dyval.FAMILIES)
def test_every_answer_matches_an_independent_reading(family: Family) -> None:
    for level in dyval.LEVELS:
        for seed in SEEDS:
            for item in items(family, level, seed):
                problem = READERS[family](item.question)
                assert problem.answer == item.answer, item.question


@pytest.mark.parametrize("family", dyval.FAMILIES)
def test_graphs_have_the_documented_shape_and_every_statement_matters(family: Family) -> None:
    for level in dyval.LEVELS:
        for item in items(family, level, SEEDS[0]):
            problem = READERS[family](item.question)
            operands = problem.operands
            assert sorted(problem.defined) == sorted(set(problem.defined)), "a node defined twice"
            assert len(operands) == item.nodes == NODES[level]
            assert depth(problem.root, operands) == DEPTH[level]
            assert max(len(args) for args in operands.values()) == WIDTH[level]
            used = {a for args in operands.values() for a in args}
            assert used == set(operands) - {problem.root}, "a statement the answer does not depend on"
            assert (item.family, item.level) == (family, level)


@pytest.mark.parametrize("family", dyval.FAMILIES)
def test_every_kind_of_statement_occurs(family: Family) -> None:
    """Squares, NOTs and both rule conclusions are really drawn, not just understood by the reader."""
    patterns = {"arithmetic": ARITHMETIC, "boolean": BOOLEAN, "deduction": DEDUCTION}[family]
    lines = [
        line
        for level in dyval.LEVELS
        for item in items(family, level, 0)
        for line in item.question.split("\n")
    ]
    for kind, pattern in patterns.items():
        assert any(pattern.fullmatch(line) for line in lines), kind
    if family == "deduction":  # n-ary rules conclude either value; "If a is True, then b is False." too
        rules = [
            (m[1], m[3]) for k in ("all", "any") for line in lines if (m := DEDUCTION[k].fullmatch(line))
        ]
        assert {value for premises, value in rules if len(names(premises)) > 1} == {"True", "False"}
        assert any(len(names(premises)) == 1 and value == "False" for premises, value in rules)


@pytest.mark.parametrize("family", dyval.FAMILIES)
def test_statements_are_shuffled_not_topological(family: Family) -> None:
    for level in dyval.LEVELS:
        for item in items(family, level, SEEDS[1]):
            problem = READERS[family](item.question)
            position = {node: i for i, node in enumerate(problem.defined)}
            edges = [(position[p], position[a]) for p, args in problem.operands.items() for a in args]
            assert not all(p < a for p, a in edges) and not all(p > a for p, a in edges), item.question


@pytest.mark.parametrize("family", dyval.FAMILIES)
def test_the_same_seed_gives_the_same_items_and_another_seed_others(family: Family) -> None:
    for level in dyval.LEVELS:
        first = dyval.generate(family, level, 20, 5)
        assert dyval.generate(family, level, 20, 5) == first
        assert dyval.generate(family, level, 7, 5) == first[:7]  # n does not change the items drawn
        assert [item.index for item in first] == list(range(20))
        assert len({item.question for item in first}) == len({item.key() for item in first}) == 20
        other = {item.question for item in dyval.generate(family, level, 20, 6)}
        assert len(other & {item.question for item in first}) <= 2


def test_items_are_the_same_in_another_process() -> None:
    """Nothing depends on Python's per-process string hashing."""
    script = (
        "from evalsuite.dynamic import dyval\n"
        "for f in dyval.FAMILIES:\n"
        "    print(' '.join(i.key() for i in dyval.generate(f, 2, 5, 3)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    here = [" ".join(i.key() for i in dyval.generate(f, 2, 5, 3)) for f in dyval.FAMILIES]
    assert out.stdout.split("\n")[:3] == here


@pytest.mark.parametrize("family", dyval.FAMILIES)
def test_difficulty_rises_with_the_level(family: Family) -> None:
    means = [
        mean(item.nodes for item in items(family, level, seed)) for level in dyval.LEVELS for seed in (0,)
    ]
    assert means == sorted(set(means)), means  # strictly increasing
    for level, minimum in NODES.items():
        assert min(item.nodes for item in items(family, level, 0)) >= minimum


@pytest.mark.parametrize("level", dyval.LEVELS)
def test_deduction_answers_are_balanced(level: int) -> None:
    counts = Counter(read_deduction(item.question).answer for item in items("deduction", level, 0, 60))
    assert set(counts) == {"True", "False", "Unknown"}
    assert min(counts.values()) >= 12, counts  # at least 20% each


@pytest.mark.parametrize("level", dyval.LEVELS)
def test_boolean_answers_are_balanced(level: int) -> None:
    counts = Counter(read_boolean(item.question).answer for item in items("boolean", level, 0, 60))
    assert min(counts["True"], counts["False"]) >= 24, counts  # at least 40% each


@pytest.mark.parametrize(
    ("family", "response", "expected"),
    [
        ("arithmetic", "Let me think... Answer: 42", "42"),
        ("arithmetic", "The answer is -7.", "-7"),
        ("arithmetic", "1,234", "1234"),
        ("arithmetic", "So aab is 5.0", "5"),
        ("arithmetic", "nothing", None),
        ("arithmetic", "", None),
        ("arithmetic", "aab is 3 and aac is 12, so the total is 2,500.", "2500"),
        ("arithmetic", "Answer: 12\nCheck: 3 + 9 = 12, times 4 is 48", "12"),
        ("arithmetic", "answer: 7 (from 3 + 4)", "7"),
        ("arithmetic", "Answer: 12. Wait, no.\nAnswer: 15", "15"),
        ("arithmetic", "**Answer:** \u22123", "-3"),
        ("arithmetic", "I get 8.\nAnswer: not sure", "8"),
        ("arithmetic", "The value is 2.5", "2.5"),
        ("boolean", "answer: TRUE", "True"),
        ("boolean", "It is false.", "False"),
        ("boolean", "True AND False is False, so Answer: True", "True"),
        ("boolean", "yes", None),
        ("boolean", "No, it is untrue.", None),
        ("deduction", "It is unknown.", "Unknown"),
        ("deduction", "aab is True, so aac is True. Answer: Unknown", "Unknown"),
        ("deduction", "We cannot tell if it is true or false; it stays UNKNOWN", "Unknown"),
        ("deduction", "Answer: false", "False"),
        ("deduction", "no", None),
    ],
)
def test_extract_reads_the_answer(family: Family, response: str, expected: str | None) -> None:
    assert dyval.extract(family, response) == expected


def test_correct_compares_the_extracted_answer() -> None:
    number = dyval.Item("arithmetic", 1, 0, "The value of aab is 3.\nWhat is the value of aab?", "3", 1)
    assert dyval.correct(number, "aab is given. Answer: 3")
    assert not dyval.correct(number, "Answer: 4")
    assert not dyval.correct(number, "I cannot say.")
    unknown = dyval.Item("deduction", 1, 0, "aab is True.\nIs aac True, False, or unknown?", "Unknown", 1)
    assert dyval.correct(unknown, "Nothing says so: unknown")
    assert not dyval.correct(unknown, "Answer: False")


def test_keys_are_short_and_tell_items_apart() -> None:
    a = dyval.Item("boolean", 1, 0, "The value of aab is True.\nWhat is the value of aab?", "True", 1)
    assert a.key() == dyval.Item("boolean", 3, 9, a.question, "True", 1).key()
    assert a.key() != dyval.Item("deduction", 1, 0, a.question, "True", 1).key()
    assert re.fullmatch(r"[0-9a-f]{8,32}", a.key())


def test_every_family_has_an_instruction_asking_for_an_answer_line() -> None:
    assert set(dyval.INSTRUCTION) == set(dyval.FAMILIES)
    assert all("Answer:" in line for line in dyval.INSTRUCTION.values())


@pytest.mark.parametrize(
    ("family", "level", "n", "message"),
    [
        ("algebra", 1, 5, r"unknown DyVal family 'algebra'"),
        ("arithmetc", 1, 5, r"did you mean 'arithmetic'"),
        ("boolean", 0, 5, r"level must be one of 1, 2, 3, 4, not 0"),
        ("boolean", 5, 5, r"level must be one of 1, 2, 3, 4, not 5"),
        ("deduction", 2, 0, r"n must be at least 1, not 0"),
    ],
)
def test_bad_input_is_named(family: str, level: int, n: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dyval.generate(family, level, n, 0)  # type: ignore[arg-type]
