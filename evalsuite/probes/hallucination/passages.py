"""Counterfactual-context items: a passage states a fact, sometimes one that contradicts common knowledge,
and the question asks it. A faithful model answers from the passage, not from memory.

Two sources, both deterministic in their seed:

* :func:`template_items` — 34 one-sentence facts of common knowledge ("The capital of France is
  {value}."), each with its true value and two counterfactual values of the same type ("Paris"; "Lyon",
  "Marseille"). A share ``agree_share`` of the items (default 0.25, exactly ``round(count *
  agree_share)`` of them, at seeded positions) state the true value, so the passage agrees with memory;
  the rest state a seeded counterfactual value. Templates are used once each, in a seeded order, before
  any repeats, so up to 34 items have distinct facts.
* :func:`squad_items` — SQuAD 2.0 answerable questions whose first answer text occurs exactly once in
  the context (also after lower-casing) and at word boundaries. That span is replaced by the first answer
  of another question of the same *type*, drawn with the seed. The type heuristic (:func:`answer_type`):

    number    digits only, typed by digit count, so years go with 4-digit numbers ("1973" <-> "1066",
              never "12")
    acronym   one to four all-capital words ("NFL" <-> "BBC")
    name      one to four words without digits, each capitalised or one of "of the and de von van da
              la del du", first and last capitalised; typed by word count ("Denver Broncos" <-> "Pope
              Francis")
    skipped   anything else ("$12", "October 1973", "the oil embargo"): about 70% of the candidates

  and, to keep substitutes of a plausible kind, both questions must also share their first wh-word
  ("who", "when", "how many", ...; after "what"/"which" the next word too: "which president", "what
  year"). It stays a heuristic: "what is X?" answers of the same shape can still differ in kind. A
  substitute must not occur in the context already, and after substitution the passage must contain it
  and must not contain the original answer (both as :func:`~.fabricated.answer_matches` sees them).
  Every SQuAD item is counterfactual: ``passage_answer`` is the substitute, ``memory_answer`` the
  original answer. The shared dev file yields about 1,000 items; asking for more returns them all.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evalsuite.errors import ConfigError, DataError
from evalsuite.probes.hallucination.entities import answer_matches

AGREE_SHARE = 0.25
_SUBSTITUTE_TRIES = 30  # distinct seeded picks from a type's pool before a question is skipped


@dataclass(frozen=True)
class ContextItem:
    id: str
    source: Literal["template", "squad"]
    passage: str
    question: str
    passage_answer: str  # what the passage says
    memory_answer: str  # what common knowledge (or the unedited source) says
    counterfactual: bool  # passage_answer differs from memory_answer


@dataclass(frozen=True)
class Fact:
    sentence: str  # with one "{value}"
    question: str
    true: str
    counterfactuals: tuple[str, ...]


# fmt: off
FACTS: tuple[Fact, ...] = (
    Fact("The capital of France is {value}.",
         "What is the capital of France?", "Paris", ("Lyon", "Marseille")),
    Fact("The capital of Japan is {value}.",
         "What is the capital of Japan?", "Tokyo", ("Osaka", "Kyoto")),
    Fact("The capital of Australia is {value}.",
         "What is the capital of Australia?", "Canberra", ("Sydney", "Melbourne")),
    Fact("The capital of Canada is {value}.",
         "What is the capital of Canada?", "Ottawa", ("Toronto", "Vancouver")),
    Fact("Water boils at {value} degrees Celsius at sea level.",
         "At what temperature in degrees Celsius does water boil at sea level?", "100", ("85", "120")),
    Fact("Water freezes at {value} degrees Celsius at sea level.",
         "At what temperature in degrees Celsius does water freeze at sea level?", "0", ("10", "5")),
    Fact("The Eiffel Tower is located in {value}.",
         "In which city is the Eiffel Tower located?", "Paris", ("Rome", "Berlin")),
    Fact("The chemical symbol for gold is {value}.",
         "What is the chemical symbol for gold?", "Au", ("Ag", "Gd")),
    Fact("A week has {value} days.",
         "How many days are there in a week?", "7", ("8", "6")),
    Fact("The largest planet in the Solar System is {value}.",
         "What is the largest planet in the Solar System?", "Jupiter", ("Saturn", "Neptune")),
    Fact("The Mona Lisa was painted by {value}.",
         "Who painted the Mona Lisa?", "Leonardo da Vinci", ("Michelangelo", "Raphael")),
    Fact("Romeo and Juliet was written by {value}.",
         "Who wrote Romeo and Juliet?", "William Shakespeare", ("Christopher Marlowe", "Ben Jonson")),
    Fact("The first person to walk on the Moon was {value}.",
         "Who was the first person to walk on the Moon?", "Neil Armstrong", ("Buzz Aldrin", "Yuri Gagarin")),
    Fact("The tallest mountain on Earth above sea level is {value}.",
         "What is the tallest mountain on Earth above sea level?", "Mount Everest", ("K2", "Mont Blanc")),
    Fact("The human heart has {value} chambers.",
         "How many chambers does the human heart have?", "4", ("3", "6")),
    Fact("Penicillin was discovered by {value}.",
         "Who discovered penicillin?", "Alexander Fleming", ("Louis Pasteur", "Joseph Lister")),
    Fact("The Statue of Liberty stands in {value}.",
         "In which city does the Statue of Liberty stand?", "New York", ("Boston", "Philadelphia")),
    Fact("The currency of Japan is the {value}.",
         "What is the currency of Japan?", "yen", ("rupee", "yuan")),
    Fact("The largest ocean on Earth is the {value} Ocean.",
         "What is the largest ocean on Earth?", "Pacific", ("Atlantic", "Indian")),
    Fact("Light from the Sun takes about {value} minutes to reach Earth.",
         "About how many minutes does light from the Sun take to reach Earth?", "8", ("20", "3")),
    Fact("The smallest prime number is {value}.",
         "What is the smallest prime number?", "2", ("3", "5")),
    Fact("The interior angles of a triangle add up to {value} degrees.",
         "How many degrees do the interior angles of a triangle add up to?", "180", ("360", "270")),
    Fact("World War II ended in {value}.",
         "In what year did World War II end?", "1945", ("1947", "1943")),
    Fact("The Berlin Wall fell in {value}.",
         "In what year did the Berlin Wall fall?", "1989", ("1991", "1985")),
    Fact("Mount Fuji is located in {value}.",
         "In which country is Mount Fuji located?", "Japan", ("China", "South Korea")),
    Fact("The most abundant gas in Earth's atmosphere is {value}.",
         "What is the most abundant gas in Earth's atmosphere?", "nitrogen", ("oxygen", "argon")),
    Fact("The chemical formula of water is {value}.",
         "What is the chemical formula of water?", "H2O", ("CO2", "NH3")),
    Fact("Spiders have {value} legs.",
         "How many legs do spiders have?", "8", ("6", "10")),
    Fact("The ancient Olympic Games originated in {value}.",
         "Where did the ancient Olympic Games originate?", "Greece", ("Italy", "Egypt")),
    Fact("The planet closest to the Sun is {value}.",
         "Which planet is closest to the Sun?", "Mercury", ("Venus", "Mars")),
    Fact("Pride and Prejudice was written by {value}.",
         "Who wrote Pride and Prejudice?", "Jane Austen", ("Charlotte Bronte", "George Eliot")),
    Fact("The theory of general relativity was developed by {value}.",
         "Who developed the theory of general relativity?",
         "Albert Einstein", ("Isaac Newton", "Niels Bohr")),
    Fact("The Sahara Desert is located in {value}.",
         "On which continent is the Sahara Desert located?", "Africa", ("Asia", "Australia")),
    Fact("The hardest natural substance is {value}.",
         "What is the hardest natural substance?", "diamond", ("quartz", "granite")),
)
# fmt: on


def _cycle(facts: Sequence[Fact], rng: random.Random) -> Iterator[Fact]:
    while True:
        order = list(facts)
        rng.shuffle(order)
        yield from order


def template_items(count: int, seed: int, agree_share: float = AGREE_SHARE) -> list[ContextItem]:
    """``count`` template items, ``round(count * agree_share)`` of them agreeing with common knowledge."""
    if count < 0 or not 0.0 <= agree_share <= 1.0:
        raise ConfigError(
            f"template items: need count >= 0 and 0 <= agree_share <= 1, got {count}, {agree_share}"
        )
    rng = random.Random(seed)
    agreeing = set(rng.sample(range(count), round(count * agree_share)))
    facts = _cycle(FACTS, rng)
    items = []
    for i in range(count):
        fact = next(facts)
        value = fact.true if i in agreeing else rng.choice(fact.counterfactuals)
        passage = fact.sentence.format(value=value)
        items.append(
            ContextItem(
                f"template-{i:04d}", "template", passage, fact.question, value, fact.true, i not in agreeing
            )
        )
    return items


# --- SQuAD ---------------------------------------------------------------------------------------------

_CONNECTORS = frozenset({"of", "the", "and", "de", "von", "van", "da", "la", "del", "du"})
# the first wh-word; after "what"/"which" also the next word ("which president", "what is")
_WH = re.compile(
    r"\b(how many|how much|how long|how old|who|whom|whose|when|where|(?:which|what)(?: \w+)?|why|how)\b"
)


@dataclass(frozen=True)
class _Question:
    id: str
    context: str
    question: str
    answer: str  # the first answer text
    start: int  # where it occurs in the context


def answer_type(answer: str, question: str = "") -> tuple[str, int, str] | None:
    """``(shape, size, wh)`` or None (skip): shape ``number`` (size: digits), ``acronym`` or ``name``
    (size: words); ``wh`` is the question's first wh-word. See the module docstring."""
    match = _WH.search(question.lower())
    wh = match.group(1) if match else ""
    if answer.isascii() and answer.isdigit():
        return ("number", len(answer), wh)
    words = answer.split()
    if not 1 <= len(words) <= 4 or any(c.isdigit() for c in answer):
        return None
    if all(w.isupper() and len(w) > 1 for w in words):
        return ("acronym", len(words), wh)
    inner_ok = all(w[0].isupper() or w in _CONNECTORS for w in words)
    return ("name", len(words), wh) if inner_ok and words[0][0].isupper() and words[-1][0].isupper() else None


