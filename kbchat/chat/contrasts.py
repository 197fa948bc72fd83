"""An answer the passages give for a sibling of what the question asks: another year, the
women's final for the men's, the fourth quarter for the first.

News on one topic states the same measure for several years and events, often in one
sentence: "以特斯拉2021年的全球交付量93.62万辆计算，……特斯拉2022年的交付量需要超过140万辆".
Asked "2022年特斯拉交付量" over such passages (the 2022 figure absent), the 0.5B model answers
"93.62万辆"; asked "2022年WTT世界杯决赛男单冠军" over a report of the women's final, it names
the women's champion. The passages hold both answers, so the claim check passes them. RGB's
negative-rejection passages (Chen et al., AAAI 2024, "Benchmarking Large Language Models in
Retrieval-Augmented Generation") are built this way: same topic, the asked fact absent.

The check reads clauses (cut at commas and sentence ends). A clause *contradicts* the
question when it lacks one of the question's key terms and holds a sibling of it instead:

- a year: the clause names years, none of them the question's ("2021年" for "2022年");
- another number of as many digits ("iPhone 13" for "iPhone 14");
- a Chinese word differing in one character that is a numeral ("第四季度" for "第一季度") or
  one of a contrast pair (``_PAIRS``: 男/女, 上/下, 首/次, 冠/亚 ...).

A clause that lacks the term and holds no sibling says nothing either way: the year may be in
the sentence before ("2022年，特斯拉交付131万辆"). An answer is declined when a number it
states (not a year or a date) occurs only in contradicting clauses, or when every new word it
states that the passages hold (Chinese words of two or more characters the question does not
use) occurs only in contradicting clauses. An answer naming a sibling of the question's term
itself ("参议院" for "2022年美国中期选举后众议院多数党？") is declined too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from kbchat.chat.answerable import key_terms
from kbchat.chat.grounding import content_words, items, normalise, occurs, without_markers
from kbchat.text import HAN_RE

_YEAR = re.compile(r"(?<![\d.,])((?:1[5-9]|20)\d\d)(?![\d.%万亿千百元])")
"""A year, 1500-2099, not part of a longer number, a decimal, a share or an amount
("2022年", "in 2022", "2022-23"; not "2022万", "12022", "20.22")."""

_NUMBER = re.compile(r"(?<![\d.,])\d+(?![\d])")

_CLAUSE_END = re.compile(r"[，。！？；;!?\n]|,(?=\s)|(?<=[a-z\d])\.(?=\s)")
"""Where a clause ends: a Chinese comma or an end mark, a Western comma or full stop before a
space (not inside "1,313,851" or "3.5")."""

_DATE = re.compile(
    r"(?:\d{4}\s*年\s*)?\d{1,2}\s*月(?:\s*\d{1,2}\s*[日号])?|\d{1,2}\s*[日号]"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b"
    r"|\b\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b",
    re.IGNORECASE,
)
"""A date or its day ("2015年7月31日", "7月31日", "July 31", "31 July"): a time, not a value."""

_NUMERALS = "零〇一二两三四五六七八九十百千"
_PAIRS = ("男女", "上下", "前后", "首次末", "冠亚季", "春夏秋冬", "内外", "参众")
"""Characters that name one of a closed set of alternatives: a word differing only in them
names another item of the same kind (男单/女单, 上半年/下半年, 首日/次日, 冠军/亚军, 国内/国外,
参议院/众议院).
Not the compass points: place names differ in them ("东京" is no sibling of "北京时间")."""
_SIBLINGS = {ch: group for group in (_NUMERALS, *_PAIRS) for ch in group}


def years(text: str) -> set[str]:
    """The years ``text`` names, as four-digit strings."""
    return set(_YEAR.findall(text))


def siblings(term: str, text: str) -> list[str]:
    """The words of ``text`` that name another item of ``term``'s kind: as long as ``term``
    and different in one character only, a numeral for a numeral or one of a contrast pair
    for the other (``_PAIRS``). Only Chinese terms have siblings here; numbers and years are
    compared by ``contradicts``."""
    if not HAN_RE.search(term) or len(term) < 2:
        return []
    found = []
    for n, ch in enumerate(term):
        group = _SIBLINGS.get(ch)
        if group is None:
            continue
        for other in group.replace(ch, ""):
            sibling = term[:n] + other + term[n + 1 :]
            if sibling in text:
                found.append(sibling)
    return found


def contradicts(clause: str, terms: Iterable[str], asked_years: set[str]) -> bool:
    """True when ``clause`` (normalised) holds a sibling of a key term it lacks."""
    named = years(clause)
    if asked_years and named and not named & asked_years:
        return True
    numbers = set(_NUMBER.findall(clause))
    for term in terms:
        if term in clause:
            continue
        if term.isdigit() and term not in asked_years:
            if any(len(n) == len(term) and _one_apart(n, term) for n in numbers):
                return True
        elif siblings(term, clause):
            return True
    return False


def _one_apart(a: str, b: str) -> bool:
    return sum(x != y for x, y in zip(a, b, strict=True)) == 1


def contrast_conflict(answer: str, question: str, passages: Sequence[str]) -> str | None:
    """Why ``answer`` states what the passages give only for a sibling of the question's
    subject (another year, 女单 for 男单), or None. See the module's docstring for the rule.

    Returns:
        A reason naming the value and what the passages give it for, e.g. "the passages give
        93.62 for 2021, not for 2022".
    """
    terms = key_terms(question)
    asked_years = years(question)
    if not asked_years and not any(_SIBLINGS.keys() & set(t) for t in terms):
        return None
    stated = normalise(without_markers(answer))
    for term in terms:
        named = siblings(term, stated) if term not in stated else []
        if named:
            return f"the answer names {named[0]}, where the question asks about {term}"
    clauses = [normalise(clause) for passage in passages for clause in _CLAUSE_END.split(passage)]
    clauses = [clause for clause in clauses if clause.strip()]
    said = _DATE.sub(" ", without_markers(answer))
    question_text = normalise(question)

    def holding(value: str) -> list[str]:
        return [clause for clause in clauses if occurs(value, clause)]

    def against(value: str) -> tuple[str, str] | None:
        """What the clauses holding ``value`` name instead of what the question asks, when
        all of them contradict it: ("2021", "2022"), ("女单", "男单")."""
        found = holding(value)
        if not found or not all(contradicts(c, terms, asked_years) for c in found):
            return None
        other = set().union(*(years(c) for c in found)) - asked_years
        if other:
            return ", ".join(sorted(other)), ", ".join(sorted(asked_years))
        pairs = {(s, t) for c in found for t in terms if t not in c for s in siblings(t, c)}
        if pairs:
            instead = ", ".join(sorted({s for s, _ in pairs}))
            return instead, ", ".join(sorted({t for _, t in pairs}))
        return "another number", ", ".join(t for t in terms if t.isdigit())

    for value in items(said, names=False):
        if not any(ch.isdigit() for ch in value) or years(value) or occurs(value, question_text):
            continue
        if (instead := against(value)) is not None:
            return f"the passages give {value} for {instead[0]}, not for {instead[1]}"
    asked = set(content_words(question))
    new = [
        w
        for w in dict.fromkeys(content_words(said))
        if w not in asked and HAN_RE.search(w) and len(w) >= 2 and holding(w)
    ]
    contrasted = [against(w) for w in new]
    if new and contrasted[0] is not None and all(contrasted):
        shown = "、".join(new[:3])
        other, wanted = contrasted[0]
        return f"the passages give {shown} for {other}, not for {wanted}"
    return None
