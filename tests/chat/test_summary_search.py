"""Kept summaries searched beside chunks (chat.search_summaries)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.chat.summaries import SummaryStore
from kbchat.chat.summarize import Summary
from kbchat.chat.summary_search import SUMMARY_HEADING, summary_hits, summary_vectors
from kbchat.config import load_settings
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import Library
from kbchat.retrieve.search import SearchOptions
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Answer


@pytest.fixture
def lab(tmp_path: Path) -> KnowledgeBase:
    library = Library(load_settings(embedder={"backend": "hash"}))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Boil water for ninety seconds. Pour slowly.", encoding="utf-8")
    (docs / "b.txt").write_text("Four slots, a crumb tray and a timer dial.", encoding="utf-8")
    kb = library.ensure("lab")
    kb.add([docs])
    store = SummaryStore(kb.catalog.engine)
    record = kb.catalog.get_file(kb.record.id, "a.txt")
    assert record is not None
    summary = Summary("A kettle manual about brewing tea.", "extract", "en", 1, 1.0)
    store.put(kb.record.id, record, summary, "scripted")
    return kb


def test_a_summary_is_found_by_its_words_and_kept_vectors(lab: KnowledgeBase) -> None:
    options = SearchOptions(mode="bm25", threshold=0.0)
    hits = summary_hits(lab, "kettle manual", options)
    assert [(h.file, h.text, h.headings) for h in hits] == [
        ("a.txt", "A kettle manual about brewing tea.", (SUMMARY_HEADING,))
    ]
    assert hits[0].score > 0 and hits[0].chunk_id < 0
    dense = summary_hits(lab, "kettle manual", SearchOptions(mode="dense", threshold=0.0))
    assert [h.file for h in dense] == ["a.txt"]
    with lab.catalog.engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(summary_vectors)).scalar()
    assert kept == 1


def test_filters_apply_to_summaries(lab: KnowledgeBase) -> None:
    assert summary_hits(lab, "kettle", SearchOptions(threshold=0.0, files=("b.txt",))) == []
    assert summary_hits(lab, "kettle", SearchOptions(threshold=0.0, pages=(1, 2))) == []
    assert summary_hits(lab, "kettle", SearchOptions(threshold=0.0, file_types=("md",))) == []
    assert summary_hits(lab, "kettle", SearchOptions(mode="bm25", threshold=0.99)) == []


def test_answers_search_summaries_only_when_asked(lab: KnowledgeBase) -> None:
    search = SearchOptions(mode="bm25", threshold=0.0, top_k=3)
    model = ScriptedChatModel(["A kettle manual [1]."])
    options = ChatOptions(search=search, verify=False, min_score=0.0, search_summaries=True)
    answer = list(stream_answer(model, [lab], "which file is the kettle manual?", options=options))
    assert isinstance(answer[-1], Answer)
    assert "A kettle manual about brewing tea." in model.received[-1][-1].content
    calls = len(model.received)
    plain = ChatOptions(search=search, verify=False, min_score=0.0)
    refused = list(stream_answer(model, [lab], "which file is the kettle manual?", options=plain))
    prompts = [m[-1].content for m in model.received[calls:]]
    assert not any("A kettle manual about brewing tea." in p for p in prompts)
    assert isinstance(refused[-1], Answer)
    assert all(c.text != "A kettle manual about brewing tea." for c in refused[-1].citations)
