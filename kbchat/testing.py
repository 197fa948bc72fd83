"""Deterministic fakes for tests (shipped so that users' own tests can use them too)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kbchat.embed.base import Vectors, normalise
from kbchat.store.base import VectorStore

_TOKEN = re.compile(r"[\w]+|[^\w\s]", re.UNICODE)


class HashEmbedder:
    """Bag of hashed words and CJK characters: fast, deterministic, roughly lexical.

    Texts that share words get similar vectors, which is enough to test ranking logic.
    """

    def __init__(self, dim: int = 64, **_: object) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self.dim = dim
        self.name = f"hash-{dim}"

    def _features(self, text: str) -> list[str]:
        features: list[str] = []
        for token in _TOKEN.findall(text.lower()):
            if any("\u4e00" <= ch <= "\u9fff" for ch in token):
                features.extend(token)
            else:
                features.append(token)
        return features

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                matrix[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        return normalise(matrix)


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
