"""Fabricated-entity items: questions about people, places, organisations, papers and products that do
not exist, each paired with a control question about a real entity whose answer is known.

Names are combined afresh from parts for every seed, so no fixed list of them exists to leak into a
model's training data:

    person        given name + family name, each from syllables      "Calric Brackwell"
    place         a toponym: head, linking syllable, tail              "Velanford", "Korovia"
    organisation  <coined surname> <industry> <legal suffix>           "Dunridge Optics Holdings"
    paper         a title from method/task/setting templates           "Robust Score Matching for Code Repair"
    product       <coined brand> <letters>-<number> [<tier>]           "Vexara QX-480 Pro"

"Does not exist" means exactly this: the name was freshly combined from those parts, and neither the
name, nor any run of two or more of its words, nor any coined word in it equals an entry of the
real-name list (``data/real_names.txt``, about 1,900 famous people, countries, capitals and major
cities, regions, major organisations, well-known products and famous paper titles; compared after the
normalisation of :func:`answer_matches`). A name that collides is drawn again. The list cannot be
complete: a seeded combination can still hit an obscure real name (a small town, a local firm, a real
but little-known paper title or person), so a model that "knows" a fabricated item may occasionally be
right. Treat per-item results on fabricated items as evidence in aggregate, not as proof per item.

Controls (``data/controls.json``) are real entities with answers that are stable and checkable: 151 in
all, 14 to 18 per template and 28 to 33 per category. Each holds its accepted answer aliases (years as
digits; names with and without first names where the surname alone is distinctive). Every control
entity is itself on the real-name list, so controls are real by the same standard that makes fabricated
names fabricated.

The "company" question about a fabricated product can be answered by repeating its coined brand, and
the "founder" question about an organisation by its coined surname; scoring fabricated items is
therefore about abstention, never about matching an answer.
"""

from __future__ import annotations

import functools
import json
import random
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalsuite.errors import ConfigError, DataError

Category = Literal["person", "place", "organisation", "paper", "product"]
CATEGORIES: tuple[Category, ...] = ("person", "place", "organisation", "paper", "product")

# category -> template kind -> question; a fabricated item and its control share one template
TEMPLATES: dict[Category, dict[str, str]] = {
    "person": {"born": "What year was {name} born?", "known_for": "What is {name} best known for?"},
    # "What is the population of X?" has no control whose answer is stable enough to check
    "place": {"country": "What country is {name} in?", "continent": "On which continent is {name}?"},
    "organisation": {"founder": "Who founded {name}?", "headquarters": "Where is {name} headquartered?"},
    "paper": {"authors": 'Who wrote the paper "{name}"?', "year": 'In what year was "{name}" published?'},
    "product": {"maker": "Which company makes the {name}?", "released": "When was the {name} released?"},
}
MAX_COUNT = 5000  # a fifth are places, from a space of about 4,000 names
_ATTEMPTS = 1000

Tokens = tuple[str, ...]


@dataclass(frozen=True)
class EntityItem:
    """One question; ``pair`` is the id of its matched item (control <-> fabricated)."""

    id: str
    category: Category
    fabricated: bool
    entity: str
    question: str
    answers: tuple[str, ...]  # accepted aliases; empty for fabricated items
    pair: str
    kind: str = ""  # the template kind, e.g. "born" (see TEMPLATES)


@dataclass(frozen=True)
class Control:
    category: Category
    kind: str
    entity: str
    answers: tuple[str, ...]


# --- normalisation and matching --------------------------------------------------------------------

_ARTICLES = frozenset({"a", "an", "the"})
_APOSTROPHES = re.compile(r"['\u2019`]")
_SEPARATORS = re.compile(r"[\W_]+")


