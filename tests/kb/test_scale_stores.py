"""Knowledge bases on PostgreSQL + pgvector and on Milvus Lite, through the library: add,
search, remove a file, rebuild and drop give the same results as on FAISS."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.config import load_settings
from kbchat.kb.library import Library
from kbchat.testing.postgres import TestPostgres

DOCS = {
    "kettle.txt": "The K3 kettle warranty lasts two years from the date of purchase.",
    "tea.txt": "Green tea is brewed at eighty degrees for two minutes.",
}


def round_trip(library: Library, store: str, root: Path) -> list[list[str]]:
    folder = root / "docs"
    folder.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    library.create("shop", store=store)
    kb = library.get("shop")
    kb.add([folder])
    seen = [[hit.file for hit in kb.search("kettle warranty", top_k=2)]]
    kb.remove(["tea.txt"])
    seen.append([hit.file for hit in kb.search("green tea", top_k=2)])
    kb.rebuild()
    seen.append([hit.file for hit in kb.search("kettle warranty", top_k=2)])
    library.drop("shop")
    assert "shop" not in library.names()
    return seen


@pytest.mark.postgres
def test_pgvector_knowledge_base(postgres: TestPostgres, tmp_path: Path) -> None:
    library = Library(load_settings(embedder={"backend": "hash"}, store={"url": postgres.url}))
    faiss = Library(load_settings(embedder={"backend": "hash"}, home=tmp_path / "faiss"))
    try:
        got = round_trip(library, "pgvector", tmp_path)
        assert got == round_trip(faiss, "faiss", tmp_path)
        assert got[0][0] == "kettle.txt" and got[1] == ["kettle.txt"]
    finally:
        library.close()
        faiss.close()


def test_milvus_lite_knowledge_base(tmp_path: Path) -> None:
    library = Library(load_settings(embedder={"backend": "hash"}))
    faiss = Library(load_settings(embedder={"backend": "hash"}, home=tmp_path / "faiss"))
    try:
        got = round_trip(library, "milvus", tmp_path)
        assert got == round_trip(faiss, "faiss", tmp_path)
    finally:
        library.close()
        faiss.close()
