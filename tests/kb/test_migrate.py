"""Moving a knowledge base between vector stores: copied from the catalog, verified, switched."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pytest

from kbchat.config import load_settings
from kbchat.errors import BackendError, BadInput, ConfigError, Conflict, NotFound
from kbchat.kb.library import Library
from kbchat.kb.migrate import migrate, same_hits
from kbchat.registry import vector_stores
from kbchat.store.base import Ids
from kbchat.store.faiss import FaissStore
from kbchat.testing.postgres import TestPostgres

QUERIES = ["kettle warranty", "green tea", "river stone lamp", "copper seven", "garden"]
WORDS = (
    "kettle warranty tea green river stone lamp copper seven garden window paper cloud "
    "silver harbour engine violet maple thunder orbit velvet canyon ember quartz"
).split()


class FlakyStore(FaissStore):
    """FAISS in its own file whose first ``add`` writes half the batch and then fails."""

    dropped: ClassVar[int] = 0

    @classmethod
    def open(cls, *, directory: Path, collection: str, dim: int, url: str | None) -> Self:
        return cls(directory / "flaky.faiss", dim)

    def add(self, ids: Ids, vectors: np.ndarray) -> None:
        half = len(ids) // 2
        super().add(ids[:half], vectors[:half])
        raise BackendError("disk full")

    def drop(self) -> None:
        type(self).dropped += 1
        super().drop()


class LossyStore(FaissStore):
    """FAISS in its own file that silently loses the last vector of every ``add``."""

    @classmethod
    def open(cls, *, directory: Path, collection: str, dim: int, url: str | None) -> Self:
        return cls(directory / "lossy.faiss", dim)

    def add(self, ids: Ids, vectors: np.ndarray) -> None:
        super().add(ids[:-1], vectors[:-1])


class ShuffledStore(FaissStore):
    """FAISS in its own file whose searches return the right ids in the wrong order."""

    @classmethod
    def open(cls, *, directory: Path, collection: str, dim: int, url: str | None) -> Self:
        return cls(directory / "shuffled.faiss", dim)

    def search(
        self, vector: np.ndarray, k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        hits = super().search(vector, k, allowed)
        ids = [i for i, _ in hits][::-1]
        return [(i, s) for i, (_, s) in zip(ids, hits, strict=True)]


@pytest.fixture(autouse=True)
def test_stores() -> Iterator[None]:
    FlakyStore.dropped = 0
    for name, store in (("flaky", FlakyStore), ("lossy", LossyStore), ("shuffled", ShuffledStore)):
        vector_stores.register(name, store)
    yield
    for name in ("flaky", "lossy", "shuffled"):
        vector_stores.unregister(name)


def make_library(**store: object) -> Library:
    return Library(load_settings(embedder={"backend": "hash"}, store=store))


@pytest.fixture
def library() -> Iterator[Library]:
    lib = make_library()
    yield lib
    lib.close()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Forty files of distinct word mixes, so that search scores rarely tie."""
    root = tmp_path / "docs"
    root.mkdir()
    rng = random.Random(7)
    for n in range(40):
        words = " ".join(rng.sample(WORDS, 6))
        (root / f"doc{n:02d}.txt").write_text(f"Note {n}: {words}.", encoding="utf-8")
    return root


def results(library: Library, name: str) -> list[list[tuple[int, float]]]:
    kb = library.get(name)
    return [[(h.chunk_id, h.score) for h in kb.search(q, top_k=8)] for q in QUERIES]


def assert_same_results(
    before: list[list[tuple[int, float]]], after: list[list[tuple[int, float]]]
) -> None:
    assert len(before) == len(after)
    for one, other in zip(before, after, strict=True):
        assert one and same_hits(one, other), (one, other)


def test_faiss_to_milvus_and_back_keeps_every_search_result(library: Library, docs: Path) -> None:
    library.create("kb")
    kb = library.get("kb")
    kb.add([docs])
    before = results(library, "kb")
    steps: list[tuple[str, int, int]] = []

    moved = migrate(library, "kb", "milvus", progress=lambda *step: steps.append(step))
    assert (moved.source, moved.target, moved.vectors) == ("faiss", "milvus", 40)
    assert moved.queries_compared == 20 and moved.source_dropped
    assert steps[0] == ("copy", 0, 40) and ("copy", 40, 40) in steps
    assert steps[-1] == ("verify", 20, 20)
    assert library.catalog.get_kb("kb").store == "milvus"
    assert not (kb.directory / "vectors.faiss").exists()  # the old store is gone
    assert_same_results(before, results(library, "kb"))

    back = migrate(library, "kb", "faiss")
    assert (back.source, back.target) == ("milvus", "faiss")
    assert_same_results(before, results(library, "kb"))
    reopened = make_library()  # another process sees the switch
    try:
        assert reopened.catalog.get_kb("kb").store == "faiss"
        assert_same_results(before, results(reopened, "kb"))
    finally:
        reopened.close()


def test_a_failure_mid_copy_leaves_the_kb_as_it_was(library: Library, docs: Path) -> None:
    library.create("kb")
    kb = library.get("kb")
    kb.add([docs])
    before = results(library, "kb")
    with pytest.raises(BackendError, match="disk full"):
        migrate(library, "kb", "flaky")
    assert FlakyStore.dropped == 1  # the half-written copy is removed
    assert not (kb.directory / "flaky.faiss").exists()
    assert library.catalog.get_kb("kb").store == "faiss"
    assert (kb.directory / "vectors.faiss").exists()
    assert_same_results(before, results(library, "kb"))
    kb.add([docs], force=True)  # still writable
    assert migrate(library, "kb", "milvus").vectors == 40  # and movable


