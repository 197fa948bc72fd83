"""Stored conversations: list and search, read, rename, rate answers, export, delete.

A conversation belongs to the caller that made it (an API key's name, or nobody when the
server runs without keys); another caller's conversation is answered as not found. The
OpenAI-compatible API stores nothing, so its clients' chats never appear here.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from kbchat.chat.transcript import transcript_markdown
from kbchat.server.auth import Principal
from kbchat.server.errors import BadRequestRoute, documented
from kbchat.server.files_api import delete_conversation_files
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.shapes.chat import (
    ConversationDetail,
    ConversationInfo,
    FeedbackInfo,
    conversation_detail,
    conversation_info,
    feedback_info,
)
from kbchat.store.conversations import (
    COMMENT_CHARS,
    MESSAGE_ID_MAX,
    SEARCH_CHARS,
    TITLE_MAX,
    Verdict,
)

router = APIRouter(tags=["conversations"], route_class=BadRequestRoute)

MessageId = Annotated[int, Path(ge=1, le=MESSAGE_ID_MAX, description="A message's id.")]

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]


class RenameRequest(BaseModel):
    """A conversation's new title."""

    title: str = Field(
        ..., max_length=TITLE_MAX, description="Not empty; surrounding space is dropped."
    )

    model_config = ConfigDict(strict=True, extra="forbid")


class FeedbackRequest(BaseModel):
    """A rating of an answer."""

    verdict: Verdict = Field(..., description="up (a good answer) or down.")
    comment: str = Field("", max_length=COMMENT_CHARS, description="Optional, what was wrong.")

    model_config = ConfigDict(strict=True, extra="forbid")


@router.get("/api/conversations", responses=documented(400, 401))
def list_conversations(
    state: StateDep,
    caller: CallerDep,
    q: Annotated[
        str | None,
        Query(
            max_length=SEARCH_CHARS,
            description="Only conversations whose title or messages contain this text "
            "(blank: all).",
        ),
    ] = None,
) -> list[ConversationInfo]:
    """The caller's conversations, most recent first (those matching ``q``, when given)."""
    search = q.strip() if q is not None else ""
    found = state.conversations.list_conversations(caller.name, search=search or None)
    return [conversation_info(c) for c in found]


@router.get(
    "/api/conversations/{conversation_id}",
    responses=documented(400, 401, 404),
    response_model_exclude_unset=True,
)
def get_conversation(
    conversation_id: str, state: StateDep, caller: CallerDep
) -> ConversationDetail:
    """A conversation with its messages (and each answer's citations and rating)."""
    return conversation_detail(state.conversations.get(conversation_id, caller.name))


@router.patch("/api/conversations/{conversation_id}", responses=documented(400, 401, 404, 413))
def rename_conversation(
    conversation_id: str, body: RenameRequest, state: StateDep, caller: CallerDep
) -> ConversationInfo:
    """Give a conversation a new title."""
    return conversation_info(state.conversations.rename(conversation_id, caller.name, body.title))


@router.put(
    "/api/conversations/{conversation_id}/messages/{message_id}/feedback",
    responses=documented(400, 401, 404, 413),
)
def rate_answer(
    conversation_id: str,
    message_id: MessageId,
    body: FeedbackRequest,
    state: StateDep,
    caller: CallerDep,
) -> FeedbackInfo:
    """Rate an answer up or down, with an optional comment (a new rating replaces the old).

    Rated answers become an evaluation set with ``kbchat feedback export``.
    """
    rating = state.conversations.rate(
        conversation_id, caller.name, message_id, body.verdict, body.comment
    )
    return feedback_info(rating)


@router.delete(
    "/api/conversations/{conversation_id}/messages/{message_id}/feedback",
    status_code=204,
    responses=documented(400, 401, 404),
)
def clear_rating(
    conversation_id: str, message_id: MessageId, state: StateDep, caller: CallerDep
) -> Response:
    """Take an answer's rating back."""
    state.conversations.clear_rating(conversation_id, caller.name, message_id)
    return Response(status_code=204)


@router.get(
    "/api/conversations/{conversation_id}/export",
    response_model=ConversationDetail,
    response_model_exclude_unset=True,
    responses={
        200: {
            "description": "The conversation as a file to download (Content-Disposition: "
            "attachment): Markdown, or the JSON of GET /api/conversations/{id}.",
            "content": {"text/markdown": {"schema": {"type": "string"}}},
        },
        **documented(400, 401, 404),
    },
)
def export_conversation(
    conversation_id: str,
    state: StateDep,
    caller: CallerDep,
    format: Annotated[
        Literal["markdown", "json"], Query(description="markdown or json.")
    ] = "markdown",
) -> Response:
    """Download a conversation as Markdown (questions, answers, sources, ratings) or JSON."""
    conversation = state.conversations.get(conversation_id, caller.name)
    if format == "json":
        detail = conversation_detail(conversation).model_dump(mode="json", exclude_unset=True)
        content = json.dumps(detail, ensure_ascii=False, indent=2)
        media_type, suffix = "application/json", "json"
    else:
        content = transcript_markdown(conversation)
        media_type, suffix = "text/markdown; charset=utf-8", "md"
    name = re.sub(r"[^\w.-]", "_", conversation.id, flags=re.ASCII)
    disposition = f'attachment; filename="conversation-{name}.{suffix}"'
    return Response(content, media_type=media_type, headers={"Content-Disposition": disposition})


@router.delete(
    "/api/conversations/{conversation_id}",
    status_code=204,
    responses=documented(400, 401, 404),  # 400: its files are still being attached
)
def delete_conversation(conversation_id: str, state: StateDep, caller: CallerDep) -> Response:
    """Delete a conversation, its messages and its attached files."""
    state.conversations.delete(conversation_id, caller.name)
    delete_conversation_files(state, conversation_id, caller.name)
    return Response(status_code=204)
