"""Is an answer supported by its sources? Checks that need no model.

Two questions are asked of the retrieved passages, both by exact string evidence:

- before answering: does every specific item the question names (a model or part number,
  a version, a number, a quoted title, a name) occur in some passage? A question about
  "XR-7700C" over files that hold XR-7700A and XR-7700B must be declined, not answered
  with a neighbour's value (``missing_items``);
- while answering: do the answer's claims (its numbers, codes and names, and most of its
  words) occur in the passages? An answer the passages do not contain is the model's
  invention (``unsupported_claims``, ``support``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from kbchat.store.bm25 import STOPWORDS
from kbchat.text import (
    HAN,
    cut_words,
    detect_language,
    is_han_or_punctuation,
    is_wide,
    without_accents,
)

# A code: letters and digits together (XR-7700B, ISO9001, v2.3, GB/T-7714, 3C), or a
# number of two or more digits (years, prices, stock codes, part numbers).
_CODE = re.compile(
    r"(?<![A-Za-z0-9])(?:[A-Za-z]+[-_/.]?\d[A-Za-z0-9]*(?:[-_./][A-Za-z0-9]+)*"
    r"|\d+[A-Za-z][A-Za-z0-9]*(?:[-_./][A-Za-z0-9]+)*"
    r"|\d[\d,]*\.?\d+)(?![A-Za-z0-9])"
)
# Command-line options and file names or paths: "--port", "config.yaml", "~/.kbchat/x".
_TECH = re.compile(
    r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|(?<![\w-])--[a-z][a-z0-9-]+|(?<![\w/.~])(?:~?/)?(?:[\w.-]+/)*[\w-]+\.(?:ya?ml|toml|json|ini|"
    r"cfg|conf|env|txt|md|csv|py|sh|js|html|pdf|docx|xlsx|pptx)\b"
)
# A document name in an answer is usually an example ("kbchat kb add /path/to/file1.txt");
# a configuration file the files never mention is an invention (~/.kbchat/config.yaml).
_EXAMPLE_FILE = re.compile(r"\.(?:txt|md|csv|pdf|docx|xlsx|pptx|html|py|sh|js)$")
# What the reader would type: inline code (`PORT`, `kbchat serve --port 8080`) and
# environment-variable names (KBCHAT_SERVER__PORT). Identifiers are case-sensitive: the
# files saying "port" do not make `PORT` a real variable.
_INLINE_CODE = re.compile(r"`([^`\n]{1,80})`")
_ENV_NAME = re.compile(r"(?<![\w$])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
_PLACEHOLDER = re.compile(r"[<\[{].*[>\]}]|\.\.\.|/path/|example|your[-_]", re.IGNORECASE)
# Quoted titles and names: 《书名》, “名称”, "name".
_QUOTED = re.compile(r"《([^》]{1,40})》|“([^”]{2,40})”|\"([^\"]{2,40})\"")
# Capitalised English names of one or more words ("Lucy Saunders", "San Juan").
_NAME = re.compile(r"\b([A-Z][a-z]+(?:[ -](?:of |de |the )?[A-Z][a-z]+)*)\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?。！？:：\n])[\s\"'“(（`*-]*$")
_MARKERS = re.compile(r"\[\d{1,2}\]")
"""Citation markers ``[1]``..``[99]`` in an answer."""


def without_markers(answer: str) -> str:
    """``answer`` without its citation markers (and the spaces before them)."""
    return re.sub(r"[ \t]*\[\d{1,2}\]", "", answer).strip()


_NOT_NAMES = frozenset(
    "I The A An Answer Question Source Sources What Which Who Whom Whose When Where Why How "
    "Is Are Was Were Do Does Did "
    "In On At Of For And Or But If It Its This That These Those There Please Can Could "
    "Would Should Will May".split()
)
_STOP_TOKENS = frozenset(
    "the a an of to in on at for and or is are was were be been it its this that these those "
    "with by from as what which who when where why how do does did can could would should "
    "not no yes i you he she they we his her their our my your source sources answer "
    "than then also both either neither more most less very "
    "的 了 是 在 和 与 及 或 也 都 就 而 及其 其 之 为 有 被 把 对 从 到 以 于 中 等 "
    "个 这 那 它 他 她 们 吗 呢 吧 啊 什么 哪 哪些 哪个 多少 几 怎么 怎样 如何 为什么 "
    "资料 根据 问题 回答 答案 提供 信息 提到 显示 表明 可知 所述 文中 "
    "according based provided information mentioned mention states stated context text "
    "passage passages given "
    # the wording of instructions, which an answer adds to any command it quotes
    "use using used following follow command commands run running see example step steps "
    "find out can need make sure also then first next below above type enter "
    "使用 可以 运行 命令 如下 以下 例如 步骤 需要 然后 首先 输入 执行".split()
)


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """How well an answer's text is supported by the passages it was given.

    Attributes:
        unsupported: numbers, codes and names in the answer found in no passage (nor in
            the question).
        support: share of the answer's new content words (``content_words``, stop words
            and the question's words removed) that occur in the passages in the answer's
            language, in [0, 1]; 1.0 for an answer without any, or with no such passage.
        words: how many new content words were judged.
    """

    unsupported: tuple[str, ...]
    support: float
    words: int


def normalise(text: str) -> str:
    """Text as compared: NFKC (full-width to ASCII), lower case, Latin letters without
    accents, runs of whitespace as one space, no commas between digits: "ＸＲ-7700Ｂ",
    "xr-7700b" and "1,000" match "XR-7700B" and "1000", "Donana" matches "Doñana"."""
    text = unicodedata.normalize("NFKC", text).lower()
    if not text.isascii():
        text = without_accents(text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    return re.sub(r"\s+", " ", text).strip()


def items(text: str, *, names: bool = True) -> list[str]:
    """The specific items ``text`` names: codes, numbers, options, file names, and (with
    ``names``) quoted titles and capitalised names.

    Names and titles are words of one language; codes and numbers are the same in every
    language, so only they can be looked for in passages of another language.
    Returns them in order of appearance, without duplicates, as written.
    """
    found: list[str] = []
    if names:
        found.extend(_title(match) for match in _QUOTED.finditer(text))
    masked = _QUOTED.sub(" ", text)
    found.extend(m.group(0) for m in _TECH.finditer(masked))
    masked = _TECH.sub(" ", masked)
    found.extend(m.group(0) for m in _CODE.finditer(unicodedata.normalize("NFKC", masked)))
    for match in _NAME.finditer(masked if names else ""):
        words = match.group(1).split()
        while words and words[0] in _NOT_NAMES:
            words.pop(0)
        if _SENTENCE_START.search(masked[: match.start()]) is not None:
            words = words[1:]  # a capital at a sentence start says nothing
        if words:
            found.append(" ".join(words))
    return list(dict.fromkeys(f for f in found if len(f) >= 2))


def literals(text: str) -> list[str]:
    """What ``text`` gives the reader to type, to be found verbatim (case kept): each inline
    code span of one word, the command and ``--options`` of a longer one (its arguments are
    the reader's own values), and environment-variable names. Spans with placeholders
    (``<name>``, ``...``, ``/path/``) are examples, not claims."""
    found: list[str] = []
    for match in _INLINE_CODE.finditer(text):
        span = match.group(1).strip()
        if not span or _PLACEHOLDER.search(span):
            continue
        words = span.split()
        if len(words) == 1:
            found.append(words[0])
        else:
            found.append(words[0])
            found.extend(w for w in words[1:] if w.startswith("--"))
    found.extend(m.group(0) for m in _ENV_NAME.finditer(_INLINE_CODE.sub(" ", text)))
    return list(dict.fromkeys(found))


def occurs_verbatim(item: str, haystack: str) -> bool:
    """``occurs`` with case kept (NFKC, runs of whitespace as one space): for identifiers."""
    needle = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", item)).strip()
    if not needle:
        return True
    return re.search(rf"(?<![\w-]){re.escape(needle)}(?![\w])", haystack) is not None


def occurs(item: str, haystack: str) -> bool:
    """True when ``item`` occurs in the normalised ``haystack`` as a whole item: a code is
    not found inside a longer code ("XR-770" is not in "XR-7700A")."""
    needle = normalise(item)
    if not needle:
        return True
    start = haystack.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (_alnum_edge(needle[0], before) or _alnum_edge(needle[-1], after)):
            return True
        start = haystack.find(needle, start + 1)
    return False


def _alnum_edge(edge: str, neighbour: str) -> bool:
    """A match glued to a neighbouring ASCII letter or digit continues a longer code."""
    return edge.isascii() and edge.isalnum() and neighbour.isascii() and neighbour.isalnum()


def missing_items(question: str, passages: Sequence[str]) -> list[str]:
    """The items the question names (``items``) that the passages do not hold.

    Codes, numbers, options, file names and quoted titles must each occur in some passage:
    they name one thing (a part, a version, a year); a long title without digits may be
    misspelt (``_title_occurs``). Capitalised names are looked for only
    when some passage is in the question's language, and count as missing only when none
    of them occurs: a multi-hop question describes its subject with names ("Kurt Fuller
    ... American Detective Comedy Drama") that the answering passages need not repeat.
    """
    haystack = normalise("\n".join(passages))
    strict = items(question, names=False)
    same = any(detect_language(p[:300]) == detect_language(question) for p in passages)
    quoted = [_title(m) for m in _QUOTED.finditer(question)] if same else []
    missing = [item for item in strict if not occurs(item, haystack)]
    missing += [title for title in quoted if not _title_occurs(title, haystack)]
    names = [n for n in items(question) if n not in strict and n not in quoted] if same else []
    if names and not any(occurs(name, haystack) for name in names):
        missing += names
    return list(dict.fromkeys(missing))


def _title(match: re.Match[str]) -> str:
    """A quoted title without the punctuation a question glues to it ("Glen Ross?")."""
    return next(g for g in match.groups() if g).strip(_TITLE_EDGE)


_TITLE_EDGE = " ?？!！.。,，:：;；'‘’"
_FUZZY_TITLE_CHARS = 6
"""A title of at least this many characters and no digits is found when some span of the
passages is one letter off (``rapidfuzz.fuzz.partial_ratio`` of at least 100 * (1 - 1/n) for
n characters: one letter changed, dropped or doubled): users misspell titles ("Glengary Glen
Ross", "Rusalca"), and a question is not unanswerable for it. Digits must match exactly
("Windows 2000" is not "Windows 2003")."""


def _title_occurs(title: str, haystack: str) -> bool:
    """True when ``title`` occurs in the normalised ``haystack``, or a digit-free title of
    ``_FUZZY_TITLE_CHARS`` or more is one letter off."""
    if occurs(title, haystack):
        return True
    needle = normalise(title)
    if len(needle) < _FUZZY_TITLE_CHARS or any(ch.isdigit() for ch in needle):
        return False
    from rapidfuzz import fuzz

    cutoff = 100.0 * (1.0 - 1.0 / len(needle)) - 0.01
    return fuzz.partial_ratio(needle, haystack, score_cutoff=cutoff) > 0


def check_claims(answer: str, question: str, passages: Sequence[str]) -> ClaimCheck:
    """Which of the answer's claims the passages (or the question) do not contain.

    Every number, code, option and file name the answer states must occur in some passage
    or the question, and what it gives the reader to type (``literals``) verbatim. Its
    names and its new words (those not in the question) are judged only against passages
    in the answer's language: an answer may translate a passage in another language.
    """
    answer = _MARKERS.sub(" ", answer)
    language = detect_language(answer)
    same = [p for p in passages if detect_language(p[:300]) == language]
    haystack = _Numbers("\n".join([*passages, question]))
    verbatim = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", "\n".join([*passages, question])))
    unsupported = tuple(
        dict.fromkeys(
            [
                *(
                    item
                    for item in items(answer, names=bool(same))
                    if not haystack.holds(item) and not _EXAMPLE_FILE.search(item)
                ),
                *(
                    literal
                    for literal in literals(answer)
                    if not occurs_verbatim(literal, verbatim) and not _EXAMPLE_FILE.search(literal)
                ),
            ]
        )
    )
    asked = set(content_words(question))
    new = [w for w in content_words(answer) if w not in asked]
    if not new or not same:
        return ClaimCheck(unsupported, 1.0, 0)
    # Substrings, not tokens: the segmenter may cut a name differently in another context.
    text = normalise("\n".join([*same, question]))
    support = sum(1 for w in new if normalise(w) in text) / len(new)
    return ClaimCheck(unsupported, support, len(new))


_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)", re.IGNORECASE)
_HAN_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千万亿]")


class _Numbers:
    """Normalised text in which an item is looked for (``occurs``), also as the number an
    ordinal states ("14th" in "14 May") and among Chinese numerals read as digits ("15" in
    "十五天", by ``cn2an``): an answer may write a number the other way, or in the other
    language."""

    def __init__(self, text: str) -> None:
        self.raw = text
        self.text = normalise(text)
        self._digits: str | None = None

    def holds(self, item: str) -> bool:
        ordinal = _ORDINAL.fullmatch(item)
        candidates = [item, ordinal.group(1)] if ordinal else [item]
        if any(occurs(c, self.text) for c in candidates):
            return True
        if not any(ch.isdigit() for ch in item) or not _HAN_NUMERAL.search(self.raw):
            return False
        return any(occurs(c, self.digits()) for c in candidates)

    def digits(self) -> str:
        """The text with its Chinese numerals as Arabic ones (converted once, on demand)."""
        if self._digits is None:
            import warnings

            import cn2an  # ~0.4 s to import: only for an answer's number not found as written

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # it warns about each run it cannot read
                self._digits = normalise(cn2an.transform(self.raw, "cn2an"))
        return self._digits


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry content, lower-cased: its search words (``cut_words``
    with sub-words, as BM25 cuts them, but accented words whole) without stop words or
    punctuation."""
    words = (
        w.strip() for w in cut_words(unicodedata.normalize("NFKC", text).lower(), for_search=True)
    )
    return [
        w
        for w in words
        if w and w not in STOPWORDS and w not in _STOP_TOKENS and any(ch.isalnum() for ch in w)
    ]


_SENTENCE = re.compile(r"(?:[(（][^()（）\n]{0,80}[)）]|[^。！？!?；;\n])+[。！？!?；;]?|[^\n]+")
"""A sentence: up to an end mark or semicolon outside parentheses ("Jeremy Charles Shockey
( ; born August 18, 1980) is ...", as Wikipedia text reads with its pronunciation removed,
is one sentence), or a line."""


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences (Chinese and Western end marks, semicolons, lines)."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


_WRAP = re.compile(rf"(?<=[^\s。！？!?；;:：])\n(?=(?![^\s:：]{{1,12}}[:：])[a-z{HAN}(（“\"])")
"""A line break inside a sentence: after a line that does not end a sentence or open a
list, before one that does not start a label ("A:", "问：", "配置项:"), a list item, a
heading or a capitalised word."""

_WRAP_WIDTH = 40
"""Columns a line fills before its break counts as a wrap (shorter lines are items)."""

_FENCE = re.compile(r"(```.*?(?:```|$))", re.DOTALL)


def unwrapped(text: str) -> str:
    """``text`` with the line breaks of hard-wrapped paragraphs removed (a space between
    Latin words, nothing beside Chinese), so a quote is the whole sentence: "... runs on
    your machine. Only if / you configure ..." was quoted up to "Only if". Lines in a
    fenced code block stay apart."""
    return "".join(
        part if part.startswith("```") else _WRAP.sub(functools.partial(_join, part), part)
        for part in _FENCE.split(text)
    )


def _join(text: str, match: re.Match[str]) -> str:
    line = text[text.rfind("\n", 0, match.start()) + 1 : match.start()]
    if len(line) + sum(map(is_wide, line)) < _WRAP_WIDTH:  # a wide character fills two
        return match.group(0)
    before, after = text[match.start() - 1], text[match.end()]
    return "" if is_han_or_punctuation(before) or is_han_or_punctuation(after) else " "
