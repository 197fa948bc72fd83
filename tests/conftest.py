"""Shared fixtures: every test gets its own KBCHAT_HOME, and the test fakes are registered.

The fakes (hash embedder, scripted chat model) are a plugin, ``kbchat.testing.plugin``:
registered here for this process, and named in KBCHAT_PLUGINS so that the CLI and server
processes the tests start register them too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kbchat.testing import plugin
from kbchat.testing.postgres import TestPostgres, running_postgres

plugin.register()


@pytest.fixture(autouse=True)
def kbchat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "kbchat-home"
    monkeypatch.setenv("KBCHAT_HOME", str(home))
    monkeypatch.setenv("KBCHAT_PLUGINS", plugin.__name__)
    for var in ("KBCHAT_CONFIG", "KBCHAT_EMBEDDER__BACKEND"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    """One real PostgreSQL 18 + pgvector for the session (tests use their own tables)."""
    with running_postgres() as server:
        yield server
