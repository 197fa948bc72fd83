"""A knowledge base whose BM25 tokens an older tokenizer made is brought up to date when it is
opened, by readers and writers alike, without re-embedding; BM25 then finds accented names."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rjieba
from sqlalchemy import event, select, update

from kbchat.kb.knowledge_base import KnowledgeBase, write_lock
from kbchat.kb.library import Library
from kbchat.retrieve.search import SearchOptions, retrieve
from kbchat.store.bm25 import STOPWORDS, TOKENIZER_VERSION, LexicalIndex, chunk_tokens, tokenize
from kbchat.store.catalog import Catalog, chunks, kbs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "parques.md").write_text(
        "# Parques\n\nEl Parque Nacional de Doñana está en Andalucía, junto al Guadalquivir.\n",
        "utf-8",
    )
    (root / "kettle.txt").write_text("The warranty of the K3 kettle is two years.", "utf-8")
    (root / "保修.md").write_text("# 保修政策\n\n本产品保修期为两年。\n", "utf-8")
    (root / "ana.txt").write_text("Ana ordered the green tea; Ana likes it.", "utf-8")
    return root


def version_1_tokens(text: str, headings: list[str]) -> str:
    """What tokenize made before version 2: jieba cuts an accented word up ("do", "ñ", "ana")."""
    words = rjieba.cut_for_search(" ".join([*headings, text]).lower())
    kept = [w for w in words if w.strip() and any(c.isalnum() for c in w) and w not in STOPWORDS]
    return " ".join(kept)


def make_version_1(kb: KnowledgeBase) -> None:
    """Turn ``kb`` into one an earlier kbchat built: version-1 tokens and version in the catalog,
    and a BM25 index of those tokens saved for the current generation."""
    catalog = kb.catalog
    with catalog.engine.begin() as conn:
        rows = conn.execute(
            select(chunks.c.id, chunks.c.text, chunks.c.headings).where(
                chunks.c.kb_id == kb.record.id
            )
        ).all()
        for chunk_id, body, headings in rows:
            old = version_1_tokens(body, json.loads(headings))
            conn.execute(update(chunks).where(chunks.c.id == chunk_id).values(tokens=old))
        conn.execute(update(kbs).where(kbs.c.id == kb.record.id).values(tokenizer=1))
    LexicalIndex.build(catalog.iter_tokens(kb.record.id)).save(kb.directory / "bm25")
    state = json.loads((kb.directory / "state.json").read_text())
    assert state["lexical"] == catalog.generation(kb.record.id)


def old_kb(library: Library, docs: Path, name: str = "old") -> KnowledgeBase:
    library.create(name)
    kb = library.get(name)
    kb.add([docs])
    make_version_1(kb)
    saved = LexicalIndex.load(kb.directory / "bm25")
    assert saved.search(tokenize("Doñana"), 3) == []  # what an old knowledge base answers today
    return kb


def bm25_files(kb: KnowledgeBase, query: str) -> list[str]:
    """The files BM25 alone finds for ``query``, best first (the read path of ask and serve)."""
    hits = retrieve([kb], query, SearchOptions(mode="bm25", threshold=0.0)).hits
    return [hit.file for hit in hits]


def catalog_state(catalog: Catalog, kb_id: int) -> dict[int, tuple[str, bytes]]:
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(chunks.c.id, chunks.c.tokens, chunks.c.vector).where(chunks.c.kb_id == kb_id)
        ).all()
    return {int(r[0]): (r[1], bytes(r[2])) for r in rows}


def assert_current_tokens(catalog: Catalog, kb_id: int) -> None:
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(chunks.c.text, chunks.c.headings, chunks.c.tokens).where(chunks.c.kb_id == kb_id)
        ).all()
    assert rows
    for body, headings, tokens in rows:
        assert tokens == " ".join(chunk_tokens(body, json.loads(headings)))


def test_an_old_kb_finds_accented_names_after_opening_without_reembedding(
    library: Library, docs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kb = old_kb(library, docs)
    before = catalog_state(library.catalog, kb.record.id)
    dense = kb.search("Parque Nacional Andalucía", top_k=3)
    generation = library.catalog.generation(kb.record.id)

    with caplog.at_level(logging.INFO, logger="kbchat.store.retokenize"):
        opened = Library(library.settings).get("old")

    assert bm25_files(opened, "Doñana") == ["parques.md"]
    assert bm25_files(opened, "Donana") == ["parques.md"]
    assert opened.record.tokenizer == TOKENIZER_VERSION
    assert library.catalog.get_kb("old").tokenizer == TOKENIZER_VERSION
    assert library.catalog.generation(kb.record.id) == generation + 1
    assert_current_tokens(library.catalog, kb.record.id)
    after = catalog_state(library.catalog, kb.record.id)
    assert {i: v for i, (_, v) in after.items()} == {i: v for i, (_, v) in before.items()}
    assert {i for i, (t, _) in after.items() if t != before[i][0]} != set()
    assert opened.search("Parque Nacional Andalucía", top_k=3) == dense
    # the index saved with the old tokens was replaced, and the state names the new generation
    state = json.loads((kb.directory / "state.json").read_text())
    assert state == {"vectors": generation + 1, "lexical": generation + 1}
    assert LexicalIndex.load(kb.directory / "bm25").search(tokenize("Doñana"), 3) != []
    [line] = [r.getMessage() for r in caplog.records if "re-tokenized" in r.getMessage()]
    assert f"'old': BM25 tokens of {len(after)} chunks re-tokenized" in line
    assert " s" in line and f"-> {TOKENIZER_VERSION}" in line


def test_a_reader_without_the_write_lock_migrates_and_leaves_the_saved_index(
    library: Library, docs: Path
) -> None:
    kb = old_kb(library, docs)
    saved_state = (kb.directory / "state.json").read_text()
    lock = write_lock(kb.directory)
    lock.acquire(timeout=0)  # a writer of this machine holds it
    try:
        reader = Library(library.settings).get("old")
        assert bm25_files(reader, "Doñana") == ["parques.md"]
        assert library.catalog.get_kb("old").tokenizer == TOKENIZER_VERSION
        assert (kb.directory / "state.json").read_text() == saved_state
    finally:
        lock.release()
    # the saved index is behind the catalog's generation now: no one loads it again
    later = Library(library.settings).get("old")
    assert later.index.fresh_lexical().search(tokenize("Doñana"), 3) != []
    assert_current_tokens(library.catalog, kb.record.id)


def test_a_failed_migration_keeps_the_kb_usable_and_old_until_the_next_open(
    library: Library, docs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kb = old_kb(library, docs)
    before = catalog_state(library.catalog, kb.record.id)
    settings = library.settings
    catalog = Catalog(settings.catalog_url)

    def fail_rewrites(*args: Any) -> None:
        if args[2].lower().startswith("update chunks"):
            raise OSError("disk full (injected)")

    event.listen(catalog.engine, "before_cursor_execute", fail_rewrites)
    try:
        with caplog.at_level(logging.WARNING, logger="kbchat.kb.knowledge_base"):
            failed = Library(settings, catalog=catalog).get("old")
    finally:
        event.remove(catalog.engine, "before_cursor_execute", fail_rewrites)
        catalog.close()

    assert failed.record.tokenizer == 1
    assert "'old': its BM25 tokens could not be brought up" in caplog.text
    assert "disk full (injected)" in caplog.text
    assert catalog_state(library.catalog, kb.record.id) == before
    assert library.catalog.get_kb("old").tokenizer == 1
    assert bm25_files(failed, "green tea") == ["ana.txt"]  # still searchable, old tokens
    assert bm25_files(Library(settings).get("old"), "Doñana") == ["parques.md"]
    assert library.catalog.get_kb("old").tokenizer == TOKENIZER_VERSION


def test_new_kbs_ingests_and_rebuilds_store_current_tokens(library: Library, docs: Path) -> None:
    record = library.create("new")
    assert record.tokenizer == TOKENIZER_VERSION
    kb = library.get("new")
    kb.add([docs])
    assert_current_tokens(library.catalog, record.id)
    assert bm25_files(kb, "Donana") == ["parques.md"]

    make_version_1(kb)
    rebuilt = Library(library.settings).get("new")
    rebuilt.rebuild()
    assert library.catalog.get_kb("new").tokenizer == TOKENIZER_VERSION
    assert_current_tokens(library.catalog, record.id)
    assert bm25_files(rebuilt, "Doñana") == ["parques.md"]


def test_kb_search_in_another_process_migrates_and_says_so(library: Library, docs: Path) -> None:
    old_kb(library, docs)
    env = {**os.environ, "PYTHONPATH": str(REPO), "KBCHAT_LOG_LEVEL": "info"}
    command = ["kb", "search", "old", "Doñana", "--mode", "bm25", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "kbchat", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [hit["file"] for hit in json.loads(done.stdout)] == ["parques.md"]
    assert "'old': BM25 tokens of" in done.stderr
    assert library.catalog.get_kb("old").tokenizer == TOKENIZER_VERSION
