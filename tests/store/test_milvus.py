"""The Milvus store on Milvus Lite (embedded); the same code talks to a server by URI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kbchat.errors import BackendError
from kbchat.store.milvus import MilvusStore, describe_uri, is_local
from tests.store.scale_checks import ScaleStoreChecks


class TestMilvusContract(ScaleStoreChecks):
    @pytest.fixture(autouse=True)
    def _close(self) -> Iterator[None]:
        self.opened: list[MilvusStore] = []
        yield
        for store in self.opened:
            store.close()

    def make_store(self, tmp_path: Path, dim: int) -> Any:
        store = MilvusStore.open(directory=tmp_path, collection="kb_1", dim=dim, url=None)
        self.opened.append(store)
        return store

    def reopen(self, store: Any, tmp_path: Path) -> Any:
        store.close()  # the last handle stops Milvus Lite, so the reopen reads the disk
        return self.make_store(tmp_path, store.dim)


def unit(n: int, dim: int) -> np.ndarray:
    rows = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    normalised: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


def test_two_collections_share_one_lite_database(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    first, second = MilvusStore(path, "kb_a", 8), MilvusStore(path, "kb_b", 8)
    try:
        first.add(np.arange(3, dtype=np.int64), unit(3, 8))
        assert (first.count(), second.count()) == (3, 0)
        second.drop()  # the other store keeps working
        assert first.count() == 3
    finally:
        first.close()


def test_dimension_mismatch_on_reopen(tmp_path: Path) -> None:
    store = MilvusStore(str(tmp_path / "m.db"), "kb", 8)
    store.close()
    with pytest.raises(BackendError, match="has dimension 8, expected 16"):
        MilvusStore(str(tmp_path / "m.db"), "kb", 16)


def test_unreachable_server_is_one_clear_line() -> None:
    with pytest.raises(BackendError) as caught:
        MilvusStore("http://root:s3cret@127.0.0.1:9", "kb", 8, timeout=2)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Milvus at http://root@127.0.0.1:9:")
    assert "check that the server is running" in message
    assert "s3cret" not in message


def test_collection_name_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="collection must be letters"):
        MilvusStore(str(tmp_path / "m.db"), "kb-1 or 1==1", 8)


def test_uri_kinds() -> None:
    assert is_local("/data/kb/milvus.db")
    assert not is_local("http://milvus:19530")
    assert describe_uri("https://u:p@milvus.example:443") == "https://u@milvus.example:443"
    assert describe_uri("http://milvus:19530") == "http://milvus:19530"


def test_lite_database_held_by_another_process_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from kbchat.store.milvus import MilvusStore; "
            f"s = MilvusStore({str(path)!r}, 'kb', 8); print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(BackendError) as caught:
            MilvusStore(str(path), "kb", 8)
        message = str(caught.value)
        assert "\n" not in message
        assert str(path) in message
        assert "no other process has it open" in message
    finally:
        holder.communicate(input="", timeout=60)


def test_lite_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(BackendError, match="cannot create the folder of Milvus Lite database"):
        MilvusStore(str(tmp_path / "file" / "m.db"), "kb", 8)
