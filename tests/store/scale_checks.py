"""Checks beyond the VectorStore contract that the scale-out stores (pgvector, Milvus) pass.

``get`` and ``drop``, re-adding, exact deletion and allow-lists on a larger store; a mixin
like ``VectorStoreContract``, whose ``make_store`` and ``reopen`` it uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kbchat.testing.contracts import VectorStoreContract


class ScaleStoreChecks(VectorStoreContract):
    def test_get_returns_stored_vectors_in_the_order_asked(self, tmp_path: Path) -> None:
        store: Any = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(5, self.dim)
        store.add(np.arange(10, 15, dtype=np.int64), vectors)
        ids, found = store.get(np.array([14, 99, 10, 12], dtype=np.int64))
        assert ids.tolist() == [14, 10, 12]
        assert found.dtype == np.float32
        assert found.shape == (3, self.dim)
        np.testing.assert_allclose(found, vectors[[4, 0, 2]], atol=1e-6)
        none_ids, none = store.get(np.zeros(0, dtype=np.int64))
        assert none_ids.tolist() == []
        assert none.shape == (0, self.dim)

    def test_re_adding_the_same_vectors_changes_nothing(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(12, self.dim)
        ids = np.arange(12, dtype=np.int64)
        store.add(ids, vectors)
        before = store.search(vectors[5], 4)
        store.add(ids, vectors)
        assert store.count() == 12
        assert sorted(store.ids().tolist()) == ids.tolist()
        assert [i for i, _ in store.search(vectors[5], 4)] == [i for i, _ in before]

    def test_repeated_id_in_one_add_keeps_the_last_vector(self, tmp_path: Path) -> None:
        store: Any = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(3, self.dim)
        store.add(np.array([7, 8, 7], dtype=np.int64), vectors)
        assert store.count() == 2
        np.testing.assert_allclose(store.get(np.array([7]))[1][0], vectors[2], atol=1e-6)

    def test_delete_removes_exactly_the_given_ids(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(50, self.dim)
        ids = np.arange(1000, 1050, dtype=np.int64)
        store.add(ids, vectors)
        gone = ids[::3]
        store.delete(gone)
        assert sorted(store.ids().tolist()) == sorted(set(ids.tolist()) - set(gone.tolist()))
        hits = store.search(vectors[0], 50)
        assert {i for i, _ in hits}.isdisjoint(gone.tolist())
        assert len(hits) == 50 - len(gone)

    def test_negative_and_large_ids_round_trip(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        ids = np.array([-(2**63), -1, 2**63 - 1], dtype=np.int64)
        vectors = self._vectors(3, self.dim)
        store.add(ids, vectors)
        assert sorted(store.ids().tolist()) == sorted(ids.tolist())
        assert store.search(vectors[2], 1)[0][0] == 2**63 - 1

    def test_allow_list_finds_the_best_allowed_ids(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(300, self.dim, seed=3)
        store.add(np.arange(300, dtype=np.int64), vectors)
        allowed = np.arange(1, 300, 7, dtype=np.int64)
        query = vectors[0]
        exact = allowed[np.argsort(-(vectors[allowed] @ query))][:5]
        hits = store.search(query, 5, allowed=allowed)
        assert [i for i, _ in hits] == exact.tolist()

    def test_scores_are_cosine_similarities(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(30, self.dim, seed=5)
        store.add(np.arange(30, dtype=np.int64), vectors)
        query = vectors[4]
        for i, score in store.search(query, 10):
            assert abs(score - max(float(vectors[i] @ query), 0.0)) < 1e-4

    def test_drop_removes_the_collection(self, tmp_path: Path) -> None:
        store: Any = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(4, self.dim)
        store.add(np.arange(4, dtype=np.int64), vectors)
        store.persist()
        store.drop()
        again = self.reopen(store, tmp_path)
        assert again is not None
        assert again.count() == 0
        assert again.search(vectors[0], 3) == []
