from pathlib import Path

import numpy as np
import pytest

from kbchat.errors import BackendError
from kbchat.registry import open_vector_store
from kbchat.store.base import VectorStore
from kbchat.store.faiss import FILE_NAME, FaissStore
from kbchat.testing.contracts import VectorStoreContract


class TestFaissContract(VectorStoreContract):
    def make_store(self, tmp_path: Path, dim: int) -> VectorStore:
        return FaissStore.open(directory=tmp_path, collection="kb_1", dim=dim, url=None)


def test_registered_as_faiss(tmp_path: Path) -> None:
    store = open_vector_store("faiss", directory=tmp_path, collection="kb_1", dim=4)
    assert isinstance(store, FaissStore) and store.path == tmp_path / FILE_NAME


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


def test_a_knowledge_base_store_opens_empty_over_a_damaged_file(tmp_path: Path) -> None:
    # The file is a cache of the catalog's vectors: kept aside for a look, never fatal.
    (tmp_path / FILE_NAME).write_bytes(b"not an index")
    store = FaissStore.open(directory=tmp_path, collection="kb_1", dim=8, url=None)
    assert store.count() == 0
    assert (tmp_path / (FILE_NAME + ".damaged")).read_bytes() == b"not an index"
