"""DyVal: reasoning problems read off random directed acyclic graphs, with answers known by construction.

Reference: K. Zhu, J. Chen, J. Wang, N. Z. Gong, D. Yang, X. Xie, "DyVal: Dynamic Evaluation of Large
Language Models for Reasoning Tasks", ICLR 2024 (code: microsoft/promptbench, `promptbench/dyval`). A
fixed benchmark can leak into training data and cannot be made harder; problems drawn from a seed cannot
have been seen, their answers are computed rather than annotated, and their difficulty is a dial: the
depth and width of the graph they are read from.

Each problem is one DAG described in natural language, one statement per node, in shuffled order (never
a topological one, so the statements cannot just be read top to bottom), then a question about the
root. Nodes get random three-letter names ("aab", "qzx"), so neither names nor order give the structure
away. Three families:

- `arithmetic`: leaves are integers 1..10; an inner node adds, subtracts or multiplies its children, or
  squares its only child. Every value is an exact integer with 1 <= |v| <= 10,000: an operation that
  would leave that range is not chosen, and a graph where none fits is drawn again. Zero is excluded so
  that no "times zero" shortcut makes the rest of the graph irrelevant.
- `boolean`: leaves are True or False; an inner node is the AND or OR of its children, or the NOT of
  its only child. Half the answers are True, half False.
- `deduction`: leaves are stated facts ("aab is True."); every inner node is the conclusion of one rule
  over its children: "If aab and aac are True, then aad is True/False.", "If aab or aac is True, then
  aad is True/False.", "If aab is True, then aad is False." or "If aab is False, then aad is True." The
  answer is what forward chaining from the facts derives for the root: True, False, or Unknown when no
  rule fires for it (nothing is assumed false for want of proof). A third of the answers are each.

Graphs are layered: the root alone on the first layer, leaves exactly on the last, and every other node
combines `width` distinct nodes of deeper layers (or one, for a unary operation: one inner node in five
where the layer below stays covered). Each node's first operand is on the next layer, so the depth is
exact; every node below the root is some node's operand, so every statement matters; operands taken from
further down give the DAG its shared nodes. Per level (DyVal's D1-D4):

| level | depth | width | nodes per layer, root first | nodes |
| ----- | ----- | ----- | --------------------------- | ----- |
| 1     | 3     | 2     | 1, 2, 3                     | 6     |
| 2     | 4     | 2     | 1, 2, 3, 4                  | 10    |
| 3     | 5     | 3     | 1, 3, 4, 5, 5               | 18    |
| 4     | 6     | 3     | 1, 3, 5, 6, 7, 7            | 29    |

`generate` seeds `random.Random` from a blake2b digest of (family, level, seed), never Python's `hash`,
so a set is identical in every process and Python version; items are drawn one after another from that
one stream, so the first k items of a set of n are the set of k.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, TypeAlias

from evalsuite.errors import did_you_mean

Family = Literal["arithmetic", "boolean", "deduction"]
FAMILIES: tuple[Family, ...] = ("arithmetic", "boolean", "deduction")
LEVELS: tuple[int, ...] = (1, 2, 3, 4)

INSTRUCTION: Mapping[Family, str] = MappingProxyType(
    {
        "arithmetic": "Answer with the integer only, on a last line starting with 'Answer:'.",
        "boolean": "Answer with True or False only, on a last line starting with 'Answer:'.",
        "deduction": "Answer with True, False or Unknown only, on a last line starting with 'Answer:'.",
    }
)


@dataclass(frozen=True)
class Item:
    """One generated problem and its answer, canonical as `extract` writes a model's."""

    family: Family
    level: int
    index: int  # position in its generated set
    question: str  # the statements, then the question; no answer-format instructions (see INSTRUCTION)
    answer: str  # "-12", "True", "False" or "Unknown"
    nodes: int  # nodes of the graph the question was read from

    def key(self) -> str:
        """A short digest of (family, question): tells items apart across sets, levels and seeds."""
        return hashlib.blake2b(f"{self.family}\n{self.question}".encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class _Shape:
    layers: tuple[int, ...]  # nodes per layer, root first; non-decreasing, so parents never outnumber
    width: int  # operands of a combining node

    @property
    def nodes(self) -> int:
        return sum(self.layers)


_SHAPES: Mapping[int, _Shape] = MappingProxyType(
    {
        1: _Shape((1, 2, 3), 2),
        2: _Shape((1, 2, 3, 4), 2),
        3: _Shape((1, 3, 4, 5, 5), 3),
        4: _Shape((1, 3, 5, 6, 7, 7), 3),
    }
)
_UNARY = 0.2  # chance that an inner node squares / negates one operand instead of combining `width`
_LIMIT = 10_000  # largest |value| of any arithmetic node
_MAX_DRAWS = 10_000  # graphs tried for one item before giving up (a bug, not bad luck, if ever reached)

# Three-letter words a node must not be called, so that no name reads as part of a statement.
_WORDS = frozenset((
    "add", "all", "and", "any", "are", "ask", "big", "but", "can", "day", "did", "end", "far", "few",
    "for", "get", "got", "had", "has", "her", "him", "his", "how", "its", "let", "may", "new", "nor",
    "not", "now", "odd", "off", "old", "one", "our", "out", "own", "put", "say", "see", "set", "she",
    "six", "sum", "ten", "the", "too", "try", "two", "use", "was", "way", "who", "why", "yes", "yet",
    "you",
))  # fmt: skip

Children: TypeAlias = tuple[tuple[int, ...], ...]  # node i's operands; 0 is the root, leaves have none
Labelled: TypeAlias = tuple[list[str], str]  # a statement per node, and the root's answer
Labeller: TypeAlias = Callable[[random.Random, Children, Sequence[str]], Labelled | None]


def generate(family: Family, level: int, n: int, seed: int) -> list[Item]:
    """`n` distinct items of `family` at `level`, the same for the same (family, level, seed)."""
    if family not in FAMILIES:
        raise ValueError(
            f"unknown DyVal family {family!r}: expected one of {', '.join(FAMILIES)}"
            + did_you_mean(str(family), FAMILIES)
        )
    if level not in LEVELS:
        raise ValueError(f"DyVal level must be one of {', '.join(map(str, LEVELS))}, not {level!r}")
    if n < 1:
        raise ValueError(f"the number of DyVal items n must be at least 1, not {n}")
    shape = _SHAPES[level]
    digest = hashlib.blake2b(f"dyval/{family}/{level}/{seed}".encode(), digest_size=16).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    targets = _targets(rng, _BALANCED[family])
    items: list[Item] = []
    seen: set[str] = set()
    for index in range(n):
        question, answer = _draw(rng, family, shape, next(targets), seen)
        seen.add(question)
        items.append(Item(family, level, index, question, answer, shape.nodes))
    return items


def _targets(rng: random.Random, answers: tuple[str, ...]) -> Iterator[str | None]:
    """The answer each next item must have: every answer once per block in shuffled order, so any
    prefix of a set is balanced to within one block (None: any answer will do)."""
    while True:
        yield from rng.sample(answers, len(answers)) if answers else (None,)


def _draw(
    rng: random.Random, family: Family, shape: _Shape, target: str | None, seen: set[str]
) -> tuple[str, str]:
    """A new (question, answer) with the target answer, by drawing graphs until one fits."""
    for _ in range(_MAX_DRAWS):
        children = _graph(rng, shape)
        names = _names(rng, shape.nodes)
        labelled = _LABELLERS[family](rng, children, names)
        if labelled is None or (target is not None and labelled[1] != target):
            continue
        statements, answer = labelled
        question = "\n".join([*_shuffled(rng, statements, children), _ask(family, names[0])])
        if question not in seen:
            return question, answer
    raise RuntimeError(f"no {family} graph with answer {target} in {_MAX_DRAWS} draws")


def _ask(family: Family, root: str) -> str:
    if family == "deduction":
        return f"Is {root} True, False, or unknown?"
    return f"What is the value of {root}?"


def _graph(rng: random.Random, shape: _Shape) -> Children:
    """A layered DAG of the shape: see the module docstring for its guarantees."""
    starts = list(itertools.accumulate(shape.layers, initial=0))
    layers = [range(start, end) for start, end in itertools.pairwise(starts)]
    children: list[list[int]] = [[] for _ in range(shape.nodes)]
    for upper, lower in itertools.pairwise(layers):
        arity = dict(zip(upper, _arities(rng, len(upper), len(lower), shape.width), strict=True))
        below = rng.sample(lower, len(lower))
        for parent, child in zip(upper, below, strict=False):  # a first operand on the next layer
            children[parent].append(child)
        for child in below[len(upper) :]:  # the rest of the next layer, each to a parent with room
            children[rng.choice([p for p in upper if len(children[p]) < arity[p]])].append(child)
        for parent in upper:  # remaining operands from anywhere below: the shared nodes
            spare = [c for c in range(lower.start, shape.nodes) if c not in children[parent]]
            children[parent] += rng.sample(spare, arity[parent] - len(children[parent]))
            rng.shuffle(children[parent])
    return tuple(tuple(c) for c in children)


def _arities(rng: random.Random, parents: int, below: int, width: int) -> list[int]:
    """Operands per parent: `width`, or 1 with chance _UNARY while the parents still cover `below`."""
    arity = [width] * parents
    for i in range(parents):
        if rng.random() < _UNARY and sum(arity) - (width - 1) >= below:
            arity[i] = 1
    return arity


def _names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choices(string.ascii_lowercase, k=3))
        if name not in names and name not in _WORDS:
            names.append(name)
    return names


