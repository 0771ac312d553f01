"""Character-level diffs of a probe's original and perturbed text, as segments the report draws.

A diff is a list of ``[kind, text]`` segments, kind one of ``equal``, ``delete`` (only in the original)
and ``insert`` (only in the perturbed text); the original is the equal and deleted segments in order, the
perturbed text the equal and inserted ones. It is computed with :class:`difflib.SequenceMatcher` in two
passes (words, then the characters of the words that differ), which keeps long passages fast and
still shows a single swapped letter as one.

Changes a reader cannot see are made visible: a zero-width character becomes ``⟨U+200B⟩``, and
:func:`~evalsuite.report.render.clean` names control and direction-override characters. A homoglyph
(Cyrillic ``\\u0430`` for Latin ``a``) is a deleted and an inserted character, so it is highlighted too.
Long unchanged stretches are shortened to their ends.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Literal

from evalsuite.report.render import clean

Kind = Literal["equal", "insert", "delete"]
Segment = tuple[Kind, str]

ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
TOKENS = re.compile(r"\w+|\s+|.", re.DOTALL)
MAX_CHARS = 20_000  # each side is cut here before diffing: a report shows examples, not megabytes
CHAR_PAIRS = (
    4_000_000  # a differing stretch larger than this (chars x chars) is shown whole, not by character
)
CONTEXT = 300  # unchanged characters kept at each end of a long unchanged stretch


def visible(text: str) -> str:
    """``text`` with zero-width characters as ``⟨U+200B⟩`` markers, then :func:`clean`."""
    return clean("".join(f"⟨U+{ord(ch):04X}⟩" if ch in ZERO_WIDTH else ch for ch in text))


def char_diff(original: str, perturbed: str) -> list[list[str]]:
    """Segments ``[kind, text]`` turning ``original`` into ``perturbed``, made visible and shortened."""
    a, b = _cut(original), _cut(perturbed)
    raw: list[Segment] = []
    left, right = TOKENS.findall(a), TOKENS.findall(b)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, left, right, autojunk=False).get_opcodes():
        x, y = "".join(left[i1:i2]), "".join(right[j1:j2])
        if tag == "equal":
            raw.append(("equal", x))
        elif tag == "replace" and len(x) * len(y) <= CHAR_PAIRS:
            raw += _characters(x, y)
        else:
            raw += [("delete", x), ("insert", y)]
    merged = _merge(raw)
    last = len(merged) - 1
    return [
        [kind, _elide(visible(text), i == 0, i == last) if kind == "equal" else visible(text)]
        for i, (kind, text) in enumerate(merged)
    ]


def _characters(x: str, y: str) -> list[Segment]:
    out: list[Segment] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, x, y, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("equal", x[i1:i2]))
        else:
            out += [("delete", x[i1:i2]), ("insert", y[j1:j2])]
    return out


def _merge(segments: list[Segment]) -> list[Segment]:
    """Drop empty segments and join neighbours of one kind."""
    out: list[Segment] = []
    for kind, text in segments:
        if text and out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        elif text:
            out.append((kind, text))
    return out


def _cut(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    return text[:MAX_CHARS] + f" … [{len(text) - MAX_CHARS:,} more characters not shown]"


def _elide(text: str, first: bool, last: bool) -> str:
    """A long unchanged stretch without its middle: the first keeps its end, the last its start."""
    head = 2 * CONTEXT if first and last else 0 if first else CONTEXT
    tail = 0 if last else CONTEXT
    if len(text) <= head + tail + 80:
        return text
    marker = f"… [{len(text) - head - tail:,} unchanged characters] …"
    return f"{text[:head]}{marker}{text[len(text) - tail :]}"
