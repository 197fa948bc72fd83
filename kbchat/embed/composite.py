"""Several embedders as one: each text's vector is the concatenation of theirs.

Why: no single offline embedder wins everywhere. multilingual-e5 ranks best when question
and passage share a language; multilingual USE ranks best across languages (a Chinese
question about an English passage). A knowledge base built with ``e5+use`` stores both
vectors in one row, and retrieval reads each part on its own (``part_cosines``): the first
embedder ranks passages in the question's language, all of them together rank the others.

The concatenated vector is scaled by 1/sqrt(parts), so it is unit-length like any other
embedder's and its plain cosine is the mean of the parts' cosines (what a caller of
``/v1/embeddings`` or a plain vector search gets).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from kbchat.embed.base import Embedder, Vectors, normalise

SEPARATOR = "+"


class CompositeEmbedder:
    """Concatenates the unit vectors of ``parts`` (two or more embedders)."""

    def __init__(self, parts: Sequence[Embedder]) -> None:
        if len(parts) < 2:
            raise ValueError(f"a composite embedder needs two or more parts, got {len(parts)}")
        self.parts = list(parts)
        self.name = SEPARATOR.join(part.name for part in self.parts)
        self.dim = sum(part.dim for part in self.parts)
        self._scale = 1.0 / math.sqrt(len(self.parts))
        bounds = np.cumsum([0, *(part.dim for part in self.parts)])
        self.slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        """Each part's unit vectors side by side, scaled to unit length overall."""
        blocks = [normalise(part.embed_batch(texts, is_query=is_query)) for part in self.parts]
        joined = np.hstack(blocks) * np.float32(self._scale)
        return np.ascontiguousarray(joined, dtype=np.float32)

    def split(self, vectors: np.ndarray) -> list[np.ndarray]:
        """The parts' own unit vectors, from composite vectors (one row or a matrix)."""
        return [vectors[..., s] / self._scale for s in self.slices]

    def part_cosines(self, matrix: np.ndarray, query: np.ndarray) -> list[np.ndarray]:
        """Cosine similarity of every row of ``matrix`` to ``query``, per part."""
        rows, wanted = self.split(matrix), self.split(query)
        return [r @ q for r, q in zip(rows, wanted, strict=True)]

    def weighted_query(self, query: np.ndarray, weights: Sequence[float]) -> np.ndarray:
        """A query whose inner product with a stored vector is sum(weight_i * cosine_i)."""
        weighted = np.array(query, dtype=np.float32, copy=True)
        for s, weight in zip(self.slices, weights, strict=True):
            weighted[s] *= np.float32(weight / self._scale**2)
        return weighted
