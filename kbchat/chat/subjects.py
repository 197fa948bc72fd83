"""Is an answer read from a passage about what the question asks, or about its neighbour?

A knowledge base often holds one document per item: the article on each species of eel,
each station of a metro line, the manual of each model of a product. When the item asked
about has no answer in the files, the small model answers from a sibling's document, whose
sentence holds the same words ("黑尾前肛鳗的体长是体高的多少倍？" answered with the 17.3 of
the article on 高氏前肛鳗, "威尔特郡的东北与哪个郡相邻？" with a county beside another
one). The key terms (``answerable.support``) cannot tell: the sibling's sentence holds
体长, 体高 and 倍 as well. The document's title can: the question names one passage's
subject (its title line, ``answerable.subjects``) and the answer comes from a passage that
neither is about it nor mentions it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kbchat.chat.answerable import key_terms, named_titles, specific, subjects
from kbchat.chat.grounding import content_words, normalise, without_markers
from kbchat.text import HAN_RE


@dataclass(frozen=True, slots=True)
class OtherSubject:
    """The passage an answer was read from, about something other than the question.

    Attributes:
        index: which passage (an index into the passages given).
        asked: the subject the question names, as the title line writes it (normalised).
        about: that passage's own subject, "" when it starts without a title line.
    """

    index: int
    asked: str
    about: str


def other_subject(
    answer: str, question: str, passages: Sequence[str], files: Sequence[str]
) -> OtherSubject | None:
    """The passage ``answer`` was read from when it is about another subject than the one
    ``question`` names, else None.

    The question names a subject when a passage's title line (or a name in it) occurs in the
    question; of nested ones the longest counts ("黑尾前肛鳗" over "前肛鳗", the title of a
    related article). The answer was read from the passages holding the most of its new words
    (those not in the question, as words or as text, and found in some passage; its names,
    codes and numbers when it has any, ``answerable.specific``); an answer adding no words
    (affirming a yes-or-no question) was read where the question's key terms beside the
    subject are. It is about the question's subject when one of those passages is a subject's
    passage or from the same file, mentions the subject, is what the answer names (the other
    hop of a bridge question), or is named by a subject's passage. With no named subject, or
    no new words found in a passage: None.

    Args:
        answer: the answer (or its start), citation markers allowed.
        question: the question asked.
        passages: the passage texts the model was given.
        files: each passage's file name, in the same order.
    """
    read = [(subjects(text), normalise(text)) for text in passages]
    titles = (s for own, _ in read for s in own if _named(s, question))
    named = named_titles(question, titles)
    asked = set(named)
    homes = [n for n, (own, _) in enumerate(read) if set(own) & asked]
    if not homes:
        return None
    sources = _read_from(answer, question, [text for _, text in read], asked)
    if not sources:
        return None
    answered = normalise(without_markers(answer))
    for n in sources:
        own, text = read[n]
        if n in homes or any(files[n] == files[m] for m in homes):
            return None
        if any(s in answered for s in own):
            return None  # the answer is what this passage is about: the question's other hop
        if any(s in text for s in asked):
            return None
        if any(any(s in read[m][1] for s in own) for m in homes):
            return None  # a subject's passage names this one: two hops of one question
    first = sources[0]
    about = read[first][0][0] if read[first][0] else ""
    return OtherSubject(first, named[0], about)


def _read_from(answer: str, question: str, texts: Sequence[str], asked: set[str]) -> list[int]:
    """The passages (indexes into the normalised ``texts``) holding the most of the answer's
    new words, as ``other_subject`` says; none when no passage holds any."""
    said = set(content_words(question))
    asked_in = normalise(question)
    new = [w for w in dict.fromkeys(content_words(without_markers(answer))) if w not in said]
    found = [w for w in map(normalise, new) if w not in asked_in and any(w in t for t in texts)]
    if not new:  # "Does the X100 have an app?" - "The X100 has an app.": where is the app?
        found = [t for t in key_terms(question) if not any(t in s for s in asked)]
    needles = [w for w in found if specific(w) or any(ch.isdigit() for ch in w)] or found
    counts = [sum(1 for w in needles if w in text) for text in texts]
    most = max(counts, default=0)
    return [n for n, count in enumerate(counts) if most and count == most]


def _named(subject: str, question: str) -> bool:
    """True when ``question`` names ``subject`` as a name: a Latin-script title must be
    capitalised where the question writes it ("Party", the title of an article, is not
    named by "the party that included her")."""
    if HAN_RE.search(subject):
        return True
    at = question.lower().find(subject)
    return at < 0 or not question[at].islower()
