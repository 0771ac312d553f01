"""GSM-Symbolic: GSM8K test problems as templates from which fresh problems are drawn.

Reference: I. Mirzadeh, K. Alizadeh, H. Shahrokhi, O. Tuzel, S. Bengio, M. Farajtabar, "GSM-Symbolic:
Understanding the Limitations of Mathematical Reasoning in Large Language Models" (2024),
arXiv:2410.05229. A model that has memorised GSM8K answers its test problems; the same problems with
other names and numbers, solved by the same steps, show how much of its score is reasoning.

A template is a GSM8K test row (its index in test.jsonl) and the spans of that row's question that may
change: its slots. The repository stores no question text. `load` reads the rows from the data folder
and cuts each question at its slots' literal occurrences, so a template holds the original wording
around placeholders; `instances` draws fresh values for the slots, keeps those that satisfy the
template's constraints and give an exact answer, and fills the placeholders in.

A slot names a literal span of the question (a first name, a number written as digits or as a word up
to "twenty", with thousands separators or decimals as the question writes it), how many times that
literal occurs in the question, optionally which of those occurrences it stands for (two unrelated "3"s),
and a domain:

- `Names(pronoun)`: a first name from NAMES, of the pronoun the question uses for that person
  ("she"/"he"), or any name where the question uses none;
- `Range(low, high, step)`: a number from low to high in steps of step (decimals allowed: "0.5");
- `Derived(expression)`: a number computed from the other slots, for a quantity the question states
  twice ("5 pies ... the five pies") or that the story fixes ("8 customers" = 3 + 2 + 3).

Constraints and the answer program are small Python expressions over the slot values, evaluated by a
restricted evaluator (no `eval`): numbers are exact fractions; the operators + - * / // % **,
comparisons, and/or/not, `x if c else y`, and the helpers floor, ceil, min, max, abs and whole(x)
(x is an integer). A program may assign names on lines before its final expression.

Sampling is seeded from (seed, row) alone, so a template's instances do not depend on which other
templates are drawn, and never reproduce the original problem.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import random
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeAlias

from evalsuite.errors import DataError

# Twenty first names each for people the question calls "she" and "he", from many languages.
FEMALE_NAMES = (
    "Aisha", "Beatriz", "Chloe", "Daniela", "Elena", "Fatima", "Hana", "Ingrid", "Keiko", "Leila",
    "Maya", "Nadia", "Olivia", "Priya", "Rosa", "Sofia", "Tamar", "Ursula", "Valentina", "Zainab",
)  # fmt: skip
MALE_NAMES = (
    "Ahmed", "Bruno", "Carlos", "Dmitri", "Emeka", "Felix", "Hiroshi", "Ivan", "Jamal", "Kenji",
    "Liam", "Mateo", "Nikhil", "Omar", "Pablo", "Rafael", "Samuel", "Tariq", "Viktor", "Yusuf",
)  # fmt: skip
NAMES = FEMALE_NAMES + MALE_NAMES

# Numbers GSM8K writes as words; a slot whose literal is one of these is drawn and written as a word.
WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)  # fmt: skip

SlotValue: TypeAlias = Fraction | str
Value: TypeAlias = Fraction | str | bool


class TemplateError(DataError):
    """A template does not fit its GSM8K row, or cannot produce valid instances."""


@dataclass(frozen=True)
class Names:
    """A first name, of the people the question calls `pronoun` (any name when None)."""

    pronoun: Literal["she", "he"] | None = None

    def choices(self) -> tuple[str, ...]:
        if self.pronoun == "she":
            return FEMALE_NAMES
        if self.pronoun == "he":
            return MALE_NAMES
        return NAMES


@dataclass(frozen=True)
class Range:
    """The numbers low, low + step, ... up to high."""

    low: Fraction
    high: Fraction
    step: Fraction = Fraction(1)

    def __post_init__(self) -> None:
        if self.step <= 0 or self.high < self.low:
            raise ValueError(f"empty range {self.low}..{self.high} step {self.step}")

    @property
    def size(self) -> int:
        return math.floor((self.high - self.low) / self.step) + 1

    def value(self, i: int) -> Fraction:
        return self.low + i * self.step


@dataclass(frozen=True)
class Derived:
    """A number computed from the drawn slots (and the derived slots declared before it)."""

    expression: str


Domain: TypeAlias = Names | Range | Derived


@dataclass(frozen=True)
class Slot:
    """A literal span of the question, its expected number of occurrences and the values it may take.

    `only` lists which occurrences (0-based, in reading order) the slot stands for; None is all."""

    name: str
    literal: str
    domain: Domain
    count: int = 1
    only: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Spec:
    """What the repository stores of a template: the row, its slots, constraints and answer program."""

    row: int
    slots: tuple[Slot, ...]
    program: str
    constraints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    """A Spec bound to its row: the question cut at its slots (pieces around holes) and the answer."""

    spec: Spec
    question: str
    answer: Fraction
    pieces: tuple[str, ...]
    holes: tuple[str, ...]
    originals: Mapping[str, SlotValue] = field(hash=False)

    @property
    def row(self) -> int:
        return self.spec.row

    @property
    def slots(self) -> tuple[Slot, ...]:
        return self.spec.slots

    @property
    def program(self) -> str:
        return self.spec.program

    @property
    def constraints(self) -> tuple[str, ...]:
        return self.spec.constraints

    @property
    def text(self) -> str:
        """The question with "{slot}" placeholders."""
        return render(self, {name: "{" + name + "}" for name in self.holes})


@dataclass(frozen=True)
class Instance:
    """A drawn problem: its question, exact answer, slot values and the GSM8K row of its template."""

    row: int
    question: str
    answer: Fraction
    values: Mapping[str, SlotValue] = field(hash=False)

    @property
    def answer_text(self) -> str:
        """The answer as GSM8K writes it after "#### " (no thousands separators)."""
        return format_number(self.answer)


# -- spec helpers (gsm_templates.py) ---------------------------------------------------------------


def person(name: str, literal: str, pronoun: Literal["she", "he"] | None, count: int = 1) -> Slot:
    return Slot(name, literal, Names(pronoun), count)


def num(
    name: str,
    literal: str,
    low: int | str,
    high: int | str,
    step: int | str = 1,
    count: int = 1,
    only: tuple[int, ...] | None = None,
) -> Slot:
    return Slot(name, literal, Range(Fraction(low), Fraction(high), Fraction(step)), count, only)


def derived(
    name: str, literal: str, expression: str, count: int = 1, only: tuple[int, ...] | None = None
) -> Slot:
    return Slot(name, literal, Derived(expression), count, only)


# -- the restricted evaluator ----------------------------------------------------------------------


class _Reject(ValueError):
    """These values cannot be used (division by zero, a fractional power): draw again."""


def _number(value: Value) -> Fraction:
    if not isinstance(value, Fraction):
        raise ValueError(f"{value!r} is not a number")
    return value


def _floor(x: Value) -> Value:
    return Fraction(math.floor(_number(x)))


def _ceil(x: Value) -> Value:
    return Fraction(math.ceil(_number(x)))


def _abs(x: Value) -> Value:
    return abs(_number(x))


def _min(*xs: Value) -> Value:
    return min(_number(x) for x in xs)


def _max(*xs: Value) -> Value:
    return max(_number(x) for x in xs)


def _whole(x: Value) -> Value:
    return _number(x).denominator == 1


HELPERS: Mapping[str, Callable[..., Value]] = MappingProxyType(
    {"floor": _floor, "ceil": _ceil, "abs": _abs, "min": _min, "max": _max, "whole": _whole}
)

_BINARY: Mapping[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: Fraction(a // b),
    ast.Mod: lambda a, b: a % b,
}
_COMPARE: Mapping[type[ast.cmpop], Callable[[Fraction, Fraction], bool]] = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


@dataclass(frozen=True)
class _Program:
    steps: tuple[tuple[str, ast.expr], ...]
    result: ast.expr


def _check(node: ast.expr, known: frozenset[str]) -> None:
    """Raise ValueError unless `node` uses only what the evaluator supports and names in `known`."""
    match node:
        case ast.Constant(value=constant):
            if not isinstance(constant, bool | int | float):
                raise ValueError(f"constant {constant!r} is not a number")
        case ast.Name(id=name):
            if name not in known:
                raise ValueError(f"unknown name {name!r}")
        case ast.UnaryOp(op=ast.USub() | ast.UAdd() | ast.Not(), operand=operand):
            _check(operand, known)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY or isinstance(op, ast.Pow):
            _check(left, known)
            _check(right, known)
        case ast.BoolOp(values=values):
            for value in values:
                _check(value, known)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            for comparison in ops:
                if not isinstance(comparison, ast.Eq | ast.NotEq) and type(comparison) not in _COMPARE:
                    raise ValueError(f"unsupported comparison {ast.unparse(node)!r}")
            for part in (left, *comparators):
                _check(part, known)
        case ast.Call(func=ast.Name(id=helper), args=args, keywords=[]) if helper in HELPERS:
            for arg in args:
                _check(arg, known)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            for part in (test, body, orelse):
                _check(part, known)
        case _:
            raise ValueError(f"unsupported expression {ast.unparse(node)!r}")


@cache
def _compile(text: str, known: frozenset[str]) -> _Program:
    """Parse and check a program: `name = expression` lines, then the expression it computes."""
    try:
        module = ast.parse(textwrap.dedent(text).strip())
    except SyntaxError as error:
        raise ValueError(f"cannot parse {text!r}: {error.msg}") from None
    if not module.body or not isinstance(module.body[-1], ast.Expr):
        raise ValueError(f"{text!r} must end with an expression")
    steps: list[tuple[str, ast.expr]] = []
    for statement in module.body[:-1]:
        match statement:
            case ast.Assign(targets=[ast.Name(id=target)], value=value):
                if target in HELPERS:
                    raise ValueError(f"{target!r} is a helper's name")
                _check(value, known)
                steps.append((target, value))
                known = known | {target}
            case _:
                raise ValueError(f"{ast.unparse(statement)!r} is not `name = expression`")
    result = module.body[-1].value
    _check(result, known)
    return _Program(tuple(steps), result)


def _evaluate_node(node: ast.expr, env: Mapping[str, Value]) -> Value:
    match node:
        case ast.Constant(value=bool() as flag):
            return flag
        case ast.Constant(value=int() | float() as number):
            return Fraction(repr(number))
        case ast.Name(id=name):
            return env[name]
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_number(_evaluate_node(operand, env))
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _number(_evaluate_node(operand, env))
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _evaluate_node(operand, env)
        case ast.BinOp(left=left, op=ast.Pow(), right=right):
            base, exponent = _number(_evaluate_node(left, env)), _number(_evaluate_node(right, env))
            if exponent.denominator != 1 or abs(exponent) > 12 or (base == 0 and exponent < 0):
                raise _Reject(f"{base} ** {exponent}")
            return base ** int(exponent)
        case ast.BinOp(left=left, op=op, right=right):
            a, b = _number(_evaluate_node(left, env)), _number(_evaluate_node(right, env))
            if b == 0 and isinstance(op, ast.Div | ast.FloorDiv | ast.Mod):
                raise _Reject("division by zero")
            return _BINARY[type(op)](a, b)
        case ast.BoolOp(op=ast.And(), values=values):
            return all(_evaluate_node(value, env) for value in values)
        case ast.BoolOp(op=ast.Or(), values=values):
            return any(_evaluate_node(value, env) for value in values)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            before = _evaluate_node(left, env)
            for comparison, comparator in zip(ops, comparators, strict=True):
                after = _evaluate_node(comparator, env)
                if isinstance(comparison, ast.Eq):
                    holds = before == after
                elif isinstance(comparison, ast.NotEq):
                    holds = before != after
                else:
                    holds = _COMPARE[type(comparison)](_number(before), _number(after))
                if not holds:
                    return False
                before = after
            return True
        case ast.Call(func=ast.Name(id=helper), args=args):
            return HELPERS[helper](*(_evaluate_node(arg, env) for arg in args))
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _evaluate_node(body if _evaluate_node(test, env) else orelse, env)
    raise ValueError(f"unsupported expression {ast.unparse(node)!r}")  # _check lets none through


def evaluate(text: str, values: Mapping[str, Value]) -> Value:
    """Evaluate a program or constraint over slot values (ValueError if it is malformed)."""
    program = _compile(text, frozenset(values))
    env = dict(values)
    for target, expression in program.steps:
        env[target] = _evaluate_node(expression, env)
    return _evaluate_node(program.result, env)


# -- literals: where they occur, what they mean, how a new value is written ------------------------


@dataclass(frozen=True)
class _Style:
    kind: Literal["name", "word", "number"]
    capital: bool = False
    places: int = 0
    commas: bool = False
    bare_point: bool = False


_NUMBER = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.(\d+))?")


def occurrences(question: str, literal: str) -> list[int]:
    """Start offsets of `literal` in `question` as a whole token: not part of a longer word or number
    ("3" is not found in "30", "3.5", "1/3" or "3,000"; "Al" is not found in "Alex")."""
    pattern = re.compile(r"(?<![\w.,/])" + re.escape(literal) + r"(?!\w)(?![.,/]\d)")
    return [match.start() for match in pattern.finditer(question)]


def _style(slot: Slot) -> _Style:
    literal = slot.literal
    if isinstance(slot.domain, Names):
        return _Style("name")
    if literal.lower() in WORDS:
        return _Style("word", capital=literal[0].isupper())
    match = _NUMBER.fullmatch(literal)
    if not literal or match is None:
        raise ValueError(f"literal {literal!r} is neither a number nor a number word")
    places = len(match.group(1) or "")
    return _Style("number", places=places, commas="," in literal, bare_point=literal.startswith("."))


def _parse(literal: str, style: _Style) -> SlotValue:
    if style.kind == "name":
        return literal
    if style.kind == "word":
        return Fraction(WORDS.index(literal.lower()))
    return Fraction(literal.replace(",", ""))


def format_number(value: Fraction, places: int = 0, commas: bool = False) -> str:
    """Write an exact number with at least `places` decimals (as many as it needs when it is not an
    integer); ValueError if it has no finite decimal expansion."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    digits = places
    while (value * 10**digits).denominator != 1:
        digits += 1
        if digits > 12:
            raise ValueError(f"{value} has no short decimal expansion")
    scaled = int(value * 10**digits)
    whole, fraction = divmod(scaled, 10**digits)
    text = f"{whole:,}" if commas else str(whole)
    return sign + text + (f".{fraction:0{digits}d}" if digits else "")


