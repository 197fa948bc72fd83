"""Fixtures shared by the knowledge-base tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kbchat.config import load_settings
from kbchat.kb import job_leases
from kbchat.kb.jobs import JobQueue
from kbchat.kb.library import Library
from kbchat.store.catalog import Catalog
from kbchat.testing.postgres import TestPostgres


@pytest.fixture
def library() -> Iterator[Library]:
    """A library in the test's own home (conftest's KBCHAT_HOME) with the hash embedder; a
    module may override it (another store, another embedder)."""
    lib = Library(load_settings(embedder={"backend": "hash"}))
    yield lib
    lib.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """A catalog on SQLite, and (marker postgres) on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        server: TestPostgres = request.getfixturevalue("postgres")
        url = server.new_database().replace("postgresql://", "postgresql+psycopg://", 1)
    found = Catalog(url)
    yield found
    found.close()


@pytest.fixture
def queue(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> JobQueue:
    """A job queue on ``catalog`` whose retries run at once."""
    monkeypatch.setattr(job_leases, "BACKOFF_S", 0.0)
    return JobQueue(catalog)
