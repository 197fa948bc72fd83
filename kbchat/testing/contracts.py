"""Contract suites every backend of a kind passes; subclass one in a test module.

Modelled on haystack's ``testing/document_store.py``: the suite is a mixin whose ``test_*`` methods
pytest collects in the subclass, which only says how to build (and reopen) the backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kbchat.embed.base import normalise
from kbchat.store.base import VectorStore


class VectorStoreContract:
    """The contract every VectorStore backend passes; subclass it in a test module.

    Subclasses implement ``make_store(tmp_path, dim)`` (and ``reopen`` for persistent
    backends); pytest collects the ``test_*`` methods.
    """

    dim = 8

    def make_store(self, tmp_path: Path, dim: int) -> VectorStore:
        raise NotImplementedError

    def reopen(self, store: VectorStore, tmp_path: Path) -> VectorStore | None:
        """Open the persisted store again; None if the backend is not persistent."""
        return None

    @staticmethod
    def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
        return normalise(np.random.default_rng(seed).normal(size=(n, dim)))

    def test_empty_store_finds_nothing(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        assert store.count() == 0
        assert store.search(self._vectors(1, self.dim)[0], 3) == []

    def test_nearest_first_with_scores_in_unit_range(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(20, self.dim)
        store.add(np.arange(100, 120, dtype=np.int64), vectors)
        hits = store.search(vectors[7], 5)
        assert hits[0][0] == 107
        assert abs(hits[0][1] - 1.0) < 1e-4
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        opposite = store.search(-vectors[7], 20)
        assert all(0.0 <= s <= 1.0 for _, s in opposite)

    def test_delete_and_replace(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(10, self.dim)
        ids = np.arange(10, dtype=np.int64)
        store.add(ids, vectors)
        store.delete(np.array([3, 4, 999], dtype=np.int64))
        assert store.count() == 8
        assert 3 not in {i for i, _ in store.search(vectors[3], 10)}
        store.add(np.array([5], dtype=np.int64), vectors[3:4])
        assert store.count() == 8
        assert store.search(vectors[3], 1)[0][0] == 5
        assert sorted(store.ids().tolist()) == [0, 1, 2, 5, 6, 7, 8, 9]

    def test_allow_list_restricts_results(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(10, self.dim)
        store.add(np.arange(10, dtype=np.int64), vectors)
        hits = store.search(vectors[0], 5, allowed=np.array([2, 8], dtype=np.int64))
        assert {i for i, _ in hits} == {2, 8}
        assert store.search(vectors[0], 5, allowed=np.zeros(0, dtype=np.int64)) == []

    def test_persist_and_reopen(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(6, self.dim)
        store.add(np.arange(6, dtype=np.int64), vectors)
        store.persist()
        again = self.reopen(store, tmp_path)
        if again is None:
            return
        assert again.count() == 6
        assert again.search(vectors[2], 1)[0][0] == 2

    def test_rejects_bad_arguments(self, tmp_path: Path) -> None:
        import pytest

        store = self.make_store(tmp_path, self.dim)
        with pytest.raises(ValueError, match="k must be > 0"):
            store.search(self._vectors(1, self.dim)[0], 0)
        with pytest.raises(ValueError):
            store.add(np.arange(2, dtype=np.int64), self._vectors(3, self.dim))
