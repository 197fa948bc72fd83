"""The pgvector store against a real PostgreSQL 18 + pgvector started for the session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kbchat.errors import BackendError, ConfigError
from kbchat.store.pgvector import PgvectorStore
from kbchat.testing.postgres import TestPostgres, running_postgres
from tests.store.scale_checks import ScaleStoreChecks

pytestmark = pytest.mark.postgres


def unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    normalised: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


class TestPgvectorContract(ScaleStoreChecks):
    @pytest.fixture(autouse=True)
    def _server(self, postgres: TestPostgres) -> Iterator[None]:
        self.url = postgres.url
        self.table = f"t_{uuid.uuid4().hex[:12]}"
        self.opened: list[PgvectorStore] = []
        yield
        for store in self.opened:
            store.close()

    def make_store(self, tmp_path: Path, dim: int) -> Any:
        store = PgvectorStore.open(directory=tmp_path, collection=self.table, dim=dim, url=self.url)
        self.opened.append(store)
        return store

    def reopen(self, store: Any, tmp_path: Path) -> Any:
        return self.make_store(tmp_path, store.dim)


@pytest.fixture
def store(postgres: TestPostgres) -> Iterator[PgvectorStore]:
    opened = PgvectorStore(postgres.url, f"t_{uuid.uuid4().hex[:12]}", 8)
    yield opened
    opened.close()


def test_persist_builds_the_index_once_the_table_is_large_enough(
    postgres: TestPostgres,
) -> None:
    vectors = unit(400, 8, seed=1)
    table = f"t_{uuid.uuid4().hex[:12]}"
    store = PgvectorStore(postgres.url, table, 8, index_min_rows=300, exact_allowed_max=10)
    try:
        store.add(np.arange(200, dtype=np.int64), vectors[:200])
        store.persist()
        assert not store.has_index()
        store.add(np.arange(200, 400, dtype=np.int64), vectors[200:])
        store.persist()
        assert store.has_index()
        assert store.search(vectors[123], 1)[0][0] == 123
        store.add(np.array([1000], dtype=np.int64), -vectors[5:6])  # joins the built index
        assert store.search(-vectors[5], 1)[0][0] == 1000
        # a long allow-list goes through the index (iterative scan) and stays exact here
        allowed = np.arange(0, 400, 2, dtype=np.int64)
        hits = store.search(vectors[1], 5, allowed=allowed)
        exact = allowed[np.argsort(-(vectors[allowed] @ vectors[1]))][:5]
        assert [i for i, _ in hits] == exact.tolist()
    finally:
        store.close()
    again = PgvectorStore(postgres.url, table, 8)
    try:
        assert again.has_index()
        again.drop()
    finally:
        again.close()


def test_dimension_mismatch_on_reopen(store: PgvectorStore, postgres: TestPostgres) -> None:
    store.add(np.array([1], dtype=np.int64), unit(1, 8))
    with pytest.raises(BackendError, match="has dimension 8, expected 16"):
        PgvectorStore(postgres.url, store.table, 16)


def test_table_name_is_checked() -> None:
    with pytest.raises(ValueError, match="table must be letters"):
        PgvectorStore("postgresql://localhost/x", 'kb"; drop table x; --', 8)


def test_open_without_url_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a database URL"):
        PgvectorStore.open(directory=tmp_path, collection="kb", dim=8, url=None)


def test_unreachable_server_is_one_clear_line() -> None:
    url = "postgresql://kbchat:s3cret@127.0.0.1:9/kbchat"  # the discard port: nothing listens
    with pytest.raises(BackendError) as caught:
        PgvectorStore(url, "kb", 8, connect_timeout=2)
    message = str(caught.value)
    assert "\n" not in message
    assert "postgresql://kbchat@127.0.0.1:9/kbchat" in message
    assert "refused" in message.lower()
    assert "check that the server is running" in message
    assert "s3cret" not in message
    assert caught.value.__cause__ is None


def test_query_after_a_server_restart_succeeds() -> None:
    vectors = unit(10, 8)
    with running_postgres() as server:
        store = PgvectorStore(server.url, "kb", 8)
        try:
            store.add(np.arange(10, dtype=np.int64), vectors)
            assert store.search(vectors[3], 1)[0][0] == 3
            server.restart()  # every pooled connection is now dead
            assert store.search(vectors[4], 1)[0][0] == 4
            store.add(np.array([20], dtype=np.int64), vectors[:1])
            assert store.count() == 11
        finally:
            store.close()


def test_server_down_is_a_backend_error_then_recovers() -> None:
    vectors = unit(3, 8)
    with running_postgres() as server:
        store = PgvectorStore(server.url, "kb", 8, connect_timeout=1)
        try:
            store.add(np.arange(3, dtype=np.int64), vectors)
            server.stop()
            with pytest.raises(BackendError, match="cannot reach PostgreSQL at postgresql://"):
                store.count()
            server.restart()
            assert store.count() == 3
        finally:
            store.close()
