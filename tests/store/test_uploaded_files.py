"""Uploaded files are kept per owner: bytes on disk, rows in the catalog database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from kbchat.errors import BadInput, NotFound
from kbchat.store.uploaded_files import UploadedFileStore


@pytest.fixture
def store(tmp_path: Path) -> UploadedFileStore:
    return UploadedFileStore(create_engine(f"sqlite:///{tmp_path / 'c.db'}"), tmp_path / "files")


def test_an_owner_sees_only_their_files(store: UploadedFileStore) -> None:
    mine = store.add("ann", "../../etc/notes.txt", "user_data", b"hello")
    assert mine.filename == "notes.txt"  # folders in the name are dropped
    assert store.content("ann", mine.id) == (mine, b"hello")
    with pytest.raises(NotFound, match=mine.id):
        store.get("bob", mine.id)
    with pytest.raises(NotFound):
        store.delete(None, mine.id)
    assert store.list("bob") == [] and store.list("ann") == [mine]
    store.delete("ann", mine.id)
    assert store.list("ann") == [] and list(store.folder.iterdir()) == []


def test_empty_and_nameless_files_are_refused(store: UploadedFileStore) -> None:
    with pytest.raises(BadInput, match="a.txt: the file is empty"):
        store.add(None, "a.txt", "user_data", b"")
    with pytest.raises(BadInput, match="no filename"):
        store.add(None, "a/..", "user_data", b"x")
