"""The conversation tables and the records their rows become (and come from).

The tables live beside the catalog's (same SQLAlchemy engine) but belong to
``kbchat.store.conversations``, which reads and writes them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.engine import Engine

from kbchat.errors import NotFound
from kbchat.types import Message, Role

TITLE_CHARS = 60
"""Length of a title made from the first question."""
TITLE_MAX = 200
"""Longest title a conversation may be given."""

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=True),
    Column("title", Text, nullable=False),
    Column("kbs", Text, nullable=False, default="[]"),
    Column("model", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_conversations_owner", "owner", "updated_at"),
)

messages = Table(
    "conversation_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "conversation_id",
        String(64),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("citations", Text, nullable=True),
    Column("meta", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("verdict", String(8), nullable=True),
    Column("feedback_comment", Text, nullable=True),
    Column("feedback_at", Float, nullable=True),
    Index("ix_messages_conversation", "conversation_id", "id"),
    # ids are never reused (a replaced answer's id must not name its successor)
    sqlite_autoincrement=True,
)

Verdict = Literal["up", "down"]
VERDICTS: tuple[Verdict, ...] = ("up", "down")
COMMENT_CHARS = 2000
SEARCH_CHARS = 200
MESSAGE_ID_MAX = 2**63 - 1
"""Largest message id (a signed 64-bit integer in the database)."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """A reader's rating of an answer: ``verdict`` up or down, an optional comment, when
    (Unix seconds)."""

    verdict: Verdict
    comment: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "comment": self.comment, "at": self.at}


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One turn as stored; ``citations`` are the answer's sources (assistant turns) and
    ``meta`` what the page shows again after a reload: the answer's ``outcome``,
    ``grounded``, ``notices`` and ``closest`` passages (``shapes.chat.AnswerMeta``)."""

    role: Role
    content: str
    created_at: float
    citations: list[dict[str, Any]] | None = None
    meta: dict[str, Any] | None = None
    id: int | None = None
    """The stored row's id (None before it is stored); feedback and ``replace_from`` name it."""
    feedback: Feedback | None = None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "role": self.role,
            "content": self.content,
            "created_at": self.created_at,
        }
        if self.id is not None:
            value["id"] = self.id
        if self.citations is not None:
            value["citations"] = self.citations
        if self.meta is not None:
            value.update(self.meta)
        if self.feedback is not None:
            value["feedback"] = self.feedback.to_json()
        return value


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation's header and, when read whole, its messages in order."""

    id: str
    title: str
    kbs: list[str]
    model: str
    created_at: float
    updated_at: float
    messages: list[StoredMessage] = field(default_factory=list)

    def to_json(self, *, with_messages: bool = False) -> dict[str, Any]:
        value: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "kbs": self.kbs,
            "model": self.model,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if with_messages:
            value["messages"] = [m.to_json() for m in self.messages]
        return value

    def history(self, before: int | None = None) -> list[Message]:
        """The messages as chat history for the next turn; with ``before`` (a message id),
        only the messages stored before that one (the history of a replaced turn)."""
        kept = [m for m in self.messages if before is None or (m.id is not None and m.id < before)]
        return [Message(m.role, m.content) for m in kept]

    def message(self, message_id: int) -> StoredMessage:
        """The message with this id.

        Raises:
            NotFound: the conversation has no such message.
        """
        for stored in self.messages:
            if stored.id == message_id:
                return stored
        raise NotFound(f"conversation {self.id!r} has no message {message_id}")


def new_conversation_id() -> str:
    return uuid.uuid4().hex


def title_from(question: str) -> str:
    """A short title: the first line of the first question, cut at TITLE_CHARS."""
    line = " ".join(question.strip().split("\n", 1)[0].split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class RatedAnswer:
    """An answer with a rating, its conversation's header and the question it answered."""

    conversation: Conversation
    question: str
    answer: StoredMessage


def conversation_record(row: Any, stored: list[StoredMessage] | None = None) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        kbs=json.loads(row["kbs"]),
        model=row["model"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        messages=stored or [],
    )


def add_missing_columns(engine: Engine) -> None:
    """Columns added since a database was made (``meta`` by kbchat 0.1 databases; the
    feedback columns ``verdict``, ``feedback_comment``, ``feedback_at`` by 0.2's)."""
    present = {c["name"] for c in inspect(engine).get_columns(messages.name)}
    with engine.begin() as conn:
        for column in messages.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f"ALTER TABLE {messages.name} ADD COLUMN {column.name} {kind}"))


def message_record(row: Any) -> StoredMessage:
    citations = json.loads(row["citations"]) if row["citations"] is not None else None
    meta = json.loads(row["meta"]) if row["meta"] is not None else None
    feedback = None
    if row["verdict"] is not None:
        feedback = Feedback(row["verdict"], row["feedback_comment"] or "", row["feedback_at"])
    return StoredMessage(
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        citations=citations,
        meta=meta,
        id=row["id"],
        feedback=feedback,
    )


def message_row(conversation_id: str, turn: StoredMessage) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "role": turn.role,
        "content": turn.content,
        "created_at": turn.created_at,
        "citations": None
        if turn.citations is None
        else json.dumps(turn.citations, ensure_ascii=False),
        "meta": None if turn.meta is None else json.dumps(turn.meta, ensure_ascii=False),
    }
