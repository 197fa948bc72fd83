"""Fixtures shared by the knowledge-base tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kbchat.config import load_settings
from kbchat.kb.library import Library


@pytest.fixture
def library() -> Iterator[Library]:
    """A library in the test's own home (conftest's KBCHAT_HOME) with the hash embedder; a
    module may override it (another store, another embedder)."""
    lib = Library(load_settings(embedder={"backend": "hash"}))
    yield lib
    lib.close()
