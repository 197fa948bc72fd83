"""A knowledge base on pgvector keeps answering when PostgreSQL restarts between queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.config import load_settings
from kbchat.kb.library import Library
from kbchat.testing.postgres import running_postgres

pytestmark = pytest.mark.postgres


def test_the_query_after_a_postgres_restart_succeeds(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettle.txt").write_text("The kettle warranty lasts two years.", encoding="utf-8")
    (docs / "tea.txt").write_text("Green tea likes 80 degree water.", encoding="utf-8")
    with running_postgres() as server:
        settings = load_settings(embedder={"backend": "hash"}, store={"url": server.url})
        library = Library(settings)
        try:
            library.create("kb", store="pgvector")
            kb = library.get("kb")
            kb.add([docs])
            assert kb.search("kettle warranty", top_k=1)[0].file == "kettle.txt"
            server.restart()  # every pooled connection is now dead
            assert kb.search("green tea", top_k=1)[0].file == "tea.txt"
            (docs / "lamp.txt").write_text("The desk lamp has a dimmer.", encoding="utf-8")
            [outcome] = [o for o in kb.add([docs]) if o.name == "lamp.txt"]
            assert outcome.status == "indexed"
            assert kb.search("desk lamp dimmer", top_k=1)[0].file == "lamp.txt"
        finally:
            library.close()