def _render_value(value: SlotValue, style: _Style) -> str | None:
    """How the question writes `value` in the style of the slot's literal; None where it cannot."""
    if isinstance(value, str):
        return value
    if value < 0:
        return None
    if style.kind == "word":
        if value.denominator != 1 or value > len(WORDS) - 1:
            return None
        word = WORDS[int(value)]
        return word.capitalize() if style.capital else word
    if (value * 10**style.places).denominator != 1:
        return None
    text = format_number(value, style.places, style.commas)
    return text[1:] if style.bare_point and text.startswith("0.") else text


def _writable(domain: Range, style: _Style) -> bool:
    """Whether every value of `domain` can be written in `style` (checked once, at load)."""
    if style.kind == "word":
        return all(v.denominator == 1 for v in (domain.low, domain.step)) and (
            domain.low >= 0 and domain.value(domain.size - 1) < len(WORDS)
        )
    scale = 10**style.places
    return domain.low >= 0 and all((v * scale).denominator == 1 for v in (domain.low, domain.step))


def render(template: Template, texts: Mapping[str, str]) -> str:
    """The question with each hole replaced by its slot's text."""
    parts = [template.pieces[0]]
    for hole, piece in zip(template.holes, template.pieces[1:], strict=True):
        parts += [texts[hole], piece]
    return "".join(parts)


