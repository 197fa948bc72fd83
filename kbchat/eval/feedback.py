"""Answers rated in the web page, as an evaluation set that ``kbchat eval answers`` reads.

One JSON object a line: the question, the rated answer, its sources (file, page, quote),
the verdict, the reader's comment, the model and the time, plus the question-set fields
(``kbchat.eval.retrieval.parse_query``):

- thumbs up on an answer: answerable, the answer copied whole as ``answers`` (and
  ``reference_answer``), the cited files' stems as ``gold_doc_ids``. ``eval answers`` counts an
  answer correct when it contains one of ``answers``: cut them down to the key phrases
  ("two years") before measuring, or only the same wording counts.
- thumbs up on a refusal ("the files do not say"): unanswerable, so declining is correct.
- thumbs down: ``needs_reference`` true. Nobody has said yet what the right answer is, so
  ``eval answers`` skips the line until someone writes its ``answers`` (and removes the flag)
  or marks it ``"answerable": false``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from kbchat.chat.grounding import without_markers
from kbchat.store.conversations import RatedAnswer

REFUSED = ("refused",)
"""Outcomes that decline to answer (``shapes.chat.AnswerMeta.outcome``)."""


def feedback_rows(
    rated: Iterable[RatedAnswer], *, kb: str | None = None
) -> Iterator[dict[str, Any]]:
    """The evaluation rows of rated answers, in the order given; with ``kb``, only answers of
    conversations that searched that knowledge base."""
    for item in rated:
        if kb is not None and kb not in item.conversation.kbs:
            continue
        yield feedback_row(item)


def feedback_row(item: RatedAnswer) -> dict[str, Any]:
    """One rated answer as a question-set line (see the module's description)."""
    answer = item.answer
    feedback = answer.feedback
    if feedback is None or answer.id is None:
        raise ValueError(f"message {answer.id} is not a stored, rated answer")
    citations = answer.citations or []
    outcome = (answer.meta or {}).get("outcome", "answered")
    row: dict[str, Any] = {
        "id": f"feedback-{answer.id}",
        "question": item.question,
        "answer": answer.content,
        "sources": [_source(c) for c in citations],
        "verdict": feedback.verdict,
        "comment": feedback.comment,
        "model": item.conversation.model,
        "time": _iso(answer.created_at),
        "rated_at": _iso(feedback.at),
        "kbs": item.conversation.kbs,
        "conversation_id": item.conversation.id,
        "outcome": outcome,
    }
    row["gold_doc_ids"] = []
    if feedback.verdict == "down":
        row["needs_reference"] = True
    elif outcome in REFUSED:
        row["answerable"] = False
    else:
        row["answerable"] = True
        reference = without_markers(answer.content)  # "[1]" would not match another run's "[2]"
        row["answers"] = [reference]
        row["reference_answer"] = reference
        row["gold_doc_ids"] = list(
            dict.fromkeys(PurePosixPath(str(c.get("file", ""))).stem for c in citations)
        )
    return row


def to_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """Rows as JSON Lines (UTF-8 text, one object a line, non-ASCII kept as is)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _source(citation: dict[str, Any]) -> dict[str, Any]:
    return {
        "file": citation.get("file"),
        "page": citation.get("page"),
        "quote": citation.get("quote") or citation.get("text") or "",
        "kb": citation.get("kb"),
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
