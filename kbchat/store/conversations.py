"""Stored conversations: their messages (with citations and ratings) in the catalog database.

A conversation is visible only to the owner that created it (an API key's name, or None
when the server runs without keys). The tables and records are in
``kbchat.store.conversation_schema``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from kbchat.errors import BadInput, KbchatError, NotFound
from kbchat.store.conversation_schema import (
    COMMENT_CHARS,
    MESSAGE_ID_MAX,
    SEARCH_CHARS,
    TITLE_CHARS,
    TITLE_MAX,
    VERDICTS,
    Conversation,
    Feedback,
    RatedAnswer,
    StoredMessage,
    Verdict,
    add_missing_columns,
    conversation_record,
    conversations,
    message_record,
    message_row,
    messages,
    metadata,
    new_conversation_id,
    title_from,
)

__all__ = [
    "COMMENT_CHARS",
    "MESSAGE_ID_MAX",
    "SEARCH_CHARS",
    "TITLE_CHARS",
    "TITLE_MAX",
    "Conversation",
    "ConversationStore",
    "Feedback",
    "RatedAnswer",
    "StoredMessage",
    "Verdict",
    "new_conversation_id",
    "title_from",
]


class ConversationStore:
    """Create, continue, list and delete conversations; every write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)
        add_missing_columns(engine)

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
            return [conversation_record(row) for row in conn.execute(query).mappings()]

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
            stored = [message_record(r) for r in rows]
        return conversation_record(row, stored)

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
            BadInput: the verdict is not up or down, or the comment is over COMMENT_CHARS
                characters.
            NotFound: no such conversation for this owner, or no such answer in it.
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
            NotFound: no such conversation for this owner, or no such answer in it.
        """
        self._write_rating(conversation_id, owner, message_id, None)

    def _write_rating(
        self, conversation_id: str, owner: str | None, message_id: int, rating: Feedback | None
    ) -> None:
        target = self.get(conversation_id, owner).message(message_id)
        if target.role != "assistant":
            raise NotFound(
                f"conversation {conversation_id!r} has no answer {message_id} (message "
                f"{message_id} is a question; only answers can be rated)"
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
                    rated.append(
                        RatedAnswer(conversation_record(header), question, message_record(row))
                    )
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


def _insert_message(conn: Connection, conversation_id: str, turn: StoredMessage) -> int:
    inserted = conn.execute(insert(messages).values(message_row(conversation_id, turn)))
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
