"""ConversationStore: create on first turn, continue, list by owner, delete."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from kbchat.errors import NotFound
from kbchat.store.conversations import ConversationStore, StoredMessage, title_from
from kbchat.types import Message


@pytest.fixture
def store() -> ConversationStore:
    return ConversationStore(create_engine("sqlite://"))


def turn(
    role: str, text: str, at: float, citations: list[dict[str, object]] | None = None
) -> StoredMessage:
    return StoredMessage(role, text, at, citations)  # type: ignore[arg-type]


def test_first_turn_creates_later_turns_continue(store: ConversationStore) -> None:
    store.append(
        "c1",
        None,
        [turn("user", "Warranty?", 1), turn("assistant", "Two years [1]", 2, [{"marker": 1}])],
        kbs=["docs"],
        model="m",
    )
    store.append(
        "c1",
        None,
        [turn("user", "Price?", 3), turn("assistant", "10", 4, [])],
        kbs=["docs", "prices"],
        model="m2",
    )
    conversation = store.get("c1", None)
    assert conversation.title == "Warranty?"
    assert conversation.kbs == ["docs", "prices"] and conversation.model == "m2"
    assert conversation.history() == [
        Message("user", "Warranty?"),
        Message("assistant", "Two years [1]"),
        Message("user", "Price?"),
        Message("assistant", "10"),
    ]
    body = conversation.to_json(with_messages=True)
    assert body["messages"][1]["citations"] == [{"marker": 1}]
    assert "citations" not in body["messages"][0]


def test_owners_see_only_their_conversations(store: ConversationStore) -> None:
    store.append("a", "alice", [turn("user", "hi", 1)], kbs=[], model="m")
    store.append("b", None, [turn("user", "hello", 1)], kbs=[], model="m")
    assert [c.id for c in store.list_conversations("alice")] == ["a"]
    assert [c.id for c in store.list_conversations(None)] == ["b"]
    with pytest.raises(NotFound):
        store.get("a", "bob")
    with pytest.raises(NotFound):
        store.append("a", "bob", [turn("user", "mine now", 2)], kbs=[], model="m")
    with pytest.raises(NotFound):
        store.delete("a", None)
    store.delete("a", "alice")
    assert store.list_conversations("alice") == []


def test_most_recent_first(store: ConversationStore) -> None:
    for name in ("old", "new"):
        store.append(name, None, [turn("user", name, 1)], kbs=[], model="m")
    store.append("old", None, [turn("user", "again", 2)], kbs=[], model="m")
    assert [c.id for c in store.list_conversations(None)] == ["old", "new"]


def test_titles_are_one_short_line() -> None:
    assert title_from("  What   is\nthis?") == "What is"
    long = title_from("字" * 100)
    assert len(long) == 60 and long.endswith("…")
