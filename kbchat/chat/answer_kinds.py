"""Whether an answer is of the kind its question asks for: a number for "when was ...
founded?", a name the question does not give for "who", a date only where the question asks
when.

Over same-topic passages that do not answer, the 0.5B model answers with whatever the
closest sentence gives: "2022年金鸡百花电影节在哪里举行" with "……将在11月10日至12日举办",
"香港第六任行政长官选举结果？" with "2022年5月8日", or the question itself with a year put
before it ("2022年北京冬奥会男子500米速度滑冰金牌"). Every word of such an answer is in the
passages, so the claim check passes it; what it adds to the question's words is only a date.

A place for "在哪里" and a name for "谁" are not asked for: an answer may rightly name none
("谁能看到我的文档？" - "只有你自己。", "文件保存在哪里？" - "保存在本地。").

Chinese words are told apart by jieba's part-of-speech tags (rjieba's ``tag``, the ICTCLAS
tag set: ``n*`` nouns and names, ``t`` time words, ``m`` numerals, ``v`` verbs ...). English
answers are judged on two narrower rules, from HotpotQA dev answers: "When was the magazine
... founded?" answered "... was EXIT." (no number at all), and "... was coached by whom?"
answered with the question's own coach's name (every name it states is the question's).
"""

from __future__ import annotations

import re

from kbchat.chat.answerable import options as choices
from kbchat.chat.grounding import content_words, items, normalise, occurs, without_markers
from kbchat.text import HAN_RE, detect_language

_ASKS_TIME = re.compile(
    r"时间|何时|什么时候|哪天|哪一天|哪日|哪年|哪一年|几年|几月|几号|几点|日期|多久|多长时间|"
    r"多少年|年份|年代|时期|朝代|世纪|生日|(?:于|在)[?？]?$|始于|建于|生于|卒于|成立于"
)
"""Words of a question that asks when (or how long): a date answers it."""


_NOMINAL = ("n", "j", "s", "i", "l", "eng", "vn", "an")
"""Tags of words that name something: nouns and names (n, nr, ns, nt, nz ...), abbreviations
(j), places (s), idioms and set phrases (i, l), foreign words (eng), nominal verbs and
adjectives (vn, an)."""

_DATE = re.compile(
    r"\d{2,4}\s*年(?:\s*\d{1,2}\s*月)?(?:\s*\d{1,2}\s*[日号])?"
    r"|\d{1,2}\s*月(?:\s*\d{1,2}\s*[日号])?|\d{1,2}\s*[日号]"
    r"|(?<=[日号])\s*[至到—-]\s*\d{1,2}\s*[日号]?"
)
"""A date in Chinese ("2022年5月8日", "11月10日至12日", "2020年")."""

_SAYS = frozenset("根据 资料 提供 信息 显示 文件 段落 内容 答案 问题".split())
"""Words that attribute or frame an answer ("根据资料，……"): they name nothing asked."""


def kind_conflict(answer: str, question: str) -> str | None:
    """Why ``answer`` is not of the kind ``question`` asks for, or None.

    - Chinese: a question not asking when (``_ASKS_TIME``) whose answer adds dates or times
      to the question's words and nothing that names something (``_NOMINAL``) or counts.
    - English: see ``_english_conflict``.
    """
    said = without_markers(answer)
    if detect_language(said) != "zh" or not HAN_RE.search(question):
        return _english_conflict(said, question) if detect_language(question) == "en" else None
    import rjieba

    asked = set(content_words(question))
    dates = [d.strip().lstrip("至到—-").strip() for d in _DATE.findall(said)]
    dates = [d for d in dates if d not in question]
    new = [
        (word, flag)
        for word, flag in rjieba.tag(_DATE.sub("，", said))
        if word.strip() and word not in asked and word not in _SAYS and not _in(word, asked)
    ]
    naming = [w for w, flag in new if (flag.startswith(_NOMINAL) and len(w) >= 2) or flag == "nr"]
    if naming:
        return None
    dates += [w for w, flag in new if flag == "t"]
    counted = [w for w, flag in new if flag == "m"]  # a number that is not a date
    if dates and not counted and not _ASKS_TIME.search(question.strip()):
        shown = "、".join(dates[:3])
        return f"the answer gives only a time ({shown}), where the question does not ask when"
    return None


def _in(word: str, asked: set[str]) -> bool:
    """True when ``word`` is one of the question's words or made of them (jieba may cut the
    answer's "冬奥会男子" where it cut the question's "冬奥会", "男子")."""
    return len(word) >= 2 and any(word in a or a in word for a in asked if len(a) >= 2)


_ASKS_DATE_EN = re.compile(
    r"^\s*when\s+(?:was|were|did)\b|\b(?:in\s+)?(?:what|which)\s+year\b|\bhow\s+(?:many|old)\b",
    re.IGNORECASE,
)
"""An English question whose answer is a number: a past event's date ("When was it founded?",
"In what year ..."), a count or an age. Not every "when": "When should I descale it?" may
be answered "when the light turns red"."""

_NUMBER_WORD = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    r"fifteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|"
    r"billion|dozen|several|many|few|no|none)\b",
    re.IGNORECASE,
)
_ASKS_WHO_EN = re.compile(r"\bwho(?:m|se)?\b", re.IGNORECASE)


def _english_conflict(answer: str, question: str) -> str | None:
    """``kind_conflict`` for an English question: a number asked (``_ASKS_DATE_EN``) and none
    given, or "who" asked (not a choice between names) and every name the answer states
    (``grounding.items``), at least one, is the question's own."""
    if _ASKS_DATE_EN.search(question) and not _NUMBER_WORD.search(answer):
        return "the answer gives no number or date, where the question asks for one"
    if _ASKS_WHO_EN.search(question) and not choices(question):
        named = items(answer)
        asked = normalise(question)
        if named and all(occurs(name, asked) for name in named):
            return "the answer names no one the question does not name itself"
    return None
