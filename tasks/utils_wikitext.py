"""Helpers for ``wikitext2_local.yaml``: WikiText-2 test text grouped into articles.

:func:`load` follows the grouping of ``EleutherAI/wikitext_document_level`` (the dataset lm-eval's
``wikitext`` task reads): a new article starts at a top-level heading line `` = Title = `` (a single
``=`` on each side; section headings ``= = ... = =`` do not split), lines are joined with ``"\\n"``
unchanged, and empty leading chunks are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets


def _is_article_heading(line: str) -> bool:
    rline = line.replace("= = =", "===").replace("= =", "==").strip()
    return rline.startswith("= ") and rline.endswith(" =")


def split_articles(text: str) -> list[str]:
    """Split a WikiText file into article strings (``page`` in the document-level dataset)."""
    pages: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        if _is_article_heading(line):
            page = "\n".join(current)
            if page.strip():
                pages.append(page)
            current = []
        current.append(line)
    page = "\n".join(current)
    if page.strip():
        pages.append(page)
    return pages


def load(path: str, **kwargs: Any) -> datasets.DatasetDict:
    """``custom_dataset`` for lm-eval: the articles of ``path`` as a ``test`` split of ``{page}`` docs.

    Extra keyword arguments (lm-eval passes the task metadata, e.g. ``pretrained``) are ignored.
    """
    pages = split_articles(Path(path).read_text(encoding="utf-8"))
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict({"page": pages})})
