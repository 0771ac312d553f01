"""Import textattack offline: a local NLTK data folder, no downloads, no log noise.

``import textattack`` calls ``nltk.download`` (network) on its first run and loads NLTK's English
stop words at import time; ``WordSwapWordNet()`` downloads ``omw-1.4``. We give NLTK a data folder
of our own (stop words written from :data:`STOPWORDS`, WordNet 3.0 copied from Debian's
``wordnet-base`` package) and turn ``nltk.download`` into a no-op while textattack runs its
import-time code.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import random
import shutil
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import nltk
import numpy as np

from evalsuite.errors import ConfigError
from evalsuite.files import follow_umask, staging_folder
from evalsuite.probes.adversarial import flair_stub

WORDNET_SOURCE = Path("/usr/share/wordnet")
WORDNET_HINT = "install WordNet 3.0 with `apt-get install wordnet-base` (Debian/Ubuntu)"

# NLTK's English stop-word list (179 words), written out so nothing is downloaded.
STOPWORDS: frozenset[str] = frozenset(
    [
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "ours",
        "ourselves",
        "you",
        "you're",
        "you've",
        "you'll",
        "you'd",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "he",
        "him",
        "his",
        "himself",
        "she",
        "she's",
        "her",
        "hers",
        "herself",
        "it",
        "it's",
        "its",
        "itself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "what",
        "which",
        "who",
        "whom",
        "this",
        "that",
        "that'll",
        "these",
        "those",
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "having",
        "do",
        "does",
        "did",
        "doing",
        "a",
        "an",
        "the",
        "and",
        "but",
        "if",
        "or",
        "because",
        "as",
        "until",
        "while",
        "of",
        "at",
        "by",
        "for",
        "with",
        "about",
        "against",
        "between",
        "into",
        "through",
        "during",
        "before",
        "after",
        "above",
        "below",
        "to",
        "from",
        "up",
        "down",
        "in",
        "out",
        "on",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "s",
        "t",
        "can",
        "will",
        "just",
        "don",
        "don't",
        "should",
        "should've",
        "now",
        "d",
        "ll",
        "m",
        "o",
        "re",
        "ve",
        "y",
        "ain",
        "aren",
        "aren't",
        "couldn",
        "couldn't",
        "didn",
        "didn't",
        "doesn",
        "doesn't",
        "hadn",
        "hadn't",
        "hasn",
        "hasn't",
        "haven",
        "haven't",
        "isn",
        "isn't",
        "ma",
        "mightn",
        "mightn't",
        "mustn",
        "mustn't",
        "needn",
        "needn't",
        "shan",
        "shan't",
        "shouldn",
        "shouldn't",
        "wasn",
        "wasn't",
        "weren",
        "weren't",
        "won",
        "won't",
        "wouldn",
        "wouldn't",
    ]
)

# WordNet 3.0's 45 lexicographer files (lexnames(5WN)); Debian's wordnet-base omits this file,
# which nltk's WordNetCorpusReader reads first. Numbered in order; 1 noun, 2 verb, 3 adj, 4 adv.
_LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    """The ``lexnames`` file of WordNet 3.0: ``NN<TAB>name<TAB>category`` per line."""
    return "".join(
        f"{number:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for number, name in enumerate(_LEXNAMES)
    )


def _install(target: Path, fill: Callable[[Path], None]) -> None:
    """Build ``target`` in a temporary sibling folder and rename it into place (first one wins)."""
    if target.is_dir():
        return
    staging = staging_folder(target.parent, f".{target.name}-")
    try:
        fill(staging)
        follow_umask(staging)
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # not merely a concurrent builder that finished first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fill_stopwords(folder: Path) -> None:
    (folder / "english").write_text("".join(f"{word}\n" for word in sorted(STOPWORDS)), encoding="utf-8")


def _wordnet_filler(source: Path) -> Callable[[Path], None]:
    def fill(folder: Path) -> None:
        for file in sorted(source.iterdir()):
            if file.is_file():
                # Copied (28 MB): nltk's path sandbox refuses symlinks out of the corpus folder
                # and multiply-linked files.
                shutil.copyfile(file, folder / file.name)
        (folder / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        # nltk reads index.sense (Debian's separate wordnet-sense-index package) at load only to map
        # other WordNet versions for the multilingual OMW data; English lookups do not need it.
        if not (folder / "index.sense").is_file():
            (folder / "index.sense").write_text("", encoding="utf-8")

    return fill


def nltk_data_dir(cache_dir: Path, *, wordnet_source: Path | None = None) -> Path:
    """Create (once) ``cache_dir/nltk_data`` with the stop-word corpus and, where Debian's WordNet
    is installed (``wordnet_source``, default :data:`WORDNET_SOURCE`), the ``wordnet`` corpus;
    return the folder."""
    source = wordnet_source or WORDNET_SOURCE
    root = cache_dir / "nltk_data"
    _install(root / "corpora" / "stopwords", _fill_stopwords)
    if (source / "data.noun").is_file():
        _install(root / "corpora" / "wordnet", _wordnet_filler(source))
    return root


def require_wordnet(cache_dir: Path, *, wordnet_source: Path | None = None) -> None:
    """Raise ConfigError unless the WordNet corpus is usable from ``cache_dir``'s NLTK folder."""
    source = wordnet_source or WORDNET_SOURCE
    if not (source / "data.noun").is_file():
        raise ConfigError(
            f"the synonym perturbation needs WordNet 3.0, not found in {source}; {WORDNET_HINT}"
        )
    if not (nltk_data_dir(cache_dir, wordnet_source=source) / "corpora" / "wordnet" / "lexnames").is_file():
        raise ConfigError(f"could not build the WordNet corpus under {cache_dir}; {WORDNET_HINT}")


def _no_download(*_args: object, **_kwargs: object) -> bool:
    return False


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Within the block ``nltk.download`` does nothing and reports failure (returns False)."""
    original = nltk.download
    nltk.download = _no_download
    try:
        yield
    finally:
        nltk.download = original


def _use_data_dir(folder: Path) -> None:
    entry = str(folder)
    if entry in nltk.data.path:
        nltk.data.path.remove(entry)
    nltk.data.path.insert(0, entry)


_INSTALL_LOGGER = "textattack.shared.utils.install"


def _warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def load_textattack(cache_dir: Path) -> types.ModuleType:
    """Import textattack without network access and return the module (idempotent).

    textattack configures logging at import (``logging.config.dictConfig``, which disables every
    logger that already exists) and logs at INFO to stderr; both are undone here.
    """
    _use_data_dir(nltk_data_dir(cache_dir))
    flair_stub.install()  # textattack imports flair at import time; evalsuite never tags (flair_stub)
    manager = logging.Logger.manager
    disabled = {
        name: logger.disabled
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    # dictConfig resets this logger's level but keeps its filters: drop its INFO lines at import.
    logging.getLogger(_INSTALL_LOGGER).addFilter(_warnings_only)
    try:
        with no_downloads():
            module = importlib.import_module("textattack")
    finally:
        for name, was_disabled in disabled.items():
            existing = manager.loggerDict.get(name)
            if isinstance(existing, logging.Logger):
                existing.disabled = was_disabled
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and (name == "textattack" or name.startswith("textattack.")):
            logger.setLevel(logging.WARNING)
    return module


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed ``random`` and ``numpy.random`` (textattack draws from both); restore them afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
