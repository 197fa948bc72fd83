"""A stored conversation as a Markdown document: questions, answers, their sources and ratings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kbchat.store.conversations import Conversation, StoredMessage


def utc_time(seconds: float) -> str:
    """Unix seconds as ``2026-11-30 19:05 UTC``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def transcript_markdown(conversation: Conversation) -> str:
    """The conversation as Markdown: a header, then each turn under a ``##`` heading.

    An answer's sources follow it as a numbered list (file, page/sheet/slide, the quoted
    words); a rated answer ends with its rating and comment.
    """
    lines = [f"# {_one_line(conversation.title)}", ""]
    lines.append(f"- Knowledge bases: {', '.join(conversation.kbs) or 'none (plain chat)'}")
    lines.append(f"- Model: {conversation.model}")
    lines.append(f"- Started: {utc_time(conversation.created_at)}")
    lines.append(f"- Last answer: {utc_time(conversation.updated_at)}")
    lines.append(f"- Conversation id: {conversation.id}")
    for message in conversation.messages:
        lines += ["", *(_turn(message))]
    return "\n".join(lines).rstrip() + "\n"


def _turn(message: StoredMessage) -> list[str]:
    heading = "Question" if message.role == "user" else "Answer"
    lines = [f"## {heading} ({utc_time(message.created_at)})", "", message.content.strip()]
    if message.citations:
        lines += ["", "Sources:", ""]
        lines += [_source(citation) for citation in message.citations]
    if message.feedback is not None:
        rating = "👍 helpful" if message.feedback.verdict == "up" else "👎 not helpful"
        comment = f": {_one_line(message.feedback.comment)}" if message.feedback.comment else ""
        lines += ["", f"Rating: {rating}{comment}"]
    return lines


def _source(citation: dict[str, Any]) -> str:
    where = [str(citation.get("file", ""))]
    if citation.get("page") is not None:
        where.append(f"page {citation['page']}")
    if citation.get("sheet"):
        where.append(f"sheet {citation['sheet']}")
    if citation.get("slide") is not None:
        where.append(f"slide {citation['slide']}")
    quote = _one_line(str(citation.get("quote") or citation.get("text") or ""))
    said = f' — "{quote}"' if quote else ""
    return f"{citation.get('marker', '?')}. {', '.join(where)}{said}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
