"""Stored conversations: their messages (with citations) in the catalog database.

The tables live beside the catalog's (same SQLAlchemy engine) but belong to this module;
a conversation is visible only to the owner that created it (an API key's name, or
None when the server runs without keys).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

from kbchat.errors import BadInput, NotFound
from kbchat.types import Message, Role

TITLE_CHARS = 60

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
    Index("ix_messages_conversation", "conversation_id", "id"),
)


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

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "role": self.role,
            "content": self.content,
            "created_at": self.created_at,
        }
        if self.citations is not None:
            value["citations"] = self.citations
        if self.meta is not None:
            value.update(self.meta)
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

    def history(self) -> list[Message]:
        """The messages as chat history for the next turn."""
        return [Message(m.role, m.content) for m in self.messages]


def new_conversation_id() -> str:
    return uuid.uuid4().hex


def title_from(question: str) -> str:
    """A short title: the first line of the first question, cut at TITLE_CHARS."""
    line = " ".join(question.strip().split("\n", 1)[0].split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


class ConversationStore:
    """Create, continue, list and delete conversations; every write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)
        _add_missing_columns(engine)

    def list_conversations(self, owner: str | None, *, limit: int = 200) -> list[Conversation]:
        """The owner's conversations, most recently updated first."""
        if limit <= 0:
            raise BadInput(f"limit must be > 0, got {limit}")
        query = (
            select(conversations)
            .where(_owned(owner))
            .order_by(conversations.c.updated_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_conversation(row) for row in conn.execute(query).mappings()]

    def get(self, conversation_id: str, owner: str | None) -> Conversation:
        """The conversation with all its messages.

        Raises:
            NotFound: no such conversation for this owner.
        """
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(conversations).where(
                        conversations.c.id == conversation_id, _owned(owner)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound(f"no conversation with id {conversation_id!r}")
            rows = conn.execute(
                select(messages)
                .where(messages.c.conversation_id == conversation_id)
                .order_by(messages.c.id)
            ).mappings()
            stored = [_message(r) for r in rows]
        return _conversation(row, stored)

    def append(
        self,
        conversation_id: str,
        owner: str | None,
        turns: Sequence[StoredMessage],
        *,
        kbs: Sequence[str],
        model: str,
        title: str | None = None,
    ) -> None:
        """Add ``turns`` to the conversation, creating it (titled ``title``, or by its first
        turn) if new.

        Raises:
            NotFound: the id belongs to another owner.
        """
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(conversations.c.owner).where(conversations.c.id == conversation_id)
            ).first()
            header = {
                "kbs": json.dumps(list(kbs), ensure_ascii=False),
                "model": model,
                "updated_at": now,
            }
            if row is None:
                first = title or (turns[0].content if turns else "conversation")
                title = title_from(first)
                conn.execute(
                    insert(conversations).values(
                        id=conversation_id, owner=owner, title=title, created_at=now, **header
                    )
                )
            elif row.owner != owner:
                raise NotFound(f"no conversation with id {conversation_id!r}")
            else:
                conn.execute(
                    update(conversations)
                    .where(conversations.c.id == conversation_id)
                    .values(**header)
                )
            if turns:
                conn.execute(insert(messages), [_message_row(conversation_id, t) for t in turns])

    def delete(self, conversation_id: str, owner: str | None) -> None:
        """Delete the conversation and its messages.

        Raises:
            NotFound: no such conversation for this owner.
        """
        with self.engine.begin() as conn:
            found = conn.execute(
                select(conversations.c.id).where(
                    conversations.c.id == conversation_id, _owned(owner)
                )
            ).first()
            if found is None:
                raise NotFound(f"no conversation with id {conversation_id!r}")
            conn.execute(delete(messages).where(messages.c.conversation_id == conversation_id))
            conn.execute(delete(conversations).where(conversations.c.id == conversation_id))


def _owned(owner: str | None) -> Any:
    column = conversations.c.owner
    return column.is_(None) if owner is None else column == owner


def _conversation(row: Any, stored: list[StoredMessage] | None = None) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        kbs=json.loads(row["kbs"]),
        model=row["model"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        messages=stored or [],
    )


def _add_missing_columns(engine: Engine) -> None:
    """Columns added since a database was made (``meta``, by kbchat 0.1 databases)."""
    present = {c["name"] for c in inspect(engine).get_columns(messages.name)}
    with engine.begin() as conn:
        for column in messages.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f"ALTER TABLE {messages.name} ADD COLUMN {column.name} {kind}"))


def _message(row: Any) -> StoredMessage:
    citations = json.loads(row["citations"]) if row["citations"] is not None else None
    meta = json.loads(row["meta"]) if row["meta"] is not None else None
    return StoredMessage(
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        citations=citations,
        meta=meta,
    )


def _message_row(conversation_id: str, turn: StoredMessage) -> dict[str, Any]:
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