def normalise(text: str) -> Tokens:
    """Lower-cased words with accents folded, apostrophes dropped, other punctuation as spaces, and the
    articles a/an/the removed: ``"McDonald's, the U.S."`` -> ``("mcdonalds", "u", "s")``."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    words = _SEPARATORS.split(_APOSTROPHES.sub("", folded.casefold()))
    return tuple(w for w in words if w and w not in _ARTICLES)


def _contains(words: Tokens, run: Tokens) -> bool:
    n = len(run)
    return n > 0 and any(words[i : i + n] == run for i in range(len(words) - n + 1))


def answer_matches(answer: str, aliases: Sequence[str]) -> bool:
    """Whether some alias appears in ``answer`` as a whole-word sequence, after :func:`normalise`.

    ``"He was born in 1879."`` matches ``["1879"]``; ``"18790"`` does not. Aliases that normalise to
    nothing never match.
    """
    words = normalise(answer)
    return any(_contains(words, normalise(alias)) for alias in aliases)


# --- data files --------------------------------------------------------------------------------------


def _data_text(name: str) -> str:
    path = resources.files("evalsuite").joinpath("probes", "hallucination", "data", name)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error}") from None


@functools.cache
def real_names() -> frozenset[Tokens]:
    """The real-name list, each entry normalised."""
    lines = (line.strip() for line in _data_text("real_names.txt").splitlines())
    return frozenset(normalise(line) for line in lines if line and not line.startswith("#"))


class _ControlEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    entity: str = Field(min_length=1)
    answers: list[str] = Field(min_length=1)


_ControlFile = dict[str, dict[str, list[_ControlEntry]]]


@functools.cache
def controls() -> tuple[Control, ...]:
    """Every control, checked against :data:`TEMPLATES`."""
    try:
        raw = json.loads(_data_text("controls.json"))
        parsed = {
            c: {k: [_ControlEntry.model_validate(e) for e in v] for k, v in kinds.items()}
            for c, kinds in raw.items()
        }
    except (ValueError, TypeError, AttributeError, ValidationError) as error:
        raise DataError(f"controls.json: malformed: {error}") from None
    return tuple(_check_controls(parsed))


def _check_controls(parsed: _ControlFile) -> Iterator[Control]:
    for category in CATEGORIES:
        kinds = parsed.get(category, {})
        if set(kinds) != set(TEMPLATES[category]) or not all(kinds.values()):
            raise DataError(f"controls.json: {category} needs controls for {sorted(TEMPLATES[category])}")
        for kind, entries in kinds.items():
            for entry in entries:
                yield Control(category, kind, entry.entity, tuple(entry.answers))


# --- name parts ----------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(", "))


_GIVEN_HEADS = _words(
    "Al Bren Cal Dar El Fen Gar Hal Is Jor Kel Lor Mar Nor Or Per Quin Ros Sel Tam Ul Vel Wyn Yar Zel "
    "Ans Bel Cor Dov Em"
)
_GIVEN_TAILS = _words("a ara en ric wyn ina ek iel ius ette ard isa on ley ia mund ora ander elle io")
_FAMILY_HEADS = _words(
    "Ash Brack Cald Dun Ever Fair Gold Hart Ing Kes Lang Mor Nest Oak Pem Quar Rad Stan Thorn Vard Wex "
    "Yell Hollo Brenn Castel Dres Fal Grim Lind Mal"
)
_FAMILY_TAILS = _words(
    "by croft dale er ford hurst ington ley man more ridge stein ton well wick berg ovic escu ini sen "
    "ard elli ow quist"
)
_PLACE_HEADS = _words(
    "Vel Kor Zan Thal Mir Ost Bran Quel Dor Esk Fal Gor Hav Ister Jun Kal Lun Mar Nev Or Pell Rav Sar "
    "Tor Ul Var Wen Yr Zel Ard"
)
_PLACE_LINKS = _words("a e i o an el is un ar")  # before a tail that starts with a consonant
_PLACE_TAILS = _words(
    "ford heim grad stad mere wick burg mouth dale ville haven port by thorpe polis ovia ara istan ora "
    "enza esti ova"
)
_INDUSTRIES = _words(
    "Analytics Biotech Dynamics Energy Logistics Pharmaceuticals Robotics Semiconductors Textiles "
    "Shipping Aerospace Minerals Foods Insurance Capital Media Software Optics Materials Telecom Motors "
    "Instruments Agritech Maritime"
)
_LEGAL = _phrases(
    "Group, Holdings, Inc., Ltd, Corporation, Partners, Labs, AG, GmbH, & Co., Company, Limited, "
    "Industries, Systems, International"
)
_ADJECTIVES = _words(
    "Sparse Hierarchical Contrastive Bayesian Adaptive Equivariant Self-Supervised Federated Causal "
    "Stochastic Low-Rank Differentiable Multi-Scale Robust Quantized Latent Recurrent Topological "
    "Geometric Probabilistic"
)
_METHODS = _phrases(
    "Graph Transformers, Diffusion Models, Kernel Regression, Hypernetworks, Expert Routing, "
    "Optimal Transport, Message Passing, Spectral Clustering, Score Matching, Variational Inference, "
    "Neural Fields, State-Space Models, Prototype Networks, Energy-Based Models, Gaussian Processes, "
    "Tensor Decomposition, Policy Distillation, Attention Pooling, Metric Learning, Curriculum Sampling"
)
_TASKS = _phrases(
    "Protein Docking, Seismic Forecasting, Tabular Anomaly Detection, Low-Resource Translation, "
    "Crop Yield Prediction, Sign Language Recognition, Molecular Property Prediction, "
    "Traffic Flow Estimation, Legal Document Retrieval, Medical Report Generation, "
    "Satellite Image Segmentation, Code Repair, Speech Enhancement, Weather Nowcasting, "
    "Drug Interaction Prediction, Handwriting Recognition, Music Transcription, "
    "Battery Health Estimation, Coral Reef Monitoring, Wildfire Spread Modelling"
)
_PROPERTIES = _phrases(
    "Convergence, Calibration, Sample Complexity, Expressivity, Stability, Identifiability, Robustness, "
    "Implicit Bias, Generalization, Scaling Behaviour"
)
_SETTINGS = _phrases(
    "Noisy Sensor Networks, Long-Tailed Regimes, Streaming Data, Multilingual Settings, Edge Devices, "
    "Clinical Cohorts, Sparse Observations, Adversarial Environments, Non-Stationary Markets, "
    "Small-Data Regimes, Label Drift, Distribution Shift, Partial Observability, Missing Modalities, "
    "Privacy Constraints, Class Imbalance"
)
_TITLES = (
    "{adj} {method} for {task}",
    "{task} via {adj} {method}",
    "Towards {adj} {task} with {method}",
    "On the {prop} of {adj} {method}",
    "{method} Meets {method2}: {task} in {setting}",
    "Rethinking {task} through {adj} {method}",
    "{adj} {method} under {setting}",
    "Can {method} Help {task}? Evidence from {setting}",
)
_BRAND_HEADS = _words("Vex Zor Quan Nyx Tel Kyn Vor Ael Prax Syl Brem Dax Ilv Jov Myr Ombr Rel Trov Ulm Xan")
_BRAND_TAILS = _words("ara ion ix io era tek ora yx ent ium ica ano elle is")
_MODEL_LETTERS = _words("X Z Q R S M V T K GX QX ZR TS MX VR")
_MODEL_TIERS = ("", "", "", "Pro", "Max", "Plus", "Lite", "Ultra", "Mini", "Air")

Generator = Callable[[random.Random], tuple[str, Tokens]]  # -> (name, its coined words)


def _pick(rng: random.Random, parts: Sequence[str]) -> str:
    return parts[rng.randrange(len(parts))]


def _person(rng: random.Random) -> tuple[str, Tokens]:
    given = _pick(rng, _GIVEN_HEADS) + _pick(rng, _GIVEN_TAILS)
    family = _pick(rng, _FAMILY_HEADS) + _pick(rng, _FAMILY_TAILS)
    return f"{given} {family}", (given, family)


def _place(rng: random.Random) -> tuple[str, Tokens]:
    head, tail = _pick(rng, _PLACE_HEADS), _pick(rng, _PLACE_TAILS)
    link = "" if tail[0] in "aeiou" else _pick(rng, _PLACE_LINKS)
    name = head + link + tail
    return name, (name,)


def _organisation(rng: random.Random) -> tuple[str, Tokens]:
    surname = _pick(rng, _FAMILY_HEADS) + _pick(rng, _FAMILY_TAILS)
    return f"{surname} {_pick(rng, _INDUSTRIES)} {_pick(rng, _LEGAL)}", (surname,)


def _paper(rng: random.Random) -> tuple[str, Tokens]:
    method, method2 = rng.sample(_METHODS, 2)
    title = _pick(rng, _TITLES).format(
        adj=_pick(rng, _ADJECTIVES),
        method=method,
        method2=method2,
        task=_pick(rng, _TASKS),
        prop=_pick(rng, _PROPERTIES),
        setting=_pick(rng, _SETTINGS),
    )
    return title, ()


def _product(rng: random.Random) -> tuple[str, Tokens]:
    brand = _pick(rng, _BRAND_HEADS) + _pick(rng, _BRAND_TAILS)
    model = f"{_pick(rng, _MODEL_LETTERS)}-{rng.randrange(10, 10_000)}"
    return " ".join(p for p in (brand, model, _pick(rng, _MODEL_TIERS)) if p), (brand,)


GENERATORS: dict[Category, Generator] = {
    "person": _person,
    "place": _place,
    "organisation": _organisation,
    "paper": _paper,
    "product": _product,
}


def is_real(name: str, coined: Sequence[str] = ()) -> bool:
    """Whether ``name``, a run of two or more of its words, or one of its ``coined`` words is on the
    real-name list."""
    real, words = real_names(), normalise(name)
    if words in real or any(normalise(word) in real for word in coined):
        return True
    return any(words[i : i + n] in real for n in range(2, len(words)) for i in range(len(words) - n + 1))


def fabricated_name(category: Category, rng: random.Random, taken: set[str] | None = None) -> str:
    """A fresh name of ``category``: not on the real-name list and not in ``taken`` (compared
    normalised); ``taken`` gets the new name."""
    taken = set() if taken is None else taken
    for _ in range(_ATTEMPTS):
        name, coined = GENERATORS[category](rng)
        key = " ".join(normalise(name))
        if key not in taken and not is_real(name, coined):
            taken.add(key)
            return name
    raise RuntimeError(f"no fresh {category} name in {_ATTEMPTS} attempts")


# --- items ---------------------------------------------------------------------------------------------


def _control_cycle(pool: Sequence[Control], rng: random.Random) -> Iterator[Control]:
    """The pool in a seeded order, reshuffled on every pass, so each control is used once per pass."""
    while True:
        order = list(pool)
        rng.shuffle(order)
        yield from order


def generate(count: int, seed: int) -> list[EntityItem]:
    """``count`` fabricated items, each followed by its matched control: ``2 * count`` items.

    Categories go round-robin (person, place, organisation, paper, product, person, ...) and each
    category's template kinds alternate; a control has the same category and template kind as its
    fabricated item. Deterministic in ``(count, seed)``; fabricated names are distinct within a call.
    """
    if not 0 <= count <= MAX_COUNT:
        raise ConfigError(f"fabricated items: count must be between 0 and {MAX_COUNT}, got {count}")
    rng = random.Random(seed)
    keys = sorted({(c.category, c.kind) for c in controls()})
    cycles = {
        key: _control_cycle([c for c in controls() if (c.category, c.kind) == key], rng) for key in keys
    }
    taken: set[str] = set()
    items: list[EntityItem] = []
    for i in range(count):
        category = CATEGORIES[i % len(CATEGORIES)]
        kinds = list(TEMPLATES[category])
        kind = kinds[(i // len(CATEGORIES)) % len(kinds)]
        template = TEMPLATES[category][kind]
        name = fabricated_name(category, rng, taken)
        control = next(cycles[category, kind])
        fake_id, real_id = f"fab-{i:05d}-{category}", f"ctl-{i:05d}-{category}"
        items += [
            EntityItem(fake_id, category, True, name, template.format(name=name), (), real_id, kind),
            EntityItem(
                real_id,
                category,
                False,
                control.entity,
                template.format(name=control.entity),
                control.answers,
                fake_id,
                kind,
            ),
        ]
    return items
