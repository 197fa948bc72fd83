"""Passages that translate one another: on a bilingual knowledge base the copy in the
question's language goes into the prompt, not its translation.

A knowledge base often holds the same document in Chinese and in English (``faq.txt`` and
``faq.zh.txt``). Both copies are found for a question in either language; the passage in the
question's language is put first (``rag.same_language_first``), but the 0.5B model still
copied the other one: "如何更新知识库？" was answered half in English ("新文件是添加， changed文件
re-indexed") and cited ``faq.txt``. A translation adds nothing the same-language copy lacks,
so it is left out of the prompt.

Two passages are copies when the cross-lingual parts of a composite embedder (``e5+use``:
USE, ``CompositeEmbedder.parts[1:]``, the parts that rank passages across languages) put them
within ``TRANSLATION_COSINE``. The first part (mE5) is no judge of that: it put every Chinese
FAQ entry at 0.81-0.91 from every English one. Other embedders are not used for this.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from kbchat.embed.composite import CompositeEmbedder
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.text import Language
from kbchat.types import Hit

TRANSLATION_COSINE = 0.75
"""USE cosine at or above which two passages in different languages are copies of one
text. On the sample KB's FAQ (2026-12-02) the Chinese entries and their English translations
were 0.65-0.90 apart; an entry and any other entry at most 0.62."""

Key = tuple[str, int]
"""A passage: its knowledge base and chunk id."""


def without_translations(
    hits: Sequence[Hit], language: Language, kbs: Sequence[KnowledgeBase]
) -> list[Hit]:
    """``hits`` (order kept) without the passages in another language than ``language`` that
    translate a passage in ``language`` of another file among them (see the module notes).

    Hits of knowledge bases whose embedder is not composite are kept as they are.
    """
    languages = {hit.language for hit in hits}
    if language not in languages or languages == {language}:
        return list(hits)
    return translations_dropped(hits, language, cross_lingual_vectors(hits, kbs))


def translations_dropped(
    hits: Sequence[Hit], language: Language, vectors: Mapping[Key, np.ndarray]
) -> list[Hit]:
    """``without_translations`` given each passage's unit cross-lingual vector (passages
    without one are kept)."""
    ours = [hit.language == language for hit in hits]
    same = [h for h, own in zip(hits, ours, strict=True) if own and (h.kb, h.chunk_id) in vectors]

    def translates(hit: Hit) -> bool:
        vector = vectors.get((hit.kb, hit.chunk_id))
        return vector is not None and any(
            s.file != hit.file and float(vector @ vectors[(s.kb, s.chunk_id)]) >= TRANSLATION_COSINE
            for s in same
        )

    return [hit for hit, own in zip(hits, ours, strict=True) if own or not translates(hit)]


def cross_lingual_vectors(
    hits: Sequence[Hit], kbs: Sequence[KnowledgeBase]
) -> dict[Key, np.ndarray]:
    """Unit vectors of the cross-lingual parts of the stored vectors of ``hits``, for hits of
    knowledge bases with a composite embedder."""
    by_kb: dict[str, list[int]] = defaultdict(list)
    for hit in hits:
        by_kb[hit.kb].append(hit.chunk_id)
    found: dict[Key, np.ndarray] = {}
    for kb in kbs:
        embedder = kb.embedder
        if kb.name not in by_kb or not isinstance(embedder, CompositeEmbedder):
            continue
        ids, stored = kb.stored_vectors(by_kb[kb.name])
        if not len(ids):
            continue
        cross = np.hstack(embedder.split(stored)[1:])
        norms = np.linalg.norm(cross, axis=1, keepdims=True)
        cross = cross / np.where(norms > 0, norms, 1.0)
        for chunk_id, vector in zip(ids.tolist(), cross, strict=True):
            found[(kb.name, int(chunk_id))] = vector
    return found