def _shuffled(rng: random.Random, statements: list[str], children: Children) -> list[str]:
    """The statements in a random order that is not topological either way (DyVal's "random" order)."""
    order = list(range(len(statements)))
    while True:
        rng.shuffle(order)
        position = {node: i for i, node in enumerate(order)}
        edges = [(position[p], position[c]) for p, kids in enumerate(children) for c in kids]
        if not all(p < c for p, c in edges) and not all(p > c for p, c in edges):
            return [statements[node] for node in order]


def _listing(names: Sequence[str], conjunction: str) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


_ARITHMETIC: Mapping[str, Callable[[Sequence[int]], int]] = MappingProxyType(
    {"+": sum, "-": lambda xs: xs[0] - sum(xs[1:]), "*": math.prod}
)


def _arithmetic(rng: random.Random, children: Children, names: Sequence[str]) -> Labelled | None:
    values: dict[int, int] = {}
    statements: dict[int, str] = {}
    for node in reversed(range(len(children))):  # operands always have larger indices
        kids = children[node]
        name, operands = names[node], [names[k] for k in kids]
        if not kids:
            values[node] = rng.randint(1, 10)
            statements[node] = f"The value of {name} is {values[node]}."
            continue
        ops = ["^2"] if len(kids) == 1 else rng.sample(sorted(_ARITHMETIC), len(_ARITHMETIC))
        for op in ops:  # the first operation, in random order, whose value stays in range
            values[node] = _apply(op, [values[k] for k in kids])
            if 1 <= abs(values[node]) <= _LIMIT:
                break
        else:
            return None
        statements[node] = f"{name} gets its value by {_operation(op, operands)}."
    return [statements[i] for i in range(len(children))], str(values[0])


