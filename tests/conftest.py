"""Shared fixtures: every test gets its own KBCHAT_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kbchat.testing.postgres import TestPostgres, running_postgres


@pytest.fixture(autouse=True)
def kbchat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "kbchat-home"
    monkeypatch.setenv("KBCHAT_HOME", str(home))
    for var in ("KBCHAT_CONFIG", "KBCHAT_EMBEDDER__BACKEND"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    """One real PostgreSQL 18 + pgvector for the session (tests use their own tables)."""
    with running_postgres() as server:
        yield server