# -- binding specs to rows ---------------------------------------------------------------------------


def parse_answer(solution: str) -> Fraction:
    """The number after "#### " in a GSM8K solution, thousands separators removed."""
    _, sep, final = solution.rpartition("####")
    if not sep:
        raise ValueError("no '####' final answer")
    return Fraction(final.strip().replace(",", ""))


def _fail(row: int, message: str) -> TemplateError:
    return TemplateError(f"GSM-Symbolic template for GSM8K test row {row}: {message}")


def bind(spec: Spec, question: str, solution: str) -> Template:
    """Cut `question` at the spec's slots and check the spec against the row; TemplateError naming the
    row if a literal is missing or occurs another number of times, an expression is malformed, the
    original values break a constraint or the program does not give the row's answer."""
    row = spec.row
    names = [slot.name for slot in spec.slots]
    for name in names:
        if not name.isidentifier() or name in HELPERS or names.count(name) > 1:
            raise _fail(row, f"slot name {name!r} is not a unique identifier (or is a helper's name)")
    spans: list[tuple[int, int, str]] = []
    styles: dict[str, _Style] = {}
    originals: dict[str, SlotValue] = {}
    for slot in spec.slots:
        found = occurrences(question, slot.literal)
        if len(found) != slot.count:
            where = "does not occur" if not found else f"occurs {len(found)} times"
            raise _fail(
                row,
                f"slot {slot.name!r}: the literal {slot.literal!r} {where} in the question "
                f"(expected {slot.count}): {question!r}",
            )
        chosen = range(slot.count) if slot.only is None else slot.only
        if not chosen or any(not 0 <= i < slot.count for i in chosen):
            raise _fail(row, f"slot {slot.name!r}: occurrences {slot.only} not within 0..{slot.count - 1}")
        spans += [(found[i], found[i] + len(slot.literal), slot.name) for i in chosen]
        try:
            styles[slot.name] = _style(slot)
        except ValueError as error:
            raise _fail(row, f"slot {slot.name!r}: {error}") from None
        originals[slot.name] = _parse(slot.literal, styles[slot.name])
        if isinstance(slot.domain, Range) and not _writable(slot.domain, styles[slot.name]):
            raise _fail(
                row,
                f"slot {slot.name!r}: not every value of {slot.domain} can be written as "
                f"its literal {slot.literal!r} is (decimals, or a number word up to twenty)",
            )
    spans.sort()
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        if start < end:
            raise _fail(row, f"slots {first!r} and {second!r} overlap in the question")
    pieces, holes, at = [], [], 0
    for start, end, name in spans:
        pieces.append(question[at:start])
        holes.append(name)
        at = end
    pieces.append(question[at:])
    try:
        answer = parse_answer(solution)
    except ValueError as error:
        raise _fail(row, f"solution: {error}") from None
    template = Template(spec, question, answer, tuple(pieces), tuple(holes), MappingProxyType(originals))
    _check_original(template)
    return template