def _apply(op: str, args: Sequence[int]) -> int:
    return args[0] ** 2 if op == "^2" else _ARITHMETIC[op](args)


def _operation(op: str, operands: Sequence[str]) -> str:
    if op == "^2":
        return f"squaring the value of {operands[0]}"
    if op == "-" and len(operands) == 2:
        return f"subtracting the value of {operands[1]} from the value of {operands[0]}"
    if op == "-":
        rest = _listing(operands[1:], "and")
        return f"subtracting the sum of the values of {rest} from the value of {operands[0]}"
    verb = "adding together" if op == "+" else "multiplying together"
    return f"{verb} the values of {_listing(operands, 'and')}"


def _boolean(rng: random.Random, children: Children, names: Sequence[str]) -> Labelled | None:
    values: dict[int, bool] = {}
    statements: dict[int, str] = {}
    for node in reversed(range(len(children))):
        kids = children[node]
        name, operands = names[node], [names[k] for k in kids]
        if not kids:
            values[node] = rng.random() < 0.5
            statements[node] = f"The value of {name} is {values[node]}."
        elif len(kids) == 1:
            values[node] = not values[kids[0]]
            statements[node] = f"The value of {name} equals (NOT {operands[0]})."
        else:
            op = rng.choice(("AND", "OR"))
            args = [values[k] for k in kids]
            values[node] = all(args) if op == "AND" else any(args)
            statements[node] = f"The value of {name} equals ({f' {op} '.join(operands)})."
    return [statements[i] for i in range(len(children))], str(values[0])


