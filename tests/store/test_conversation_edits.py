"""ConversationStore: replacing turns, renaming, searching, rating answers, and old databases."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from kbchat.errors import BadInput, NotFound
from kbchat.store.conversations import ConversationStore, StoredMessage


@pytest.fixture
def store() -> ConversationStore:
    return ConversationStore(create_engine("sqlite://"))


def qa(question: str, answer: str, at: float = 1.0) -> list[StoredMessage]:
    return [StoredMessage("user", question, at), StoredMessage("assistant", answer, at + 1)]


def test_append_returns_ids_and_replace_from_drops_the_turn_and_later_ones(
    store: ConversationStore,
) -> None:
    first = store.append("c", None, qa("Warranty?", "Two years"), kbs=[], model="m")
    second = store.append("c", None, qa("Price?", "Ten euros"), kbs=[], model="m")
    assert len(first) == 2 and first[0] < first[1] < second[0] < second[1]

    store.append(
        "c",
        None,
        qa("Warranty of the K3?", "Three years"),
        kbs=[],
        model="m",
        replace_from=first[0],
    )
    conversation = store.get("c", None)
    assert [m.content for m in conversation.messages] == ["Warranty of the K3?", "Three years"]
    assert conversation.title == "Warranty?"  # the title stays what it was

    with pytest.raises(NotFound, match="has no message 99999"):
        store.append("c", None, qa("x", "y"), kbs=[], model="m", replace_from=99999)
    assert len(store.get("c", None).messages) == 2  # nothing changed by the failed replace


def test_history_before_a_message_is_what_came_before_it(store: ConversationStore) -> None:
    first = store.append("c", None, qa("one", "1"), kbs=[], model="m")
    second = store.append("c", None, qa("two", "2"), kbs=[], model="m")
    conversation = store.get("c", None)
    assert [m.content for m in conversation.history(before=second[0])] == ["one", "1"]
    assert conversation.history(before=first[0]) == []
    assert len(conversation.history()) == 4


def test_rename_strips_and_checks_the_title(store: ConversationStore) -> None:
    store.append("c", "alice", qa("Warranty?", "Two years"), kbs=[], model="m")
    assert store.rename("c", "alice", "  Kettle   warranty ").title == "Kettle warranty"
    assert store.get("c", "alice").title == "Kettle warranty"
    with pytest.raises(BadInput, match="title must not be empty"):
        store.rename("c", "alice", "   ")
    with pytest.raises(BadInput, match="at most 200 characters"):
        store.rename("c", "alice", "x" * 201)
    with pytest.raises(NotFound, match="no conversation with id 'c'"):
        store.rename("c", "bob", "mine")


def test_search_finds_titles_and_message_text_of_the_owner_only(
    store: ConversationStore,
) -> None:
    store.append("kettle", None, qa("Kettle warranty?", "Two years"), kbs=[], model="m")
    store.append("tea", None, qa("绿茶水温？", "八十度，用 100% 的新鲜水"), kbs=[], model="m")
    store.append("other", "alice", qa("Kettle price?", "Ten"), kbs=[], model="m")

    def found(search: str) -> list[str]:
        return [c.id for c in store.list_conversations(None, search=search)]

    assert found("KETTLE") == ["kettle"]
    assert found("two years") == ["kettle"]
    assert found("八十度") == ["tea"]
    assert found("100%") == ["tea"]
    assert found("0%") == ["tea"]
    assert found("%") == ["tea"]  # a wildcard is searched for as itself
    assert found("_") == []
    with pytest.raises(BadInput, match="search must not be empty"):
        found("  ")


def test_feedback_is_stored_cleared_and_checked(store: ConversationStore) -> None:
    ids = store.append("c", "alice", qa("Warranty?", "Two years"), kbs=["docs"], model="m")
    stored = store.rate("c", "alice", ids[1], "down", "  It is three years  ")
    assert stored.comment == "It is three years"
    answer = store.get("c", "alice").messages[1]
    assert answer.feedback is not None and answer.feedback.verdict == "down"
    assert answer.to_json()["feedback"]["comment"] == "It is three years"

    rated = store.rated_answers()
    assert [(r.question, r.answer.content, r.conversation.kbs) for r in rated] == [
        ("Warranty?", "Two years", ["docs"])
    ]
    assert store.rated_answers(verdict="up") == []

    store.clear_rating("c", "alice", ids[1])
    assert store.get("c", "alice").messages[1].feedback is None
    with pytest.raises(NotFound, match="only answers can be rated"):
        store.rate("c", "alice", ids[0], "up")
    with pytest.raises(NotFound, match="has no message 12345"):
        store.rate("c", "alice", 12345, "up")
    with pytest.raises(NotFound):
        store.rate("c", "bob", ids[1], "up")
    with pytest.raises(BadInput, match="at most 2000"):
        store.rate("c", "alice", ids[1], "up", "x" * 2001)


def test_a_replaced_answer_takes_its_rating_with_it(store: ConversationStore) -> None:
    ids = store.append("c", None, qa("Warranty?", "Two years"), kbs=[], model="m")
    store.rate("c", None, ids[1], "down")
    store.append("c", None, qa("Warranty?", "Three years"), kbs=[], model="m", replace_from=ids[0])
    assert store.rated_answers() == []


def test_an_old_database_gains_the_feedback_columns(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE conversations (id VARCHAR(64) PRIMARY KEY, owner VARCHAR(128), "
                "title TEXT NOT NULL, kbs TEXT NOT NULL, model TEXT NOT NULL, "
                "created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL)"
            )
        )
        conn.execute(
            text(
                "CREATE TABLE conversation_messages (id INTEGER PRIMARY KEY, "
                "conversation_id VARCHAR(64) NOT NULL, role VARCHAR(16) NOT NULL, "
                "content TEXT NOT NULL, citations TEXT, created_at FLOAT NOT NULL)"
            )
        )
        conn.execute(text("INSERT INTO conversations VALUES ('c', NULL, 'Old', '[]', 'm', 1, 1)"))
        conn.execute(
            text(
                "INSERT INTO conversation_messages (conversation_id, role, content, created_at) "
                "VALUES ('c', 'user', 'q', 1), ('c', 'assistant', 'a', 2)"
            )
        )
    store = ConversationStore(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("conversation_messages")}
    assert {"meta", "verdict", "feedback_comment", "feedback_at"} <= columns
    answer = store.get("c", None).messages[1]
    assert answer.feedback is None and answer.id is not None
    store.rate("c", None, answer.id, "up")
    assert [r.answer.content for r in store.rated_answers(verdict="up")] == ["a"]
