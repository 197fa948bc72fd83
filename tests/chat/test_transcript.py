"""A conversation as Markdown: turns, sources with their place in the file, ratings."""

from __future__ import annotations

from kbchat.chat.transcript import transcript_markdown
from kbchat.store.conversations import Conversation, Feedback, StoredMessage


def test_turns_sources_and_ratings() -> None:
    sources = [
        {"marker": 1, "file": "manual.pdf", "page": 3, "quote": "two year\nwarranty"},
        {"marker": 2, "file": "prices.xlsx", "sheet": "2026", "text": "K3: 399"},
        {"marker": 3, "file": "deck.pptx", "slide": 4, "quote": ""},
    ]
    conversation = Conversation(
        id="c1",
        title="K3  kettle\nwarranty",
        kbs=["manuals"],
        model="qwen",
        created_at=0.0,
        updated_at=90.0,
        messages=[
            StoredMessage("user", "Warranty?", 0.0),
            StoredMessage(
                "assistant",
                "Two years [1], 399 [2].",
                60.0,
                sources,
                feedback=Feedback("up", "exactly", 70.0),
            ),
        ],
    )
    text = transcript_markdown(conversation)
    assert text.startswith("# K3 kettle warranty\n")
    assert "- Knowledge bases: manuals\n- Model: qwen\n- Started: 1970-01-01 00:00 UTC" in text
    assert "## Question (1970-01-01 00:00 UTC)\n\nWarranty?" in text
    assert "## Answer (1970-01-01 00:01 UTC)\n\nTwo years [1], 399 [2]." in text
    assert '1. manual.pdf, page 3 — "two year warranty"' in text
    assert '2. prices.xlsx, sheet 2026 — "K3: 399"' in text
    assert "3. deck.pptx, slide 4\n" in text
    assert text.endswith("Rating: 👍 helpful: exactly\n")


def test_a_plain_chat_without_turns() -> None:
    empty = Conversation("c2", "Hi", [], "qwen", 0.0, 0.0)
    assert "- Knowledge bases: none (plain chat)" in transcript_markdown(empty)
