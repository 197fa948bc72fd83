"""Stored conversations: their messages (with citations) in the catalog database.

The tables live beside the catalog's (same SQLAlchemy engine) but belong to this module;
a conversation is visible only to the owner that created it (an API key's name, or
None when the server runs without keys).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
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
    delete,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine

from kbchat.errors import BadInput, KbchatError, NotFound
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


class ConversationStore:
    """Create, continue, list and delete conversations; every write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)
        _add_missing_columns(engine)

    def list_conversations(
        self, owner: str | None, *, limit: int = 200, search: str | None = None
    ) -> list[Conversation]:
        """The owner's conversations, most recently updated first; with ``search``, only those
        whose title or any message contains it (case-insensitive for Latin letters).

        Raises:
            BadInput: ``limit`` is not positive, or ``search`` is blank or too long.
        """
        if limit <= 0:
            raise BadInput(f"limit must be > 0, got {limit}")
        query = (
            select(conversations)
            .where(_owned(owner))
            .order_by(conversations.c.updated_at.desc())
            .limit(limit)
        )
        if search is not None:
            query = query.where(_containing(search))
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
        replace_from: int | None = None,
    ) -> list[int]:
        """Add ``turns`` to the conversation, creating it (titled ``title``, or by its first
        turn) if new. With ``replace_from`` (a message id), that message and every later
        one are deleted first, in the same transaction: a regenerated or edited question and
        its answer take their place.

        Returns:
            The new messages' ids, in order.

        Raises:
            NotFound: the id belongs to another owner, or ``replace_from`` is not one of its
                messages.
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
            if replace_from is not None:
                _delete_from(conn, conversation_id, replace_from)
            return [_insert_message(conn, conversation_id, t) for t in turns]

    def rename(self, conversation_id: str, owner: str | None, title: str) -> Conversation:
        """Give the conversation a new title (surrounding space stripped).

        Raises:
            BadInput: the title is empty or longer than TITLE_MAX characters.
            NotFound: no such conversation for this owner.
        """
        title = " ".join(title.split())
        if not title:
            raise BadInput("title must not be empty", param="title")
        if len(title) > TITLE_MAX:
            raise BadInput(
                f"title must be at most {TITLE_MAX} characters, got {len(title)}", param="title"
            )
        with self.engine.begin() as conn:
            done = conn.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id, _owned(owner))
                .values(title=title)
            )
            if done.rowcount == 0:
                raise NotFound(f"no conversation with id {conversation_id!r}")
        return self.get(conversation_id, owner)

    def rate(
        self,
        conversation_id: str,
        owner: str | None,
        message_id: int,
        verdict: Verdict,
        comment: str = "",
    ) -> Feedback:
        """Rate an answer up or down with an optional comment; a new rating replaces the old.

        Raises:
            BadInput: the message is not an answer, the verdict is not up or down, or the
                comment is over COMMENT_CHARS characters.
            NotFound: no such conversation for this owner, or no such message in it.
        """
        if verdict not in VERDICTS:
            raise BadInput(f"verdict must be up or down, got {verdict!r}", param="verdict")
        comment = comment.strip()
        if len(comment) > COMMENT_CHARS:
            raise BadInput(
                f"comment must be at most {COMMENT_CHARS} characters, got {len(comment)}",
                param="comment",
            )
        feedback = Feedback(verdict, comment, time.time())
        self._write_rating(conversation_id, owner, message_id, feedback)
        return feedback

    def clear_rating(self, conversation_id: str, owner: str | None, message_id: int) -> None:
        """Take an answer's rating back (nothing to do if it has none).

        Raises:
            BadInput: the message is not an answer.
            NotFound: no such conversation for this owner, or no such message in it.
        """
        self._write_rating(conversation_id, owner, message_id, None)

    def _write_rating(
        self, conversation_id: str, owner: str | None, message_id: int, rating: Feedback | None
    ) -> None:
        target = self.get(conversation_id, owner).message(message_id)
        if target.role != "assistant":
            raise BadInput(
                f"message {message_id} is a {target.role} turn; only answers can be rated",
                param="message_id",
            )
        with self.engine.begin() as conn:
            conn.execute(
                update(messages)
                .where(messages.c.id == message_id)
                .values(
                    verdict=None if rating is None else rating.verdict,
                    feedback_comment=None if rating is None else rating.comment,
                    feedback_at=None if rating is None else rating.at,
                )
            )

    def rated_answers(self, *, verdict: Verdict | None = None) -> list[RatedAnswer]:
        """Every rated answer of every owner, oldest first, with the question it answered."""
        query = select(messages).where(messages.c.verdict.is_not(None))
        if verdict is not None:
            query = query.where(messages.c.verdict == verdict)
        rated: list[RatedAnswer] = []
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(messages.c.id)).mappings().all():
                header = (
                    conn.execute(
                        select(conversations).where(conversations.c.id == row["conversation_id"])
                    )
                    .mappings()
                    .first()
                )
                question = conn.execute(
                    select(messages.c.content)
                    .where(
                        messages.c.conversation_id == row["conversation_id"],
                        messages.c.role == "user",
                        messages.c.id < row["id"],
                    )
                    .order_by(messages.c.id.desc())
                    .limit(1)
                ).scalar()
                if header is not None and question is not None:
                    rated.append(RatedAnswer(_conversation(header), question, _message(row)))
        return rated

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


@dataclass(frozen=True, slots=True)
class RatedAnswer:
    """An answer with a rating, its conversation's header and the question it answered."""

    conversation: Conversation
    question: str
    answer: StoredMessage


def _insert_message(conn: Connection, conversation_id: str, turn: StoredMessage) -> int:
    inserted = conn.execute(insert(messages).values(_message_row(conversation_id, turn)))
    key = inserted.inserted_primary_key
    if key is None:
        raise KbchatError("the database returned no id for a stored message")
    return int(key[0])


def _delete_from(conn: Connection, conversation_id: str, message_id: int) -> None:
    found = conn.execute(
        select(messages.c.role).where(
            messages.c.conversation_id == conversation_id, messages.c.id == message_id
        )
    ).first()
    if found is None:
        raise NotFound(f"conversation {conversation_id!r} has no message {message_id}")
    conn.execute(
        delete(messages).where(
            messages.c.conversation_id == conversation_id, messages.c.id >= message_id
        )
    )


def _containing(search: str) -> Any:
    """Conversations whose title or a message contains ``search`` (LIKE, wildcards escaped)."""
    words = search.strip()
    if not words:
        raise BadInput("search must not be empty", param="q")
    if len(words) > SEARCH_CHARS:
        raise BadInput(
            f"search must be at most {SEARCH_CHARS} characters, got {len(words)}", param="q"
        )
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", words) + "%"
    in_messages = select(messages.c.conversation_id).where(
        messages.c.content.ilike(pattern, escape="\\")
    )
    return or_(
        conversations.c.title.ilike(pattern, escape="\\"),
        conversations.c.id.in_(in_messages),
    )


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
    """Columns added since a database was made (``meta`` by kbchat 0.1 databases; the
    feedback columns ``verdict``, ``feedback_comment``, ``feedback_at`` by 0.2's)."""
    present = {c["name"] for c in inspect(engine).get_columns(messages.name)}
    with engine.begin() as conn:
        for column in messages.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f"ALTER TABLE {messages.name} ADD COLUMN {column.name} {kind}"))


def _message(row: Any) -> StoredMessage:
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
