"""What retrieval reads from a knowledge base: the narrow read side it searches through.

``kbchat.kb.knowledge_base.KnowledgeBase`` implements it; retrieval never reaches into a
knowledge base's catalog, indexes or record, so any vector store backend serves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from kbchat.embed.base import Embedder
from kbchat.embed.chit_chat import ChitChat
from kbchat.store.base import Ids
from kbchat.store.bm25 import LexicalIndex
from kbchat.store.catalog import FileRecord, StoredChunk
from kbchat.types import Hit


class SearchableKB(Protocol):
    """One knowledge base as retrieval sees it."""

    @property
    def name(self) -> str: ...

    @property
    def embedder(self) -> Embedder:
        """The embedder that built the knowledge base's vectors."""
        ...

    @property
    def chit_chat(self) -> ChitChat:
        """The shared vectors of everyday phrases that relevance is measured against."""
        ...

    def files(self) -> list[FileRecord]: ...

    def nearest(
        self, vector: NDArray[np.float32], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` chunk ids nearest to a store query, with cosine scores, best first."""
        ...

    def stored_vectors(self, ids: Sequence[int]) -> tuple[Ids, NDArray[np.float32]]:
        """The stored vectors of those ``ids`` that exist: (found ids, (n, dim) float32)."""
        ...

    def lexical(self) -> LexicalIndex:
        """The BM25 index, in step with the catalog."""
        ...

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """The stored chunks of those ``ids`` that exist, by id."""
        ...

    def chunk_ids_for_files(
        self, names: Sequence[str], *, pages: tuple[int, int] | None = None
    ) -> Ids:
        """The ids of the chunks of files ``names``, optionally on pages FIRST..LAST."""
        ...

    def to_hit(self, row: StoredChunk, score: float) -> Hit:
        """A search hit for a stored chunk of this knowledge base."""
        ...
