"""The offline textattack import: NLTK data folder, WordNet, no downloads, no network."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import nltk
import pytest

from evalsuite.errors import ConfigError
from evalsuite.probes.adversarial import textattack_env
from evalsuite.probes.adversarial.perturbers import PERTURBATIONS, Perturber
from evalsuite.probes.adversarial.textattack_env import (
    STOPWORDS,
    WORDNET_SOURCE,
    lexnames_text,
    load_textattack,
    nltk_data_dir,
    no_downloads,
    require_wordnet,
)

HAS_WORDNET = (WORDNET_SOURCE / "data.noun").is_file()
LEXNAMES_MAN = Path("/usr/share/man/man5/lexnames.5WN.gz")


def test_stopwords_are_nltks_english_list() -> None:
    assert len(STOPWORDS) == 179
    assert {"the", "a", "not", "don't", "wouldn't", "i"} <= STOPWORDS
    assert all(word == word.lower() and " " not in word for word in STOPWORDS)


def test_lexnames_has_the_45_lexicographer_files() -> None:
    lines = lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[:4] == ["00\tadj.all\t3", "01\tadj.pert\t3", "02\tadv.all\t4", "03\tnoun.Tops\t1"]
    assert lines[29] == "29\tverb.body\t2"
    assert lines[-1] == "44\tadj.ppl\t3"


@pytest.mark.skipif(not LEXNAMES_MAN.is_file(), reason="WordNet's lexnames(5WN) man page is not installed")
def test_lexnames_matches_the_wordnet_man_page() -> None:
    page = gzip.decompress(LEXNAMES_MAN.read_bytes()).decode("utf-8", "replace")
    table = [m.groups() for m in re.finditer(r"^(\d\d)\t(\w+\.\w+) *\t", page, re.MULTILINE)]
    ours = [tuple(line.split("\t")[:2]) for line in lexnames_text().splitlines()]
    assert table == ours


def test_nltk_data_dir_is_built_once(tmp_path: Path) -> None:
    root = nltk_data_dir(tmp_path, wordnet_source=tmp_path / "no-wordnet")
    english = root / "corpora" / "stopwords" / "english"
    assert set(english.read_text(encoding="utf-8").split()) == STOPWORDS
    assert not (root / "corpora" / "wordnet").exists()
    before = english.stat().st_mtime_ns
    assert nltk_data_dir(tmp_path, wordnet_source=tmp_path / "no-wordnet") == root
    assert english.stat().st_mtime_ns == before
    assert sorted(p.name for p in (root / "corpora").iterdir()) == ["stopwords"]  # no staging leftovers


def test_wordnet_corpus_is_built_from_a_debian_style_folder(tmp_path: Path) -> None:
    source = tmp_path / "wordnet"
    source.mkdir()
    for name in ("data.noun", "index.noun", "noun.exc"):
        (source / name).write_text(f"{name}\n", encoding="utf-8")
    root = nltk_data_dir(tmp_path / "cache", wordnet_source=source)
    corpus = root / "corpora" / "wordnet"
    assert (corpus / "data.noun").read_text(encoding="utf-8") == "data.noun\n"
    assert not (corpus / "data.noun").is_symlink()  # nltk refuses links out of its data folders
    assert (corpus / "lexnames").read_text(encoding="utf-8") == lexnames_text()
    assert (corpus / "index.sense").is_file()
    require_wordnet(tmp_path / "cache", wordnet_source=source)


def test_missing_wordnet_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"apt-get install wordnet-base"):
        require_wordnet(tmp_path, wordnet_source=tmp_path / "missing")


def test_synonym_without_wordnet_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalsuite.probes.adversarial.perturbers import build_perturber

    monkeypatch.setattr(textattack_env, "WORDNET_SOURCE", tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"wordnet-base"):
        build_perturber("synonym", "low", tmp_path)


def test_no_downloads_disables_and_restores_nltk_download() -> None:
    original = nltk.download
    with no_downloads():
        assert nltk.download("stopwords") is False
    assert nltk.download is original


def test_load_textattack_is_idempotent_and_quiet(textattack_cache: Path) -> None:
    first = load_textattack(textattack_cache)
    assert load_textattack(textattack_cache) is first
    assert nltk.data.path[0] == str(textattack_cache / "nltk_data")
    assert nltk.data.path.count(str(textattack_cache / "nltk_data")) == 1
    assert logging.getLogger("textattack.shared.utils.install").getEffectiveLevel() >= logging.WARNING
    assert nltk.corpus.stopwords.words("english")  # the corpus NLTK sees is ours


@pytest.mark.skipif(not HAS_WORDNET, reason="WordNet not installed (apt-get install wordnet-base)")
def test_nltk_reads_the_built_wordnet(textattack_cache: Path) -> None:
    load_textattack(textattack_cache)
    from nltk.corpus import wordnet

    assert "dog" in {lemma for synset in wordnet.synsets("dogs") for lemma in synset.lemma_names()}
    assert wordnet.synsets("dog")[0].lexname() == "noun.animal"


_GUARDED = textwrap.dedent(
    """
    import json, logging, socket, sys
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[-1] if args else kwargs)[:200])
        raise OSError("network access is disabled in this test")

    socket.socket.connect = lambda self, *a: refuse(*a)
    socket.socket.connect_ex = lambda self, *a: refuse(*a)
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    before = logging.getLogger("evalsuite.before_textattack")

    from pathlib import Path
    from evalsuite.probes.adversarial.perturbers import build_perturber
    from evalsuite.probes.adversarial.textattack_env import load_textattack

    cache, kinds, text = Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
    load_textattack(cache)
    outputs = {kind: build_perturber(kind, "medium", cache)(text, 7, "Paris") for kind in kinds}
    result = {"attempts": attempts, "outputs": outputs, "disabled": before.disabled}
    print("RESULT " + json.dumps(result))
    """
)


TEXT = "Tom doesn't have 12 red apples. He is not sure what I'm asking! The quick brown fox jumps."


def test_no_network_on_a_fresh_machine(tmp_path: Path, perturber: Callable[..., Perturber]) -> None:
    """A fresh interpreter and HOME: textattack's first-run downloads and every kind stay offline."""
    kinds = [kind for kind in PERTURBATIONS if HAS_WORDNET or kind != "synonym"]
    env = {k: v for k, v in os.environ.items() if k not in ("TA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path / "home"), PYTHONHASHSEED="4242")
    done = subprocess.run(
        [sys.executable, "-c", _GUARDED, str(tmp_path / "cache"), ",".join(kinds), TEXT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["attempts"] == []
    assert result["disabled"] is False  # textattack's logging.config.dictConfig is undone
    assert "Updating TextAttack" not in done.stderr and "Downloading" not in done.stderr
    assert (tmp_path / "cache" / "nltk_data" / "corpora" / "stopwords" / "english").is_file()
    # Same text and seed in another process (another PYTHONHASHSEED): the same perturbation.
    for kind in kinds:
        assert result["outputs"][kind] == perturber(kind)(TEXT, 7, "Paris"), kind


# textattack 0.3.11's modules that import flair at import time (evalsuite.probes.adversarial.flair_stub).
FLAIR_IMPORTERS = (
    "textattack/shared/utils/strings.py",
    "textattack/shared/attacked_text.py",
    "textattack/constraints/grammaticality/part_of_speech.py",
)


def test_textattack_still_imports_flair_so_the_stub_is_still_needed() -> None:
    """Fails loudly when a textattack release stops importing flair: then flair_stub (and the
    --no-deps install of textattack) can go; see docs/dependencies.md."""
    import importlib.util

    spec = importlib.util.find_spec("textattack")
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent.parent
    importers = [
        name for name in FLAIR_IMPORTERS if re.search(r"^import flair$", (root / name).read_text(), re.M)
    ]
    assert importers, (
        "textattack no longer imports flair at import time: remove "
        "evalsuite/probes/adversarial/flair_stub.py, install textattack with its dependencies again "
        "and update docs/dependencies.md"
    )


def test_flair_is_not_installed_and_textattack_imports_with_the_stub(tmp_path: Path) -> None:
    """A fresh interpreter: textattack imports through load_textattack with the stand-in flair only."""
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        from pathlib import Path
        assert importlib.util.find_spec("flair") is None, "flair is installed; the tested stack has none"
        from evalsuite.probes.adversarial.textattack_env import load_textattack
        load_textattack(Path({str(tmp_path)!r}))
        from evalsuite.probes.adversarial import flair_stub
        assert getattr(sys.modules["flair"], flair_stub.STUB_MARKER)
        from textattack.shared.utils import strings
        assert issubclass(strings.TextAttackFlairTokenizer, flair_stub.Tokenizer)
        try:
            strings.flair_tag(None)
        except flair_stub.FlairUnavailable:
            pass
        else:
            raise AssertionError("tagging should say flair is unavailable")
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