def _read_squad(path: Path) -> list[_Question]:
    """Answerable questions whose first answer occurs once in the context, at word boundaries."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            _Question(str(qa["id"]), context, str(qa["question"]), answer, start)
            for context, qa in _pairs(data)
            if not qa.get("is_impossible", False) and qa.get("answers")
            for answer in [_text(qa["answers"][0])]
            for start in [_unique_span(context, answer)]
            if start is not None
        ]
    except FileNotFoundError:
        raise DataError(f"{path}: SQuAD 2.0 file not found") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise DataError(f"{path}: not a SQuAD 2.0 file: {error!r}") from None


def _pairs(data: Any) -> Iterator[tuple[str, Any]]:
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            context = str(paragraph["context"])
            for qa in paragraph["qas"]:
                yield context, qa


def _text(answer: Any) -> str:
    """An answer is a string (the explorer export) or ``{"text": ...}`` (the official files)."""
    return str(answer["text"] if isinstance(answer, dict) else answer).strip()


def _unique_span(context: str, answer: str) -> int | None:
    if not answer or context.lower().count(answer.lower()) != 1:
        return None
    start = context.find(answer)
    end = start + len(answer)
    bounded = start >= 0 and (start == 0 or not context[start - 1].isalnum())
    return start if bounded and (end == len(context) or not context[end].isalnum()) else None


def _substitute(question: _Question, pool: Sequence[str], rng: random.Random) -> ContextItem | None:
    """The question with its answer span replaced by a seeded pick from ``pool``, or None."""
    context, answer = question.context, question.answer
    for candidate in rng.sample(pool, min(_SUBSTITUTE_TRIES, len(pool))):
        if candidate.lower() in context.lower():
            continue  # also skips the answer itself
        passage = context[: question.start] + candidate + context[question.start + len(answer) :]
        if answer_matches(passage, [candidate]) and not answer_matches(passage, [answer]):
            return ContextItem(
                f"squad-{question.id}", "squad", passage, question.question, candidate, answer, True
            )
    return None


def squad_items(path: Path, count: int, seed: int) -> list[ContextItem]:
    """Up to ``count`` counterfactual SQuAD items (fewer when fewer qualify), drawn with ``seed``.

    Raises DataError naming ``path`` when the file is missing or is not SQuAD 2.0 JSON.
    """
    if count < 0:
        raise ConfigError(f"squad items: count must be >= 0, got {count}")
    questions = _read_squad(path)
    pools: dict[tuple[str, int, str], set[str]] = defaultdict(set)
    for q in questions:
        kind = answer_type(q.answer, q.question)
        if kind is not None:
            pools[kind].add(q.answer)
    sorted_pools = {kind: sorted(answers) for kind, answers in pools.items()}
    rng = random.Random(seed)
    order = list(range(len(questions)))
    rng.shuffle(order)
    items: list[ContextItem] = []
    for index in order:
        if len(items) == count:
            break
        kind = answer_type(questions[index].answer, questions[index].question)
        item = None if kind is None else _substitute(questions[index], sorted_pools[kind], rng)
        if item is not None:
            items.append(item)
    return items
