"""The Embedder protocol and the batching built on its one required method."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Vectors = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension.

    ``name`` identifies the model exactly (backend and model), so a knowledge base can
    refuse vectors from any other embedder.
    """

    name: str

    @property
    def dim(self) -> int:
        """Length of every vector (a remote embedder may ask its server on first use)."""
        ...

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        """Embed one batch; ``is_query`` selects query-side encoding where the model has one."""
        ...


def normalise(vectors: NDArray[np.floating]) -> Vectors:
    """L2-normalise rows; zero rows stay zero."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


def embed_texts(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    is_query: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> Vectors:
    """Embed any number of texts in batches; ``on_batch(n)`` reports progress."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    parts = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        vectors = embedder.embed_batch(batch, is_query=is_query)
        if vectors.shape != (len(batch), embedder.dim):
            raise ValueError(
                f"embedder {embedder.name} returned shape {vectors.shape}, "
                f"expected {(len(batch), embedder.dim)}"
            )
        parts.append(vectors)
        if on_batch is not None:
            on_batch(len(batch))
    return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)