def _check_original(template: Template) -> None:
    row, originals = template.row, dict(template.originals)
    free = frozenset(s.name for s in template.slots if not isinstance(s.domain, Derived))
    known = set(free)
    try:
        for slot in template.slots:
            if isinstance(slot.domain, Derived):
                _compile(slot.domain.expression, frozenset(known))
                known.add(slot.name)
                value = evaluate(slot.domain.expression, originals)
                if value != originals[slot.name]:
                    raise ValueError(
                        f"derived slot {slot.name!r} = {slot.domain.expression!r} gives {value} on the "
                        f"original values, not the question's {slot.literal!r}"
                    )
        for constraint in template.constraints:
            if evaluate(constraint, originals) is not True:
                raise ValueError(f"the original values break the constraint {constraint!r}")
        got = evaluate(template.program, originals)
    except ValueError as error:
        raise _fail(row, str(error)) from None
    if got != template.answer:
        raise _fail(row, f"the program gives {got} on the original values, not the answer {template.answer}")


def load(data_dir: str | Path, specs: Sequence[Spec] | None = None) -> list[Template]:
    """The templates (SPECS of gsm_templates by default) bound to `data_dir`/gsm8k/test.jsonl."""
    if specs is None:
        from evalsuite.dynamic.gsm_templates import SPECS

        specs = SPECS
    path = Path(data_dir) / "gsm8k" / "test.jsonl"
    if not path.is_file():
        raise DataError(f"GSM8K test set not found: {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    templates, seen = [], set()
    for spec in specs:
        if spec.row in seen:
            raise _fail(spec.row, "a second template for the same row")
        seen.add(spec.row)
        if not 0 <= spec.row < len(rows):
            raise _fail(spec.row, f"no such row in {path} ({len(rows)} rows)")
        templates.append(bind(spec, rows[spec.row]["question"], rows[spec.row]["answer"]))
    return templates


def original(template: Template) -> dict[str, SlotValue]:
    """The slot values of the original problem, read from the question's literals."""
    return dict(template.originals)


# -- drawing instances -------------------------------------------------------------------------------

BASE_DRAWS = 20_000  # draws per call, plus DRAWS_PER_INSTANCE for each instance asked for
DRAWS_PER_INSTANCE = 2_000


def _rng(seed: int, row: int) -> random.Random:
    digest = hashlib.sha256(f"gsm-symbolic/{seed}/{row}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _eligible(template: Template) -> dict[str, tuple[str, ...]]:
    """Per name slot, the names it may take: none that the question's fixed text already uses."""
    fixed = "".join(template.pieces)
    out = {}
    for slot in template.slots:
        if isinstance(slot.domain, Names):
            out[slot.name] = tuple(n for n in slot.domain.choices() if not occurrences(fixed, n))
    return out


def _draw(
    template: Template, rng: random.Random, eligible: Mapping[str, tuple[str, ...]]
) -> dict[str, SlotValue] | None:
    values: dict[str, SlotValue] = {}
    for slot in template.slots:
        if isinstance(slot.domain, Names):
            taken = set(values.values())
            choices = [n for n in eligible[slot.name] if n not in taken]
            if not choices:
                return None
            values[slot.name] = rng.choice(choices)
        elif isinstance(slot.domain, Range):
            values[slot.name] = slot.domain.value(rng.randrange(slot.domain.size))
    for slot in template.slots:
        if isinstance(slot.domain, Derived):
            value = evaluate(slot.domain.expression, values)
            if not isinstance(value, Fraction):
                raise ValueError(f"derived slot {slot.name!r} is not a number")
            values[slot.name] = value
    return values


def _valid_answer(answer: Fraction, template: Template) -> bool:
    if template.answer.denominator == 1 and answer.denominator != 1:
        return False
    try:
        format_number(answer)
    except ValueError:
        return False
    return not (template.answer > 0 and answer <= 0)


def instances(template: Template, seed: int, count: int) -> list[Instance]:
    """`count` distinct instances of `template`, none equal to the original problem, each satisfying
    the constraints with an exact answer (an integer where the original's is, positive where the
    original's is). Deterministic in (seed, template row). TemplateError if too few valid instances
    turn up within BASE_DRAWS + DRAWS_PER_INSTANCE * count draws."""
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count}")
    rng = _rng(seed, template.row)
    eligible = _eligible(template)
    styles = {slot.name: _style(slot) for slot in template.slots}
    order = [slot.name for slot in template.slots]
    seen = {tuple(template.originals[name] for name in order)}
    out: list[Instance] = []
    draws = BASE_DRAWS + DRAWS_PER_INSTANCE * count
    for _ in range(draws):
        if len(out) == count:
            break
        try:
            values = _draw(template, rng, eligible)
            if values is None or (key := tuple(values[name] for name in order)) in seen:
                continue
            seen.add(key)
            if not all(evaluate(c, values) is True for c in template.constraints):
                continue
            answer = evaluate(template.program, values)
        except _Reject:
            continue
        except ValueError as error:
            raise _fail(template.row, str(error)) from None
        if not isinstance(answer, Fraction) or not _valid_answer(answer, template):
            continue
        texts = {name: _render_value(values[name], styles[name]) for name in set(template.holes)}
        if any(text is None for text in texts.values()):
            continue
        question = render(template, {k: v for k, v in texts.items() if v is not None})
        ordered = {name: values[name] for name in order}
        out.append(Instance(template.row, question, answer, MappingProxyType(ordered)))
    if len(out) < count:
        raise _fail(
            template.row,
            f"only {len(out)} of {count} valid distinct instances in {draws} draws (seed {seed}): "
            "widen the slots' ranges or loosen the constraints",
        )
    return out