def test_an_interrupted_copy_is_dropped(library: Library, docs: Path) -> None:
    library.create("kb")
    library.get("kb").add([docs])
    before = results(library, "kb")

    def interrupt(stage: str, done: int, total: int) -> None:
        if stage == "copy" and done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate(library, "kb", "milvus", progress=interrupt)
    assert library.catalog.get_kb("kb").store == "faiss"
    assert_same_results(before, results(library, "kb"))


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("lossy", r"the copy holds 39 vectors for the catalog's 40 \(1 missing, 0 unknown\)"),
        ("shuffled", "gives other results in the copy"),
    ],
)
def test_a_copy_that_does_not_verify_is_not_switched_to(
    library: Library, docs: Path, store: str, message: str
) -> None:
    library.create("kb")
    library.get("kb").add([docs])
    before = results(library, "kb")
    with pytest.raises(BackendError, match=message):
        migrate(library, "kb", store)
    assert library.catalog.get_kb("kb").store == "faiss"
    assert_same_results(before, results(library, "kb"))
    assert not (library.get("kb").directory / f"{store}.faiss").exists()


def test_a_write_during_the_copy_cancels_the_switch(
    library: Library, docs: Path, tmp_path: Path
) -> None:
    library.create("kb")
    kb = library.get("kb")
    kb.add([docs])

    def write_meanwhile(stage: str, done: int, total: int) -> None:
        if stage == "copy" and done == total:  # as another machine would, past the file lock
            kb.catalog.remove_file(kb.record.id, "doc00.txt")

    with pytest.raises(Conflict, match="changed while its vectors were copied"):
        migrate(library, "kb", "milvus", progress=write_meanwhile)
    assert library.catalog.get_kb("kb").store == "faiss"
    assert len(library.get("kb").index.fresh_vectors().ids()) == 39
    assert migrate(library, "kb", "milvus").vectors == 39


def test_a_kb_being_written_is_not_migrated(library: Library, docs: Path) -> None:
    from filelock import FileLock

    library.create("kb")
    kb = library.get("kb")
    kb.add([docs])
    with (
        FileLock(str(kb.directory / "write.lock")),
        pytest.raises(Conflict, match="another process is writing"),
    ):
        migrate(library, "kb", "milvus")
    assert library.catalog.get_kb("kb").store == "faiss"


def test_bad_requests_name_what_is_wrong(library: Library) -> None:
    library.create("kb")
    with pytest.raises(NotFound, match="no knowledge base named 'nope'; known: kb"):
        migrate(library, "nope", "milvus")
    with pytest.raises(ConfigError, match="unknown vector store backend 'x'; known: .*pgvector"):
        migrate(library, "kb", "x")
    with pytest.raises(ConfigError, match="unknown vector store backend 'faisss'; known: faiss"):
        migrate(library, "nope", "faisss")  # the option is checked before the name
    with pytest.raises(BadInput, match="already keeps its vectors in 'faiss'"):
        migrate(library, "kb", "faiss")


def test_an_empty_kb_migrates(library: Library) -> None:
    library.create("kb")
    moved = migrate(library, "kb", "milvus")
    assert (moved.vectors, moved.queries_compared) == (0, 0)
    assert library.get("kb").search("anything", top_k=3) == []


def test_leftovers_of_an_earlier_copy_are_cleared_first(library: Library, docs: Path) -> None:
    library.create("kb")
    kb = library.get("kb")
    kb.add([docs])
    stale = FaissStore(kb.directory / "vectors.faiss", kb.embedder.dim)
    migrate(library, "kb", "milvus")
    stale.add(np.array([123456789], dtype=np.int64), np.ones((1, kb.embedder.dim), np.float32))
    stale.persist()  # as if dropping the old store had failed
    moved = migrate(library, "kb", "faiss")
    assert moved.vectors == 40
    assert 123456789 not in library.get("kb").index.fresh_vectors().ids()


def test_same_hits_allows_ties_and_rounding_only() -> None:
    a = [(1, 0.9), (2, 0.8), (3, 0.5), (4, 0.5)]
    assert same_hits(a, [(1, 0.90001), (2, 0.8), (4, 0.5), (3, 0.5)])
    assert same_hits(a, [(1, 0.9), (2, 0.8), (3, 0.5), (5, 0.5)])  # a tie cut at the k-th place
    assert not same_hits(a, [(2, 0.9), (1, 0.8), (3, 0.5), (4, 0.5)])
    assert not same_hits(a, [(1, 0.9), (2, 0.7), (3, 0.5), (4, 0.5)])
    assert not same_hits(a, a[:3])
    assert not same_hits(a, [(1, 0.9), (9, 0.8), (3, 0.5), (4, 0.5)])


@pytest.mark.postgres
def test_round_trip_through_every_store(postgres: TestPostgres, docs: Path) -> None:
    """faiss -> pgvector -> milvus -> faiss, every step with identical search results."""
    library = make_library(urls={"pgvector": postgres.url})
    try:
        library.create("trip")
        kb = library.get("trip")
        kb.add([docs])
        before = results(library, "trip")
        for source, target in (("faiss", "pgvector"), ("pgvector", "milvus"), ("milvus", "faiss")):
            moved = migrate(library, "trip", target)
            assert (moved.source, moved.target, moved.vectors) == (source, target, 40)
            assert moved.source_dropped, moved.note
            assert_same_results(before, results(library, "trip"))
        assert library.catalog.get_kb("trip").store == "faiss"
    finally:
        library.close()
