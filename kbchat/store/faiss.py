"""FAISS on disk: an exact inner-product index with ids, saved by atomic replace."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from kbchat.errors import BackendError
from kbchat.store.base import Ids, as_batch

logger = logging.getLogger(__name__)

FILE_NAME = "vectors.faiss"
"""The index file in a knowledge base's folder."""


class FaissStore:
    """Exact cosine search over L2-normalised vectors (IndexFlatIP behind an id map).

    Exact search keeps recall at 100% of what the embedder gives; at 20k x 512 a query
    costs a few milliseconds on two cores, so approximate indexes are not worth their
    recall loss at the sizes one machine serves.
    """

    def __init__(self, path: Path, dim: int) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        import faiss  # its thread count is the process's: kbchat.runtime sets it

        self._faiss = faiss
        self.path = path
        self.dim = dim
        if path.exists():
            try:
                self._index = faiss.read_index(str(path))
            except RuntimeError as exc:
                raise BackendError(f"cannot read vector index {path}: {exc}") from exc
            if self._index.d != dim:
                raise BackendError(
                    f"vector index {path} has dimension {self._index.d}, expected {dim}"
                )
        else:
            self._index = self._empty()

    @classmethod
    def open(cls, *, directory: Path, collection: str, dim: int, url: str | None) -> Self:
        """The store of one knowledge base: ``vectors.faiss`` in its folder.

        The file is a cache of the catalog's vectors, so a damaged file or one of another
        dimension is moved aside (``.damaged``) with a warning and the store starts empty;
        the knowledge base refills it from the catalog. ``collection`` and ``url`` are not
        used: the folder is the knowledge base's own.
        """
        path = directory / FILE_NAME
        try:
            return cls(path, dim)
        except BackendError as exc:
            logger.warning("%s; starting an empty index (the catalog refills it)", exc)
            os.replace(path, path.with_name(path.name + ".damaged"))
            return cls(path, dim)

    def _empty(self) -> Any:
        return self._faiss.IndexIDMap2(self._faiss.IndexFlatIP(self.dim))

    def add(self, ids: Ids, vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        ids, matrix = as_batch(ids, vectors, self.dim)
        self.delete(ids)
        self._index.add_with_ids(matrix, ids)

    def delete(self, ids: Ids) -> None:
        if len(ids) == 0 or self._index.ntotal == 0:
            return
        selector = self._faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        self._index.remove_ids(selector)

    def search(
        self, vector: NDArray[np.float32], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        if self._index.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        params = None
        if allowed is not None:
            selector = self._faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = self._faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, ids = self._index.search(query, min(k, self._index.ntotal), params=params)
        return [
            (int(i), float(min(max(s, 0.0), 1.0)))
            for i, s in zip(ids[0], scores[0], strict=True)
            if i >= 0
        ]

    def get(self, ids: Ids) -> tuple[Ids, NDArray[np.float32]]:
        wanted = np.ascontiguousarray(ids, dtype=np.int64)
        if len(wanted) == 0 or self._index.ntotal == 0:
            return wanted[:0], np.zeros((0, self.dim), dtype=np.float32)
        try:  # all known: one call (~15 us per 100 ids, whatever the store's size)
            vectors: NDArray[np.float32] = self._index.reconstruct_batch(wanted)
            return wanted, vectors
        except RuntimeError:  # some unknown: id by id, skipping those
            pass
        found: list[int] = []
        rows: list[NDArray[np.float32]] = []
        for chunk_id in wanted.tolist():
            try:
                rows.append(self._index.reconstruct(chunk_id))
            except RuntimeError:
                continue
            found.append(chunk_id)
        if not found:
            return wanted[:0], np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(found, dtype=np.int64), np.vstack(rows).astype(np.float32)

    def ids(self) -> Ids:
        id_map = self._index.id_map  # type: ignore[attr-defined]  # IndexIDMap2 has it
        ids: np.ndarray = self._faiss.vector_to_array(id_map).astype(np.int64)
        return ids

    def count(self) -> int:
        return int(self._index.ntotal)

    def persist(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        self._faiss.write_index(self._index, str(tmp))
        os.replace(tmp, self.path)

    def drop(self) -> None:
        self.path.unlink(missing_ok=True)
        self._index = self._empty()
