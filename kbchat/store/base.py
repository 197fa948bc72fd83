"""The VectorStore protocol every backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Ids = NDArray[np.int64]


@runtime_checkable
class VectorStore(Protocol):
    """Vectors by int64 id. Scores are cosine similarities clipped to [0, 1], higher is better.

    Metadata lives in the catalog; ``search`` narrows to an allow-list of ids when given one.
    """

    dim: int

    def add(self, ids: Ids, vectors: NDArray[np.float32]) -> None:
        """Insert vectors; an id already present is replaced."""
        ...

    def delete(self, ids: Ids) -> None:
        """Remove ids; unknown ids are ignored."""
        ...

    def search(
        self, vector: NDArray[np.float32], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest ids with their scores, best first."""
        ...

    def ids(self) -> Ids:
        """Every id in the store."""
        ...

    def count(self) -> int: ...

    def persist(self) -> None:
        """Make the current content durable (atomic replace where the backend is a file)."""
        ...


def unique_last(ids: Ids, vectors: NDArray[np.float32]) -> tuple[Ids, NDArray[np.float32]]:
    """Drop repeated ids, keeping each one's last vector (as adding them in order would)."""
    _, first_from_end = np.unique(ids[::-1], return_index=True)
    keep = np.sort(len(ids) - 1 - first_from_end)
    return ids[keep], vectors[keep]
