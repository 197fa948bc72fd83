"""Knowledge bases over any registered vector store: chosen at creation, dropped with the KB."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pytest

from kbchat.config import load_settings
from kbchat.errors import ConfigError
from kbchat.kb.library import Library
from kbchat.registry import vector_stores
from kbchat.retrieve.search import SearchOptions, search
from kbchat.store.base import Ids
from kbchat.store.catalog import Catalog
from kbchat.store.faiss import FaissStore


class RecordingStore(FaissStore):
    """FAISS that records how each store was opened and which calls it got."""

    opened: ClassVar[list[dict[str, Any]]] = []
    calls: ClassVar[list[str]] = []

    @classmethod
    def open(cls, *, directory: Path, collection: str, dim: int, url: str | None) -> Self:
        cls.opened.append({"directory": directory, "collection": collection, "url": url})
        return super().open(directory=directory, collection=collection, dim=dim, url=url)

    def get(self, ids: Ids) -> tuple[Ids, np.ndarray]:
        self.calls.append("get")
        return super().get(ids)

    def drop(self) -> None:
        self.calls.append("drop")
        super().drop()


@pytest.fixture
def recording() -> Iterator[type[RecordingStore]]:
    RecordingStore.opened.clear()
    RecordingStore.calls.clear()
    vector_stores.register("recording", RecordingStore)
    yield RecordingStore
    vector_stores.unregister("recording")


@pytest.fixture
def library() -> Iterator[Library]:
    lib = Library(load_settings(embedder={"backend": "hash"}, store={"url": "db://secret@host"}))
    yield lib
    lib.close()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "kettle.txt").write_text("The K3 kettle has a two year warranty.", encoding="utf-8")
    (root / "tea.txt").write_text("Brew green tea at 80 degrees.", encoding="utf-8")
    return root


def test_a_new_kb_uses_the_configured_backend_and_remembers_it(
    library: Library, recording: type[RecordingStore]
) -> None:
    assert library.create("plain").store == "faiss"
    record = library.create("other", store="recording")
    assert record.store == "recording"
    kb = library.get("other")
    assert recording.opened == [
        {
            "directory": kb.directory,
            "collection": f"kb_{record.id}",
            "url": "db://secret@host",
        }
    ]
    reopened = Library(load_settings(embedder={"backend": "hash"}))
    assert reopened.catalog.get_kb("other").store == "recording"
    reopened.close()


def test_an_unknown_backend_is_refused_naming_the_known_ones(library: Library) -> None:
    with pytest.raises(ConfigError, match="unknown vector store backend 'nope'; known: .*faiss"):
        library.create("x", store="nope")
    assert "x" not in library.names()


def test_search_rescores_with_the_stores_vectors_not_the_catalogs(
    library: Library,
    recording: type[RecordingStore],
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library.create("kb", store="recording")
    kb = library.get("kb")
    kb.add([docs])
    before = search([kb], "kettle warranty", SearchOptions(threshold=0.0))

    def no_sql_vectors(*_: object, **__: object) -> None:
        raise AssertionError("retrieval read vectors from the catalog")

    monkeypatch.setattr(Catalog, "iter_vectors", no_sql_vectors)
    recording.calls.clear()
    hits = search([kb], "kettle warranty", SearchOptions(threshold=0.0))
    assert "get" in recording.calls
    assert hits[0].file == "kettle.txt"
    assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in before]


def test_drop_and_rebuild_drop_the_store(
    library: Library, recording: type[RecordingStore], docs: Path
) -> None:
    library.create("kb", store="recording")
    kb = library.get("kb")
    kb.add([docs])
    kb.rebuild()
    assert recording.calls.count("drop") == 1
    assert kb.index.fresh_vectors().count() == 2
    library.drop("kb")
    assert recording.calls.count("drop") == 2
    assert not kb.directory.exists()


def test_a_kb_not_open_is_dropped_through_its_store(
    library: Library, recording: type[RecordingStore]
) -> None:
    library.create("kb", store="recording")
    library.drop("kb")
    assert recording.calls == ["drop"]


def test_catalogs_from_before_pluggable_stores_keep_their_kbs_on_faiss(
    library: Library, docs: Path
) -> None:
    library.create("old")
    library.get("old").add([docs])
    library.close()
    database = Path(library.settings.home) / "catalog.db"
    with sqlite3.connect(database) as conn:
        conn.execute("ALTER TABLE kbs DROP COLUMN store")
    again = Library(load_settings(embedder={"backend": "hash"}))
    record = again.catalog.get_kb("old")
    assert record.store == "faiss"
    hits = search([again.get("old")], "kettle warranty", SearchOptions(threshold=0.0))
    assert hits[0].file == "kettle.txt"
    assert again.create("new").store == "faiss"
    again.close()


def test_a_kb_whose_backend_is_gone_names_it(
    library: Library, recording: type[RecordingStore]
) -> None:
    library.create("kb", store="recording")
    vector_stores.unregister("recording")
    fresh = Library(library.settings)
    with pytest.raises(ConfigError, match="knowledge base 'kb' keeps its vectors in 'recording'"):
        fresh.get("kb")
    vector_stores.register("recording", RecordingStore)
    assert fresh.get("kb").record.store == "recording"
    fresh.close()
