"""Do the passages hold what a question asks about? Lexical evidence for the answer decision.

A passage on the question's topic is not an answer: the knowledge base may hold the article
about 梁卓伟 without the sentence saying when he became a professor, or the manual for XR-7700A
and XR-7700B but not XR-7700C. What the question asks about is its key terms (``key_terms``):
its words without question words, stop words and the frame every question shares ("主要",
"时间", "which", "did"). An answer needs one place that holds most of them: a sentence with
its neighbours, under the passage's first line, which names its subject (``windows``).

Two checks use it (``kbchat.chat.rag``): before the model runs, the best place in the
retrieved passages must hold ``chat.min_evidence`` of the key terms (``evidence``); while the
answer's start is held back, the place the answer was taken from must hold
``chat.min_coverage`` of them (``support``): an answer copied from a sentence about another
event of the same article names a number that is in the files, but not where the question is.

Terms are matched as substrings of the NFKC-normalised, lower-cased text, so Chinese needs no
agreement between the segmenter's cuts of the question and of the passage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

from kbchat.chat.grounding import content_words, items, normalise, sentences
from kbchat.text import HAN_RE, cut_words

_QUESTION_WORD = re.compile(
    r"^(?:哪|什么|多[少长久大高远重宽深厚]|几|怎|如何|为何|为什么|何时|何地|何处|谁|是否|是不是"
    r"|能否|可否|有没有|有无)|[吗呢]$"
)
_FRAME_ZH = frozenset(
    "时间 主要 地方 这个 那个 目前 成为 一个 一部分 特点 现在 当时 最终 曾经 通常 一般 "
    "原因 情况 方面 名字 名称 称为 被称为 叫做 可以 能够 应该 需要 资料 文件 知识库 "
    "的 了 是 在 和 与 及 或 也 都 就 而 其 之 为 有 被 把 对 从 到 以 于 中 等 个 "
    "这 那 它 他 她 们 请问 告诉 一下 还是 或者".split()
)
_FRAME_EN = frozenset(
    "the a an of to in on at for and or is are was were be been being it its this that these "
    "those with by from as what which who whom whose when where why how do does did can could "
    "would should will shall may might must not no yes both either neither than other there "
    "their they them he she his her we our you your i me my about into onto also than then "
    "so such any some many much more most few one ones has have had named called known "
    "please tell me files documents go goes went gone get gets got make makes made happen "
    "happens happened come comes came take takes took".split()
)
_MARKERS = re.compile(r"\[\d{1,2}\]")


def key_terms(question: str) -> list[str]:
    """The words of ``question`` that say what it asks about, normalised (``normalise``).

    Chinese words (jieba's cut) of two or more characters that are not question words or
    frame words; other words of two or more characters (or any number) that are not stop
    words. In a choice question (``options``) its comparative is left out (``_COMPARATIVE_EN``,
    ``_COMPARATIVE_ZH``), and one of age stands for "born" (``_AGE``). In order, without
    duplicates.
    """
    terms: list[str] = []
    choice = bool(options(question))
    for word in cut_words(_FRAME_PHRASE.sub(" ", _HOW.sub("how", normalise(question)))):
        word = word.strip()
        if not word or not any(ch.isalnum() for ch in word):
            continue
        if choice and word in _AGE:
            word = "born"  # who is older is who was born first: what a life span states
        elif choice and (word in _COMPARATIVE_EN or _COMPARATIVE_ZH.match(word)):
            continue
        if HAN_RE.search(word):
            if len(word) < 2 or _QUESTION_WORD.search(word) or word in _FRAME_ZH:
                continue
        elif word in _FRAME_EN or (len(word) < 2 and not word.isdigit()):
            continue
        terms.append(_stem(word))
    return list(dict.fromkeys(terms))


_COMPARATIVE_EN = frozenset(
    "earlier later first last older oldest younger youngest newer newest larger largest "
    "smaller smallest bigger biggest longer longest shorter shortest taller tallest higher "
    "highest lower lowest greater greatest heavier lighter faster slower closer farther "
    "further wider deeper cheaper earliest latest".split()
)
_AGE = frozenset("older oldest younger youngest 年长 更年长 年轻 更年轻 年纪大".split())
"""Comparatives of age: they compare births."""
_COMPARATIVE_ZH = re.compile(r"^(?:更|较|最|比较)[\u4e00-\u9fff]{1,2}$")
"""How a choice question compares its options ("Who was born earlier, A or B?",
"保修期更长的是水壶，还是搅拌机？"): no passage writes "earlier" beside a birth date, so the
comparison is no key term of the question; what is compared ("born", "保修期") is."""


def as_written(term: str, question: str) -> str:
    """A key term as the question writes it, for messages: the stem "tobia" as "tobias",
    "direct" as "directed" (normalised); the term itself when no word starts with it."""
    found = re.search(rf"(?<!\w){re.escape(term)}\w*", normalise(question))
    return found.group(0) if found and term.isascii() else term


def terms_over(question: str, passages: Sequence[str]) -> list[str]:
    """``key_terms`` of ``question`` with each passage title it names counted as one term.

    The segmenter cuts a name it does not know into pieces ("黑尾前肛鳗" into "黑尾前",
    "肛鳗"; "索齿兽目" into "索齿", "兽目"), and each piece would weigh as much as what the
    question asks about it: a sentence on a sibling ("高氏前肛鳗 ... 体长为体高的17.3倍")
    held three of four terms. A title (``subjects``) the question holds replaces the key
    terms inside it, at the first one's place; of nested titles the longest. Only Chinese
    titles: on HotpotQA dev, counting "Doctor Who" as one term declined a right answer.
    """
    terms = key_terms(question)
    for name in named_titles(question, (name for p in passages for name in subjects(p))):
        if not HAN_RE.search(name):
            continue  # a Latin name is cut at its spaces, into words that each say something
        parts = [t for t in terms if t in name]
        if len(parts) > 1:
            at = terms.index(parts[0])
            terms = [t for t in terms if t not in parts]
            terms.insert(at, name)
    return terms


def named_titles(question: str, titles: Iterable[str]) -> list[str]:
    """The ``titles`` (normalised, as ``subjects`` gives them) that ``question`` names: those
    occurring in it, of nested ones the longest ("黑尾前肛鳗" over "前肛鳗", the title of a
    related article); in the order the question names them, without duplicates."""
    asked = normalise(question)
    named = {title for title in titles if title and title in asked}
    longest = [t for t in named if not any(t != other and t in other for other in named)]
    return sorted(longest, key=asked.find)


_HOW = re.compile(
    r"\bhow\s+(?:long|many|much|far|old|big|large|small|tall|high|deep|wide|heavy|fast"
    r"|often|soon)\b"
)
"""English "how long" asks for a length as "多长" does: the adjective names the kind of
answer ("The warranty lasts two years" says nothing "long"), not what the question is about."""

_FRAME_PHRASE = re.compile(
    r"\b(?:(?:of|between) the (?:two|2)"
    r"|(?:kind|type|sort)s? of"
    r"|(?:term|name|word) (?:given|used) (?:to|for))\b"
)
"""Phrases that frame an English question, not its topic: "which park is larger of the two,
A or B?" (the two are A and B, already named), "what kind of machine" (asks for a category:
"a personal computer" says nothing of kinds), "the term given to the period"."""

_ATTRIBUTION = frozenset(
    "根据 资料 提供 信息 显示 文件 according source sources information provided based "
    "passage passages document documents".split()
)
"""Words that attribute an answer ("根据资料，……", "Based on the information provided in the
sources, ..."): a sentence adding only these to the question's words restates it."""

SENTENCE_ENDS = ("。", "！", "？", ".", "!", "?")
"""Only whole sentences are judged one by one: the items of a list ("1. 罗巴") are judged
together, as one answer."""

_FAQ_QUESTION = re.compile(r"(?:q|question|问|问题)\s*\d*\s*[:：]")
"""A FAQ entry's question line, normalised ("q: does ...", "问：...")."""

_SUFFIX = re.compile(r"(?<=[a-z]{4})(?:ing|ed|es|s)$")


def _stem(word: str) -> str:
    """An English word without its inflection ("directed" -> "direct", found in "director";
    "executions" -> "execution"), so a substring match finds its other forms."""
    return _SUFFIX.sub("", word) if word.isascii() and word.isalpha() else word


_FULL_STOP = re.compile(r"(?<=[a-z0-9)\"”][.!?])\s+(?=[A-Z0-9\"“(])")
"""Where a Western sentence ends: a full stop after a word, then a capital ("Mr. Smith" and
"e.g. this" stay whole when the next word is not capitalised)."""


def split_sentences(passage: str) -> list[str]:
    """``passage`` cut into sentences as written: ``grounding.sentences`` (Chinese and Western
    end marks, semicolons, lines), then Western full stops before a capital or digit."""
    parts = (part.strip() for sentence in sentences(passage) for part in _FULL_STOP.split(sentence))
    return [part for part in parts if part]


def passage_sentences(passage: str) -> list[str]:
    """``passage`` cut into sentences (``split_sentences``), normalised; in its first two
    sentences (a title, then the one introducing the subject) a life span is read as the
    birth it states (``_LIFESPAN``)."""
    cut = [normalise(part) for part in split_sentences(passage)]
    return [_LIFESPAN.sub(r"(born 出生 \1", part) if n < 2 else part for n, part in enumerate(cut)]


_LIFESPAN = re.compile(
    r"\((?!born)([^()]{0,30}?\d{3,4}[^()]{0,12}?\s*[-–—]\s*[^()]{0,30}?\d{3,4}[^()]{0,12}\))"
)
"""A life span in parentheses after a name, as encyclopaedias write a birth ("Margaret Wilson
(January 16, 1882 – October 6, 1973) was an American novelist", "（1882年1月16日－1973年
10月6日）", normalised): it answers "born"/"出生" although neither word is written."""


def windows(passage: str) -> Iterator[str]:
    """The places an answer can be read from, normalised: each sentence with the sentences on
    either side, after the passage's first sentence (its title or subject)."""
    return _windows_of(passage_sentences(passage))


def _windows_of(cut: Sequence[str]) -> Iterator[str]:
    head = cut[0] if cut else ""
    for n in range(len(cut)):
        yield " ".join([head, *cut[max(0, n - 1) : n + 2]])


@dataclass(frozen=True, slots=True)
class Evidence:
    """How much of a question one place in the passages holds.

    Attributes:
        share: share of the key terms found in the best place, in [0, 1]; 1.0 for a
            question without key terms.
        terms: the question's key terms.
        absent: the key terms the best place lacks.
    """

    share: float
    terms: tuple[str, ...]
    absent: tuple[str, ...]


def evidence(question: str, passages: Sequence[str]) -> Evidence:
    """The place in ``passages`` (``windows``) that holds most of the question's key terms.

    A question may span two passages, so two places in different passages count as one
    when, besides the question's names, they hold a key term (what is asked about) and

    - each holds a name or code of the question (``items``) or one of its options
      (``options``) that the other lacks: a comparison ("Who was born earlier, Thomas Wolfe
      or Margaret Wilson?": one place per person, "born" in one; the two articles' other
      paragraphs hold the names alone); or
    - the passages are about different subjects (their title lines) and one names the
      other's: the two hops of a bridge question ("the cover band of the composer of the
      game with Chocobos": the composer's article names "Final Fantasy", whose article holds
      "Chocobos"). Paragraphs of one article share their subject, so they do not pair up.

    A choice question's share is at most the share of its options (``options``) the best
    place holds: "Which warranty is longer, kettle or blender?" is not answered by the
    kettle's manual alone, however much of the question it holds.
    """
    terms = key_terms(question)
    if not terms:
        return Evidence(1.0, (), ())
    read = [_Passage.read(p) for p in passages]
    held = [[frozenset(t for t in terms if t in w) for w in _windows_of(p.cut)] for p in read]
    best = max((found for places in held for found in places), key=len, default=frozenset())
    named = [normalise(item) for item in [*items(question), *options(question)]]
    naming = {t for t in terms if any(t in name for name in named)}
    for n, m in combinations(range(len(held)), 2):
        bridge = read[n].bridges(read[m])
        for a in held[n]:
            for b in held[m]:
                pair = a | b
                if len(pair) <= len(best) or not pair - naming:
                    continue
                if bridge or _apart(a, b, named):
                    best = pair
    absent = tuple(t for t in terms if t not in best)
    share = len(best) / len(terms)
    offered = [normalise(option) for option in options(question)]
    if offered:  # a choice is answered where every option is: at most the options held
        covered = sum(1 for option in offered if any(t in option for t in best))
        share = min(share, covered / len(offered))
    return Evidence(share, tuple(terms), absent)


@dataclass(frozen=True, slots=True)
class Focus:
    """The place in the passages holding most of a question's key terms, as the passages
    wrote it.

    Attributes:
        index: which passage (an index into the passages given).
        excerpt: its first sentence (title or subject), then the best sentence with one
            sentence before it and two after, joined by spaces; original text.
        share: share of the key terms that place holds, in [0, 1].
    """

    index: int
    excerpt: str
    share: float


def focus(question: str, passages: Sequence[str]) -> Focus | None:
    """The place (``windows``) of ``passages`` holding most of ``question``'s key terms, of
    equals the one whose own sentence holds most, then the first; None when the question has
    no key terms or no place holds any.

    A retry of a declined answer reads only this place: over a whole passage the 0.5B model
    often copies a fact from a sentence about another event of the article ("侯活·韦比在哪场
    比赛中出示了三面红牌？" answered with his first international match), and the sentence
    holding the question's words is one of many.
    """
    terms = key_terms(question)
    best: tuple[int, int, int, int] = (0, 0, 0, 0)  # terms held: place, sentence; where
    raws: list[list[str]] = []
    for n, passage in enumerate(passages):
        raw = split_sentences(passage)
        raws.append(raw)
        cut = [normalise(part) for part in raw]
        for m, window in enumerate(_windows_of(cut)):
            counts = (sum(1 for t in terms if t in window), sum(1 for t in terms if t in cut[m]))
            if counts > best[:2]:
                best = (*counts, n, m)
    held, _, n, m = best
    if not terms or not held:
        return None
    raw = raws[n]
    start = max(0, m - 1)
    excerpt = [raw[0]] if start > 0 else []
    excerpt += raw[start : m + 3]
    return Focus(n, " ".join(excerpt), held / len(terms))


_CHOICE = re.compile(
    r"(?:^|[,，:：;；]\s*)(?P<left>[^,，:：;；?？]+?)\s*[,，]?\s*(?:\bor\b|还是|或者)\s*"
    r"(?P<right>[^,，:：;；?？]+)",
    re.IGNORECASE,
)


_OF_TWO = re.compile(
    r"\b(?:which|who)\s+of\s+(?P<left>[^,?]+?)\s+and\s+(?P<right>[^,?]+?)"
    r"(?=\s+(?:is|was|are|were|has|had|did|does|do|came|comes)\b|\s*[,?])",
    re.IGNORECASE,
)
"""A choice offered as "which of A and B": "Which of Ada Brook and Carl Dunn was older?"."""


def options(question: str) -> list[str]:
    """The alternatives a choice question offers, next to its "or" ("还是"): "Which is
    older, the castle or the bridge?" -> ["the castle", "the bridge"] (at most four words a
    side); "保修期更长的是水壶，还是搅拌机？" -> ["水壶", "搅拌机"] (one word a side); or as
    "which of A and B" (at most four words a side)."""
    found: list[str] = []
    for match in _OF_TWO.finditer(question):
        left, right = match.group("left").split(), match.group("right").split()
        if len(left) <= 4 and len(right) <= 4:
            found += [" ".join(left), " ".join(right)]
    for match in _CHOICE.finditer(question):
        left, right = match.group("left").strip(), match.group("right").strip()
        if HAN_RE.search(match.group(0)):
            before = [w for w in cut_words(left) if w.strip()]
            after = [w for w in cut_words(right) if w.strip()]
            found += [before[-1] if before else "", after[0] if after else ""]
        else:
            found += [" ".join(left.split()[-4:]), " ".join(right.split()[:4])]
    return [option for option in found if option]


def _apart(a: frozenset[str], b: frozenset[str], named: Sequence[str]) -> bool:
    """True when each place holds key terms of a question name the other lacks."""

    def names(place: frozenset[str]) -> set[str]:
        return {name for name in named if any(t in name for t in place)}

    return bool(names(a) - names(b)) and bool(names(b) - names(a))


def support(answer: str, question: str, passages: Sequence[str]) -> float:
    """How much of the question the place the answer was read from holds, in [0, 1].

    That place is a sentence holding the most of the answer's new content words (those not
    in the question), with its neighbours and the passage's first sentence (``windows``);
    ties go to the place holding more of the question. A neighbour lends the place its key
    terms, as a sentence about "he" takes its subject from the one before, unless the
    neighbour holds every key term the answer's own sentence holds and more: then the
    question is about the neighbour, and the answer was copied from the fact beside it
    ("退货期限是多少天？" answered with the warranty's "两年" from the next sentence), so the
    place keeps only the terms its own sentence adds (and the first sentence's). In a FAQ the
    place of an answer's sentence includes its entry's question line ("Q: Does kbchat send my
    documents anywhere?" / "问：……"), which states no fact to copy.

    A question over two passages (HotpotQA's bridge and comparison questions, Yang et al.,
    EMNLP 2018) has its key terms in both: a place in another passage lends its terms too
    when the two are linked, by the same rule of the neighbour that takes the question:
    it also holds every specific new word of the answer's sentence (``specific``: "Which
    team did both A and B play for?": each passage says "Philadelphia Eagles"), or one
    passage names the other's subject, its title line (``subjects``: "the pioneer who
    claimed a flight near Bridgeport" in one, "Gustave Whitehead ... died in 1927" in the
    other).

    An answer that names a passage's subject (its title line: "Who founded the women's
    department?" answered "Käthe Leichter" over her biography, whose sentence says "she
    founded") is read from that whole passage: its best place counts, with the best place of
    each passage naming that subject (the first hop of a bridge question: "Who did NFL
    Street 2 feature on its cover that played college football at Miami?" answered with
    the player, whose biography says where he played and the game's article that he is on
    its cover).

    An answer of several whole sentences that each add new words (beyond attributions such
    as "根据资料") is judged by the sentence read from the place holding the most of the
    question ("马赛……本名司马赛儿。她是2008年度香港小姐竞选季军。": the model restates who
    she is, then answers); when some of them state numbers, codes or names the question does
    not, only those are judged (a restated background sentence cannot carry an invented year
    beside it). The items of a list ("1. 罗巴") are judged together, as one answer.

    Returns the share of the question's key terms the place holds: 1.0 when the answer adds
    no new words or the question has no key terms, 0.0 when no sentence holds any of the
    answer's new words.
    """
    said = set(content_words(question)) | _ATTRIBUTION
    parts = [
        part
        for part in sentences(_MARKERS.sub(" ", answer))
        if part.rstrip().endswith(SENTENCE_ENDS) and any(w not in said for w in content_words(part))
    ]
    if len(parts) > 1:
        given = set(items(question))
        stating = [part for part in parts if set(items(part)) - given]
        return max(_support(part, question, passages) for part in stating or parts)
    return _support(answer, question, passages)


def _support(answer: str, question: str, passages: Sequence[str]) -> float:
    """``support`` for an answer judged as one."""
    terms = terms_over(question, passages)
    asked = set(content_words(question))
    new = [w for w in dict.fromkeys(content_words(_MARKERS.sub(" ", answer))) if w not in asked]
    if not new or not terms:
        return 1.0
    needles = [normalise(w) for w in new]
    specifics = [w for w in needles if specific(w)]
    read = [_Passage.read(passage) for passage in passages]
    best_places = [passage.best_terms(terms) for passage in read]
    named = [normalise(item) for item in [*items(question), *options(question)]]
    best = (0, 0.0)
    for n, passage in enumerate(read):
        subject = [w for w in specifics if any(w in s for s in passage.subjects)]
        if subject:  # the answer names what the passage is about: all of it is the place,
            place = set(best_places[n])  # and the other hop of a bridge: where it is named
            for m, other in enumerate(read):
                if m != n and any(s in other.text for s in passage.subjects):
                    place |= best_places[m]
            held = sum(1 for w in needles if w in passage.text)
            best = max(best, (held, len(place) / len(terms)))
        for held, own, found, sentence in passage.places(needles, terms):
            share = len(found) / len(terms)
            said = [w for w in specifics if w in sentence]
            for m, other in enumerate(read):
                if m == n:
                    continue
                lent = best_places[m]
                if _apart(frozenset(found), frozenset(lent), named):  # one place per option
                    share = max(share, len(found | lent) / len(terms))
                joined = bool(said) and all(w in other.text for w in said)
                if not (joined or passage.linked(other)):
                    continue
                if joined or not own < lent:
                    share = max(share, len(found | lent) / len(terms))
            best = max(best, (held, share))
    return best[1]


_READ_CACHE = 256
"""Passages kept cut (``_Passage.read``, ``subjects``): a few answers' passages at once."""


@dataclass(frozen=True, slots=True)
class _Passage:
    """One passage cut for ``support``: its sentences, its whole text and the names its
    first sentence gives as its subject (all normalised)."""

    cut: tuple[str, ...]
    text: str
    subjects: tuple[str, ...]

    @staticmethod
    def read(passage: str) -> _Passage:
        """``passage`` cut; the same text is cut once however many checks read it (each
        check of an answer's start reads every passage it was given, as the stream grows)."""
        return _read_passage(passage)

    def places(
        self, needles: Sequence[str], terms: Sequence[str]
    ) -> Iterator[tuple[int, set[str], set[str], str]]:
        """Each sentence holding some of ``needles``: how many, the key terms the sentence
        holds itself, those its place holds (the neighbour rule of ``support``), and the
        sentence."""
        cut = self.cut
        head = {t for t in terms if cut and t in cut[0]}
        entry = ""  # the FAQ question the sentences since it answer
        for n, sentence in enumerate(cut):
            if _FAQ_QUESTION.match(sentence):
                entry = sentence
            held = sum(1 for w in needles if w in sentence)
            if not held:
                continue
            own = {t for t in terms if t in sentence}
            place = head | own
            for neighbour in cut[max(0, n - 1) : n] + cut[n + 1 : n + 2]:
                lent = {t for t in terms if t in neighbour}
                asks = _FAQ_QUESTION.match(neighbour) is not None  # states no fact to copy
                if own < lent and not asks and not any(w in neighbour for w in needles):
                    place = head | (own - lent)
                    break
                place |= lent
            place |= {t for t in terms if t in entry}
            yield held, own, place, sentence

    def linked(self, other: _Passage) -> bool:
        """True when one passage names the other's subject."""
        return any(s in other.text for s in self.subjects) or any(
            s in self.text for s in other.subjects
        )

    def bridges(self, other: _Passage) -> bool:
        """True when the two passages are about different subjects and one names the
        other's (two hops of one question, not two paragraphs of one article)."""
        if not self.subjects or not other.subjects:
            return False
        return not set(self.subjects) & set(other.subjects) and self.linked(other)

    def best_terms(self, terms: Sequence[str]) -> set[str]:
        """The key terms of the place (``windows``) holding the most of them."""
        held = ({t for t in terms if t in window} for window in _windows_of(self.cut))
        return max(held, key=len, default=set())


@lru_cache(maxsize=_READ_CACHE)
def _read_passage(passage: str) -> _Passage:
    cut = tuple(passage_sentences(passage))
    return _Passage(cut, " ".join(cut), subjects(passage))


@lru_cache(maxsize=_READ_CACHE)
def subjects(passage: str) -> tuple[str, ...]:
    """What a passage is about, normalised: its first line when that line is a title (a
    short line with text after it and no sentence end), without a "(...)" qualifier, and
    the names in it ("gustave whitehead", "whitehead"), its leading run of two or more
    capitalised words among them ("Breeze Max purifier": "breeze max"; a capital opening a
    sentence is no name elsewhere, but a title's first word is); none for a passage that
    starts mid-text (a later chunk of a file)."""
    lines = passage.strip().splitlines()
    title = lines[0].strip() if len(lines) > 1 else ""
    if not title or len(title) > _TITLE_CHARS or title[-1] in "。！？.!?；;：:，,":
        return ()
    bare = re.sub(r"\s*[(（][^)）]*[)）]", "", title)
    lead = _LEADING_NAME.match(bare)
    names = [bare, *(item for item in items(bare) if not item.replace(".", "").isdigit())]
    names += [lead.group(0)] if lead else []
    found = (normalise(name) for name in names)
    return tuple(dict.fromkeys(name for name in found if specific(name)))


_TITLE_CHARS = 60
_LEADING_NAME = re.compile(r"[A-Z][\w'-]*(?: [A-Z0-9][\w'-]*)+")


def specific(word: str) -> bool:
    """A word that names something rather than any text: two or more Chinese characters, or
    four or more other characters, and not a number ("年", "1999" and "the" join nothing)."""
    if word.replace(".", "").replace(",", "").isdigit():
        return False
    return len(word) >= (2 if HAN_RE.search(word) else 4)