def _deduction(rng: random.Random, children: Children, names: Sequence[str]) -> Labelled | None:
    values: dict[int, bool | None] = {}  # None: not derived by forward chaining
    statements: dict[int, str] = {}
    for node in reversed(range(len(children))):
        kids = children[node]
        name, operands = names[node], [names[k] for k in kids]
        args = [values[k] for k in kids]
        if not kids:
            values[node] = rng.random() < 0.5
            statements[node] = f"{name} is {values[node]}."
        elif len(kids) == 1:
            premise = rng.random() < 0.5  # "if a is True, c is False" or "if a is False, c is True"
            values[node] = (not premise) if args[0] is premise else None
            statements[node] = f"If {operands[0]} is {premise}, then {name} is {not premise}."
        else:
            conclusion, both = rng.random() < 0.5, rng.random() < 0.5
            fires = all(a is True for a in args) if both else any(a is True for a in args)
            values[node] = conclusion if fires else None
            premises = f"{_listing(operands, 'and')} are" if both else f"{_listing(operands, 'or')} is"
            statements[node] = f"If {premises} True, then {name} is {conclusion}."
    root = values[0]
    return [statements[i] for i in range(len(children))], "Unknown" if root is None else str(root)


_LABELLERS: Mapping[Family, Labeller] = MappingProxyType(
    {"arithmetic": _arithmetic, "boolean": _boolean, "deduction": _deduction}
)
_BALANCED: Mapping[Family, tuple[str, ...]] = MappingProxyType(
    {"arithmetic": (), "boolean": ("True", "False"), "deduction": ("True", "False", "Unknown")}
)

# The last "Answer:" (also "**Answer:**", "Answer**:"); then numbers, thousands separators allowed, not
# glued to a word ("x2") or a preceding digit ("5-3" holds 5 and 3); then whole-word truth values.
_ANSWER = re.compile(r"answer\s*[*_]*\s*:", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_TRUTH = re.compile(r"\b(?:true|false|unknown)\b", re.IGNORECASE)


def extract(family: Family, response: str) -> str | None:
    """The model's answer in `response`, canonical like Item.answer, or None when there is none.

    The first value after the last "Answer:" wins, as the instruction asks for; a model that ignored
    the format is read by its last value instead (the conclusion usually comes last). Numbers read
    "1,234" as 1234 and "5.0" as 5; a non-integer stays what it is ("2.5"), so it is wrong rather than
    missing. "yes" and "no" are not truth values: the question offers True, False (and Unknown)."""
    text = response.replace("\u2212", "-")  # the typographic minus sign
    marks = list(_ANSWER.finditer(text))
    if marks and (found := _values(family, text[marks[-1].end() :])):
        return found[0]
    found = _values(family, text)
    return found[-1] if found else None


def _values(family: Family, text: str) -> list[str]:
    if family != "arithmetic":
        return [match.group().capitalize() for match in _TRUTH.finditer(text)]
    numbers = [Decimal(match.group().replace(",", "")) for match in _NUMBER.finditer(text)]
    return [str(int(d)) if d == d.to_integral_value() else f"{d.normalize():f}" for d in numbers]


def correct(item: Item, response: str) -> bool:
    """Whether `response` gives the item's answer."""
    return extract(item.family, response) == item.answer
