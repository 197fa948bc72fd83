"""Stored BM25 tokens made by an older tokenizer are rewritten in one transaction, with the
tokenizer version; a failure leaves the old tokens and version, and two processes doing it at
once do it once. On SQLite, and on PostgreSQL (marker ``postgres``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import rjieba
from sqlalchemy import event, select, text, update

from kbchat.store.bm25 import STOPWORDS, TOKENIZER_VERSION, chunk_tokens
from kbchat.store.catalog import Catalog, NewChunk, chunks, kbs
from kbchat.store.retokenize import Retokenized, retokenize
from kbchat.testing.postgres import TestPostgres
from kbchat.types import Chunk
from tests.store.support import create_hash_kb

TEXTS = [
    ("El Parque Nacional de Doñana está en Andalucía.", ("Parques",)),
    ("The K3 kettle warranty lasts two years.", ()),
    ("本产品保修期为两年。", ("保修",)),
    ("Käthe Leichter founded the women's office in Vienna.", ("Biografía",)),
    ("Green tea is brewed at eighty degrees for two minutes.", ()),
    ("La bahía de Cádiz y el río Guadalquivir.", ()),
]
CHANGED = 3
"""TEXTS whose version-1 tokens differ from today's (the accented ones)."""


def version_1_tokens(text: str, headings: Sequence[str]) -> list[str]:
    """What tokenize made before version 2: jieba cuts an accented word up, accents kept."""
    words = rjieba.cut_for_search(" ".join([*headings, text]).lower())
    return [w for w in words if w.strip() and any(c.isalnum() for c in w) and w not in STOPWORDS]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    server: TestPostgres = request.getfixturevalue("postgres")
    return server.new_database().replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def catalog(url: str) -> Iterator[Catalog]:
    opened = Catalog(url)
    yield opened
    opened.close()


def old_kb(catalog: Catalog, name: str = "old", texts: Sequence[Any] = TEXTS) -> int:
    """A knowledge base as an earlier kbchat left it: version-1 tokens, version 1."""
    kb_id = create_hash_kb(catalog, name, tokenizer=1)
    new = [
        NewChunk(
            id=kb_id * 1000 + position,
            chunk=Chunk(body, "a.txt", position, headings=headings),
            tokens=version_1_tokens(body, headings),
            vector=np.full(8, position + 0.5, dtype=np.float32),
        )
        for position, (body, headings) in enumerate(texts)
    ]
    catalog.replace_file_chunks(kb_id, "a.txt", path="/a.txt", sha256="x", size=1, new_chunks=new)
    return kb_id


def stored(catalog: Catalog, kb_id: int) -> dict[int, tuple[str, str, bytes]]:
    """Each chunk's (text, tokens, vector bytes)."""
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(chunks.c.id, chunks.c.text, chunks.c.tokens, chunks.c.vector).where(
                chunks.c.kb_id == kb_id
            )
        ).all()
    return {int(r[0]): (r[1], r[2], bytes(r[3])) for r in rows}


def current_tokens(catalog: Catalog, kb_id: int) -> dict[int, str]:
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(chunks.c.id, chunks.c.text, chunks.c.headings).where(chunks.c.kb_id == kb_id)
        ).all()
    return {int(r[0]): " ".join(chunk_tokens(r[1], json.loads(r[2]))) for r in rows}


def test_old_tokens_are_rewritten_with_the_version_and_nothing_else(catalog: Catalog) -> None:
    kb_id = old_kb(catalog)
    before = stored(catalog, kb_id)
    generation = catalog.generation(kb_id)
    assert catalog.get_kb("old").tokenizer == 1

    done = retokenize(catalog, kb_id, batch=2)

    assert isinstance(done, Retokenized)
    assert (done.kb, done.chunks, done.changed) == ("old", len(TEXTS), CHANGED)
    assert (done.old_version, done.version) == (1, TOKENIZER_VERSION)
    assert (done.old_generation, done.generation) == (generation, generation + 1)
    assert catalog.get_kb("old").tokenizer == TOKENIZER_VERSION
    assert catalog.generation(kb_id) == generation + 1
    after = stored(catalog, kb_id)
    assert {i: tokens for i, (_, tokens, _) in after.items()} == current_tokens(catalog, kb_id)
    assert "donana" in " ".join(t for _, t, _ in after.values()).split()
    assert {i: (body, vector) for i, (body, _, vector) in after.items()} == {
        i: (body, vector) for i, (body, _, vector) in before.items()
    }
    assert retokenize(catalog, kb_id) is None
    assert catalog.generation(kb_id) == generation + 1


