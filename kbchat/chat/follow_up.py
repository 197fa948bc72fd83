"""Follow-up questions ("那它的噪声呢？", "what about its price?") made standalone, keeping
the conversation's subject and the follow-up's own words and polarity."""

from __future__ import annotations

import re
from collections.abc import Sequence

from kbchat.chat.grounding import content_words, items, normalise, occurs
from kbchat.chat.memory import fit_history
from kbchat.llm.base import ChatModel, complete
from kbchat.prompts import render
from kbchat.text import Language
from kbchat.types import Message

# A question that leans on what came before: pronouns, "the above", a bare "…呢？".
FOLLOW_UP = re.compile(
    r"(它|他|她|这个|那个|这些|那些|其|该|上面|上述|前者|后者|呢[？?]?$)|"
    r"\b(it|its|this|that|these|those|they|them|he|she|his|her|the above|what about)\b",
    re.IGNORECASE,
)


def standalone_question(
    model: ChatModel, question: str, history: Sequence[Message], language: Language
) -> tuple[str, str]:
    """Turn a follow-up ("那它的噪声…", "what about its price?") into a standalone question.

    The model rewrites it; the rewrite is kept only if it keeps the conversation's subject
    (the items the last question named, ``grounding.items``), most of the follow-up's own
    words, and its polarity (a "not" stays a "not"). Otherwise the pronoun is replaced by
    the subject. Returns the question to answer and the query to search with: with no
    subject to put in, the follow-up is answered as asked (with the conversation) and
    searched for together with the last question.
    """
    subject = _subject(history)
    rewritten = rewrite_question(model, question, history, language)
    if _keeps_meaning(rewritten, question, subject):
        return rewritten, rewritten
    if subject:
        named = subject[0]
        replaced = _PRONOUN.sub(
            lambda m: named + ("'s" if m.group(0).lower() == "its" else ""), question, count=1
        )
        if replaced == question:
            replaced = f"{named} {question}" if language == "en" else f"{named}：{question}"
        replaced = _LEAD.sub("", replaced)
        return replaced, replaced
    previous = next((m.content for m in reversed(history) if m.role == "user"), "")
    return question, f"{previous} {question}".strip()


_PRONOUN = re.compile(
    r"它们|它|其|该产品|该型号|这个|那个|\b(?:its|it|this|that|they|them)\b", re.IGNORECASE
)
_LEAD = re.compile(r"^(那么|那|还有|and\s+|so\s+)", re.IGNORECASE)
_NEGATION = re.compile(r"不|没|未|无|非|别|\b(?:not|no|never|without|n't)\b", re.IGNORECASE)


def _subject(history: Sequence[Message]) -> list[str]:
    """The items named by the most recent user turn that names any."""
    for message in reversed(history):
        if message.role == "user" and (named := items(message.content)):
            return named
    return []


def _keeps_meaning(rewritten: str, question: str, subject: Sequence[str]) -> bool:
    if normalise(rewritten) == normalise(question):
        return False
    haystack = normalise(rewritten)
    if subject and not any(occurs(item, haystack) for item in subject):
        return False
    if not all(occurs(item, haystack) for item in items(question)):
        return False
    asked = set(content_words(question))
    kept = asked & set(content_words(rewritten))
    if asked and len(kept) < 0.5 * len(asked):
        return False  # the rewrite asks something else (often the previous question again)
    return bool(_NEGATION.search(rewritten)) == bool(_NEGATION.search(question))


def rewrite_question(
    model: ChatModel, question: str, history: Sequence[Message], language: Language
) -> str:
    """The model's standalone version of a follow-up (unchecked; see ``standalone_question``)."""
    recent = fit_history(history, 400, model.count_tokens)
    lines = "\n".join(f"{m.role}: {m.content}" for m in recent)
    prompt = render("rewrite", language, history=lines, question=question)
    text, _, _ = complete(model, [Message("user", prompt)], temperature=0.0, max_tokens=64)
    cleaned = [_LABEL.sub("", line).strip() for line in text.splitlines()]
    rewritten = next((line for line in cleaned if line), "")
    return rewritten if 2 <= len(rewritten) <= 4 * len(question) + 200 else question


# Labels of the rewrite prompt that a small model may echo before its answer.
_LABEL = re.compile(
    r"^\s*(?:(?:last|standalone|rewritten) question|最后的问题|改写后的问题)\s*[:：]\s*",
    re.IGNORECASE,
)
