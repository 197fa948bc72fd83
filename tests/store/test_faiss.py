from pathlib import Path

import numpy as np
import pytest

from kbchat.errors import BackendError
from kbchat.store.base import VectorStore
from kbchat.store.faiss import FaissStore
from kbchat.testing.contracts import VectorStoreContract


class TestFaissContract(VectorStoreContract):
    def make_store(self, tmp_path: Path, dim: int) -> VectorStore:
        return FaissStore(tmp_path / "v.faiss", dim)

    def reopen(self, store: VectorStore, tmp_path: Path) -> VectorStore | None:
        return FaissStore(tmp_path / "v.faiss", store.dim)


def test_corrupt_index_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "v.faiss"
    path.write_bytes(b"not an index")
    with pytest.raises(BackendError, match="cannot read vector index"):
        FaissStore(path, 8)


def test_dimension_mismatch_on_reopen(tmp_path: Path) -> None:
    store = FaissStore(tmp_path / "v.faiss", 8)
    store.add(np.array([1], dtype=np.int64), np.ones((1, 8), dtype=np.float32) / np.sqrt(8))
    store.persist()
    with pytest.raises(BackendError, match="dimension 8, expected 16"):
        FaissStore(tmp_path / "v.faiss", 16)