def test_a_failure_midway_leaves_the_old_tokens_and_version(catalog: Catalog) -> None:
    kb_id = old_kb(catalog)
    before = stored(catalog, kb_id)
    generation = catalog.generation(kb_id)
    rewrites = 0

    def fail_the_second_rewrite(*args: Any) -> None:
        nonlocal rewrites
        if args[2].lower().startswith("update chunks"):
            rewrites += 1
            if rewrites == 2:
                raise OSError("disk I/O error (injected)")

    event.listen(catalog.engine, "before_cursor_execute", fail_the_second_rewrite)
    try:
        with pytest.raises(OSError, match="injected"):
            retokenize(catalog, kb_id, batch=1)
    finally:
        event.remove(catalog.engine, "before_cursor_execute", fail_the_second_rewrite)

    assert rewrites == 2  # the first chunk was rewritten inside the transaction
    assert stored(catalog, kb_id) == before
    assert catalog.get_kb("old").tokenizer == 1
    assert catalog.generation(kb_id) == generation
    done = retokenize(catalog, kb_id, batch=1)  # the next open does it
    assert done is not None and done.changed == CHANGED
    assert catalog.get_kb("old").tokenizer == TOKENIZER_VERSION


def test_a_process_finding_it_done_meanwhile_writes_nothing(catalog: Catalog, url: str) -> None:
    kb_id = old_kb(catalog)
    generation = catalog.generation(kb_id)
    other = Catalog(url)
    done_by_other: list[Retokenized | None] = []

    def tokens_of(body: str, headings: Sequence[str]) -> list[str]:
        if not done_by_other:  # another process runs the whole migration meanwhile
            done_by_other.append(retokenize(other, kb_id))
        return ["stale", "guess"]

    try:
        assert retokenize(catalog, kb_id, tokens_of=tokens_of) is None
    finally:
        other.close()

    assert done_by_other[0] is not None and done_by_other[0].changed == CHANGED
    assert catalog.generation(kb_id) == generation + 1
    assert {i: t for i, (_, t, _) in stored(catalog, kb_id).items()} == current_tokens(
        catalog, kb_id
    )


def test_a_chunk_written_meanwhile_keeps_what_was_written(catalog: Catalog) -> None:
    kb_id = old_kb(catalog)
    doñana = kb_id * 1000  # the first text's chunk

    def tokens_of(body: str, headings: Sequence[str]) -> list[str]:
        if body.startswith("El Parque"):  # a writer replaces that chunk meanwhile
            with catalog.engine.begin() as conn:
                conn.execute(update(chunks).where(chunks.c.id == doñana).values(tokens="new"))
        return chunk_tokens(body, headings)

    done = retokenize(catalog, kb_id, tokens_of=tokens_of)

    assert done is not None and done.changed == CHANGED
    tokens = {i: t for i, (_, t, _) in stored(catalog, kb_id).items()}
    assert tokens.pop(doñana) == "new"
    assert tokens.items() <= current_tokens(catalog, kb_id).items()


def test_unchanged_tokens_move_only_the_version(catalog: Catalog) -> None:
    kb_id = old_kb(catalog, texts=[t for t in TEXTS if t[0].isascii() or "保修" in t[0]])
    before = stored(catalog, kb_id)
    generation = catalog.generation(kb_id)

    done = retokenize(catalog, kb_id)

    assert done is not None and (done.changed, done.generation) == (0, generation)
    assert catalog.get_kb("old").tokenizer == TOKENIZER_VERSION
    assert stored(catalog, kb_id) == before


def test_two_processes_at_once_migrate_once(catalog: Catalog, url: str) -> None:
    kb_id = old_kb(catalog)
    generation = catalog.generation(kb_id)
    catalogs = [Catalog(url), Catalog(url)]
    start = threading.Barrier(2)
    results: list[Retokenized | None] = []

    def run(own: Catalog) -> None:
        start.wait()
        results.append(retokenize(own, kb_id, batch=2))

    threads = [threading.Thread(target=run, args=(c,)) for c in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for own in catalogs:
        own.close()

    assert len(results) == 2 and sum(r is not None for r in results) == 1
    assert catalog.generation(kb_id) == generation + 1
    assert catalog.get_kb("old").tokenizer == TOKENIZER_VERSION
    assert {i: t for i, (_, t, _) in stored(catalog, kb_id).items()} == current_tokens(
        catalog, kb_id
    )


def test_a_catalog_made_before_versions_reads_version_1(catalog: Catalog, url: str) -> None:
    kb_id = old_kb(catalog)
    with catalog.engine.begin() as conn:
        conn.execute(text("ALTER TABLE kbs DROP COLUMN tokenizer"))
    catalog.close()

    reopened = Catalog(url)
    try:
        assert reopened.get_kb("old").tokenizer == 1
        assert retokenize(reopened, kb_id) is not None
        assert reopened.get_kb("old").tokenizer == TOKENIZER_VERSION
        with reopened.engine.connect() as conn:
            versions = conn.execute(select(kbs.c.name, kbs.c.tokenizer)).all()
        assert [tuple(v) for v in versions] == [("old", TOKENIZER_VERSION)]
    finally:
        reopened.close()
