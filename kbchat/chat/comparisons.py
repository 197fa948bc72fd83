"""Does an answer to "which came first, A or B?" pick the one the passages date first?

A choice between two dated things ("Who was born earlier, A or B?", "Which band was formed
first?", "谁更年长，甲还是乙？") is answered by comparing two years the passages state, and the
0.5B model compares them badly: over two biographies giving 1872 and 1868 it answered "Tobias
Wren was born earlier than Maren Solberg" in 10 of 13 tries, at temperature 0 every time.
Every name and year of such an answer is in the passages, so the claim checks pass it. The
passages say which is right, so the answer is checked against them here.

Each option's year is read from its own passage (one whose title line names it, or whose
first sentence starts with it): the first year of the first sentence holding what is compared
(the question's key terms besides the options: "born", which a life span after the name
states, ``answerable``; "formed"). The answer's pick is the option it names, or, naming both,
the one it names first beside the question's own comparison word ("earlier", "first", "更早").
An answer using the opposite word ("later than") or naming neither is not judged.

A declined pick is asked for once more (``kbchat.chat.rag``) with the two years as a note
(``Dated.hint``): the passages do answer the question, and the model copies a pick it is
given far better than it compares years.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kbchat.chat.answerable import key_terms, options, passage_sentences, subjects
from kbchat.chat.grounding import normalise, without_markers
from kbchat.text import Language

_EARLIER_EN = frozenset("earlier earliest first older oldest before sooner".split())
_LATER_EN = frozenset("later latest last younger youngest after newer newest".split())
_EARLIER_ZH = ("更早", "较早", "最早", "早于", "先", "年长")
_LATER_ZH = ("更晚", "较晚", "最晚", "晚于", "后", "年轻")
_YEAR = re.compile(r"(?<![\d.,])(1\d\d\d|20\d\d)(?![\d.,]?\d)")


PICKS = "the answer picks "
"""How a decline of this check starts (``rag`` retries such an answer with ``Dated.hint``)."""


@dataclass(frozen=True, slots=True)
class Dated:
    """A choice between two options the passages date.

    Attributes:
        options: the two options, normalised, in the question's order.
        years: the year the passages give each, in the same order.
        asked: "earlier" or "later", the way the question compares.
        written: the two options as the question writes them.
    """

    options: tuple[str, str]
    years: tuple[int, int]
    asked: str
    written: tuple[str, str]

    @property
    def expected(self) -> int:
        """The index of the option the years pick."""
        pick = min(self.years) if self.asked == "earlier" else max(self.years)
        return self.years.index(pick)

    def hint(self, language: Language) -> str:
        """The years and the pick they make, as a note after the question for the model's
        second try, in ``language``. Placed before the question, the 0.5B model ignored it;
        after, it copied the pick (4 of 4 tries)."""
        (a, b), (x, y) = self.written, self.years
        right = self.written[self.expected]
        if language == "zh":
            way = "更早" if self.asked == "earlier" else "更晚"
            return f"注意：资料给出{a}为{x}年，{b}为{y}年，因此{way}的是{right}。"
        return (
            f"Note: the sources give {x} for {a} and {y} for {b}, so the {self.asked} one "
            f"is {right}."
        )


def dated(question: str, passages: Sequence[str]) -> Dated | None:
    """The choice ``question`` offers, with the year ``passages`` give each option, or None
    when it is no choice of two by earlier/later or a year is missing or both are equal."""
    written = options(question)
    offered = [normalise(option) for option in written]
    if len(offered) != 2:
        return None
    asked = _direction(normalise(question))
    if asked is None:
        return None
    compared = [t for t in key_terms(question) if not any(t in option for option in offered)]
    first, second = (_year_of(option, compared, passages) for option in offered)
    if first is None or second is None or first == second:
        return None
    return Dated((offered[0], offered[1]), (first, second), asked, (written[0], written[1]))


def comparison_conflict(answer: str, question: str, passages: Sequence[str]) -> str | None:
    """Why ``answer`` picks the option the passages date the other way, or None.

    Args:
        answer: the answer (or its start), citation markers allowed.
        question: the question asked: a choice between two options (``answerable.options``)
            by an earlier/later comparison.
        passages: the passage texts the model was given.

    Returns:
        A reason starting with ``PICKS`` and naming both years, e.g. "the answer picks tobias
        wren, but the passages give 1872 for tobias wren and 1868 for maren solberg".
    """
    choice = dated(question, passages)
    if choice is None:
        return None
    said = normalise(without_markers(answer))
    picked = _picked(said, choice.options, choice.asked)
    if picked is None or picked == choice.expected:
        return None
    (a, b), (x, y) = choice.options, choice.years
    if picked == 1:
        (a, b), (x, y) = (b, a), (y, x)
    return f"{PICKS}{a}, but the passages give {x} for {a} and {y} for {b}"


def _direction(text: str) -> str | None:
    """Which way ``text`` compares: "earlier", "later", or None when it does not or both
    ways. A Chinese word is found inside others ("先" in "先生", "后" in "之后"): such text
    is read as comparing both ways or the wrong way, and nothing is judged."""
    words = set(re.findall(r"[a-z]+", text))
    earlier = bool(words & _EARLIER_EN) or any(word in text for word in _EARLIER_ZH)
    later = bool(words & _LATER_EN) or any(word in text for word in _LATER_ZH)
    if earlier == later:
        return None
    return "earlier" if earlier else "later"


def _picked(said: str, offered: Sequence[str], asked: str) -> int | None:
    """Which option the normalised answer picks, or None (see the module's docstring)."""
    places = [said.find(option) for option in offered]
    named = [n for n, at in enumerate(places) if at >= 0]
    if not named:
        return None
    direction = _direction(said)
    if direction is not None and direction != asked:
        return None  # "X was born later than Y": the pick is the other one, said another way
    if len(named) == 1:
        return named[0]
    if direction is None:
        return None  # both named, no comparison: a list of the two dates picks nothing
    return min(named, key=lambda n: places[n])


def _year_of(option: str, compared: Sequence[str], passages: Sequence[str]) -> int | None:
    """The year the option's own passage gives for what is compared, None when no passage
    of its own, no compared term or no year beside it."""
    if not compared:
        return None
    for passage in passages:
        cut = passage_sentences(passage)
        own = any(option in subject or subject in option for subject in subjects(passage))
        if not own and not (len(cut) > 1 and cut[1].startswith(option)):
            continue
        for sentence in cut:
            if any(term in sentence for term in compared):
                year = _YEAR.search(sentence)
                if year:
                    return int(year.group(1))
    return None
