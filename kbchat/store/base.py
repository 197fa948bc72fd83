"""The VectorStore protocol every backend implements, and how a backend is opened."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Ids = NDArray[np.int64]


@runtime_checkable
class VectorStore(Protocol):
    """Vectors by int64 id. Scores are cosine similarities clipped to [0, 1], higher is better.

    Metadata lives in the catalog, which also keeps a copy of every vector: a store that
    falls behind (a crash, another process) is refilled from it. ``search`` narrows to an
    allow-list of ids when given one.
    """

    dim: int

    @classmethod
    def open(cls, *, directory: Path, collection: str, dim: int, url: str | None) -> Self:
        """Open (creating if needed) one knowledge base's store.

        Args:
            directory: the knowledge base's own data folder (file-based stores keep files there).
            collection: a unique, backend-safe name for this knowledge base's vectors (``kb_<id>``).
            dim: the vector dimension; a store holding another dimension is an error.
            url: where a server store runs (setting ``store.url``); None for file stores.

        Raises:
            BackendError: the store cannot be reached or read.
        """
        ...

    def add(self, ids: Ids, vectors: NDArray[np.float32]) -> None:
        """Insert ``(n, dim)`` vectors; an id already present is replaced."""
        ...

    def delete(self, ids: Ids) -> None:
        """Remove ids; unknown ids are ignored."""
        ...

    def search(
        self, vector: NDArray[np.float32], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest ids with their scores, best first."""
        ...

    def get(self, ids: Ids) -> tuple[Ids, NDArray[np.float32]]:
        """The stored vectors of those ``ids`` that exist, in the order given.

        Returns:
            ``(found ids, (len(found), dim) float32)``; unknown ids are skipped.
        """
        ...

    def ids(self) -> Ids:
        """Every id in the store."""
        ...

    def count(self) -> int: ...

    def persist(self) -> None:
        """Make the current content durable (atomic replace where the backend is a file)."""
        ...

    def drop(self) -> None:
        """Remove the whole store (its files or collection); opening it again gives an empty one.

        Used when a knowledge base is deleted or rebuilt; dropping a store that was never
        persisted, or twice, is not an error.
        """
        ...


def as_batch(ids: Ids, vectors: NDArray[np.float32], dim: int) -> tuple[Ids, NDArray[np.float32]]:
    """``ids`` and ``vectors`` as contiguous int64 / float32 arrays for an ``add``.

    Raises:
        ValueError: ``vectors`` is not ``(len(ids), dim)``.
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.shape != (len(ids), dim):
        raise ValueError(f"vectors shape {matrix.shape} does not match {(len(ids), dim)}")
    return ids, matrix


def unique_last(ids: Ids, vectors: NDArray[np.float32]) -> tuple[Ids, NDArray[np.float32]]:
    """Drop repeated ids, keeping each one's last vector (as adding them in order would)."""
    _, first_from_end = np.unique(ids[::-1], return_index=True)
    keep = np.sort(len(ids) - 1 - first_from_end)
    return ids[keep], vectors[keep]
