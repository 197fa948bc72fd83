"""Chinese-aware recursive splitter: Documents -> Chunks of at most ``chunk_size`` characters.

A cut is chosen among the boundaries inside a window of ``chunk_size`` characters, preferring
(strongest first) markdown headings, blank lines, sentence ends (。！？；!?; and ". " but not
"3.14" or "e.g. "), clause marks (，、：, : |), single line breaks, whitespace, and only then a
hard cut between two characters, never inside an ASCII word or number. A cut that would leave
the chunk less than half full is taken only to keep a sentence whole or to start a new
markdown section (a heading line always stays with the text under it). Tables are cut only
between rows. A FAQ ("问：…答：…", "Q: … A: …") is cut before every entry after the first:
one entry a chunk, the file's title with the first.

Every cut inside a section overlaps: the next chunk repeats the end of the previous one,
starting at a clause or sentence boundary, else at a word boundary (whitespace, or jieba's
words in Chinese), else between two characters, so that at least half of ``chunk_overlap``
is repeated. A fact no longer than that is therefore whole in some chunk.

Every chunk is an exact slice of its document's text with surrounding whitespace trimmed;
``split_spans`` returns those slices' offsets. Boundaries are found one segment of the text
at a time, so a huge document is split in bounded memory (``iter_spans``, ``iter_chunks``).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from kbchat.text import CLOSING_MARKS, FAQ_ANSWER, FAQ_QUESTION, HAN_RE
from kbchat.types import Chunk, Document

HARD, SPACE, LINE, CLAUSE, SENTENCE, PARAGRAPH, HEADING, ROW, ENTRY = range(9)
MIN_FILL = 0.5
"""A cut weaker than a sentence end is not taken before this fraction of chunk_size."""
_SEGMENT_CHUNKS = 32
_MIN_SEGMENT = 16_384
"""Boundaries are found for this many characters (or chunk sizes) of text at a time."""

_CJK_SENTENCE = re.compile(f"(?:[。！？；]|…+|\\.{{3,}})[{CLOSING_MARKS}]*")
_ASCII_SENTENCE = re.compile(f"[!?;]+[{CLOSING_MARKS}]*(?=\\s|$|[^\\x00-\\x7f])")
_PERIOD = re.compile(f"\\.[{CLOSING_MARKS}]*(?=\\s|$)")
_CLAUSE = re.compile(r"[，、：﹐﹑]|——|[,:|](?=\s)")
_WHITESPACE = re.compile(r"\s+")
_JIEBA_CONTEXT = 8
"""Characters before the overlap window given to jieba, to segment its first word in context."""
_HEADING_LINE = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]|$)")
_WORD_CHAR = "0-9A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff\uff10-\uff19"
_WORD = re.compile(f"[{_WORD_CHAR}]+(?:[.,:'’_/\\-][{_WORD_CHAR}]+)*")
_WORD_BEFORE_PERIOD = re.compile(f"([{_WORD_CHAR}.]*)$")
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "no", "nos", "fig",
        "figs", "vol", "vols", "pp", "ed", "eds", "inc", "ltd", "co", "corp", "dept", "approx",
        "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
        "dec", "cf", "al", "ch", "sec", "eq", "ref",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Boundaries:
    """Where one text may be cut within ``[lo, hi]``: candidate ends, strengths, word spans."""

    text: str
    lo: int
    hi: int
    content_end: int
    ends: list[int]
    strengths: list[int]
    word_starts: list[int]
    word_ends: list[int]


def split_documents(
    documents: Sequence[Document], *, chunk_size: int, chunk_overlap: int
) -> list[Chunk]:
    """Split the documents of one file into chunks, numbered 0..n-1 in call order.

    Args:
        documents: The documents a loader produced for one file, in reading order.
        chunk_size: Maximum chunk length in characters.
        chunk_overlap: Characters repeated from the end of the previous chunk (text
            documents only; tables never overlap).

    Returns:
        Chunks carrying their document's source, page, sheet, slide, headings and title.

    Raises:
        ValueError: ``chunk_size`` or ``chunk_overlap`` is out of range.
    """
    return list(iter_chunks(documents, chunk_size=chunk_size, chunk_overlap=chunk_overlap))


def iter_chunks(
    documents: Iterable[Document], *, chunk_size: int, chunk_overlap: int
) -> Iterator[Chunk]:
    """``split_documents`` one chunk at a time, so a caller can stop early.

    Raises:
        ValueError: ``chunk_size`` or ``chunk_overlap`` is out of range.
    """
    _check_sizes(chunk_size, chunk_overlap)
    position = 0
    for document in documents:
        spans = iter_spans(
            document.text,
            chunk_size=chunk_size,
            chunk_overlap=0 if document.kind == "table" else chunk_overlap,
            table=document.kind == "table",
        )
        for start, end in spans:
            yield Chunk(
                text=document.text[start:end],
                source=document.source,
                position=position,
                page=document.page,
                sheet=document.sheet,
                slide=document.slide,
                headings=document.headings,
                title=document.title,
            )
            position += 1


def split_spans(
    text: str, *, chunk_size: int, chunk_overlap: int, table: bool = False
) -> list[tuple[int, int]]:
    """Return ``(start, end)`` offsets of the chunks of ``text``, in order.

    Each chunk is ``text[start:end]``: non-empty, trimmed, at most ``chunk_size`` long. A chunk
    starts before the previous one ends only by repeating at most ``chunk_overlap``
    characters; it does at every cut inside a section unless the repeated text would leave
    no room for new text.

    Args:
        text: The text to split.
        chunk_size: Maximum chunk length in characters.
        chunk_overlap: Maximum characters repeated from the previous chunk.
        table: Treat each line as a table row: cut only between rows, unless a single row is
            longer than ``chunk_size``, which is then cut like text.

    Raises:
        ValueError: ``chunk_size`` or ``chunk_overlap`` is out of range.
    """
    return list(iter_spans(text, chunk_size=chunk_size, chunk_overlap=chunk_overlap, table=table))


def iter_spans(
    text: str, *, chunk_size: int, chunk_overlap: int, table: bool = False
) -> Iterator[tuple[int, int]]:
    """``split_spans`` one span at a time, finding boundaries a segment at a time.

    Raises:
        ValueError: ``chunk_size`` or ``chunk_overlap`` is out of range.
    """
    _check_sizes(chunk_size, chunk_overlap)
    content_end = len(text)
    while content_end and text[content_end - 1].isspace():
        content_end -= 1
    segment = max(_SEGMENT_CHUNKS * chunk_size, _MIN_SEGMENT)
    start = _skip_space(text, 0)
    bounds = _find_boundaries(text, chunk_size, table, start, start + segment, content_end)
    previous_end: int | None = None
    while start < content_end:
        if start + chunk_size > bounds.hi and bounds.hi < len(text):
            bounds = _find_boundaries(text, chunk_size, table, start, start + segment, content_end)
        after = start if previous_end is None else previous_end
        end = _choose_cut(bounds, start, chunk_size, after=after, table=table)
        if end is None and previous_end is not None:  # the overlap left no room: drop it
            start = _skip_space(text, previous_end)
            end = _choose_cut(bounds, start, chunk_size, after=start, table=table)
        if end is None:
            raise AssertionError(f"splitter found no cut after offset {start}")
        yield start, end
        previous_end = end
        start = _next_start(bounds, start, end, chunk_overlap)


def _check_sizes(chunk_size: int, chunk_overlap: int) -> None:
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    if chunk_overlap < 0:
        raise ValueError(f"chunk_overlap must be >= 0, got {chunk_overlap}")
    if chunk_overlap >= chunk_size:
        raise ValueError(
            f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})"
        )


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


def _find_boundaries(
    text: str, chunk_size: int, table: bool, lo: int, hi: int, content_end: int
) -> _Boundaries:
    """Collect the candidate cuts (end offsets of the chunk before) in ``[lo, hi]``.

    The scan reaches ``chunk_size`` characters further each side, so a word or a mark
    across either edge is seen whole.
    """
    hi = min(hi, len(text))
    scan_lo, scan_hi = max(0, lo - chunk_size - 16), min(len(text), hi + chunk_size + 16)
    strength: dict[int, int] = {}

    def mark(end: int, level: int) -> None:
        if 0 < end < len(text) and end <= hi and strength.get(end, -1) < level:
            strength[end] = level

    heading_ends: list[int] = []
    for match in _WHITESPACE.finditer(text, scan_lo, scan_hi):
        newlines = match.group().count("\n")
        if newlines == 0:
            mark(match.start(), SPACE)
        elif table:
            mark(match.start(), ROW)
        else:
            mark(match.start(), PARAGRAPH if newlines > 1 else LINE)
            if _HEADING_LINE.match(text, match.end()):
                mark(match.start(), HEADING)
            line_start = text.rfind("\n", 0, match.start()) + 1
            if _HEADING_LINE.match(text, line_start):
                heading_ends.append(match.start())
    for pattern in (_CJK_SENTENCE, _ASCII_SENTENCE):
        for match in pattern.finditer(text, scan_lo, scan_hi):
            mark(match.end(), SENTENCE)
    for match in _PERIOD.finditer(text, scan_lo, scan_hi):
        if _ends_sentence(text, match.start()):
            mark(match.end(), SENTENCE)
    for match in _CLAUSE.finditer(text, scan_lo, scan_hi):
        mark(match.end(), CLAUSE)
    if not table:
        for start in _entry_starts(text, scan_lo, scan_hi, chunk_size):
            end = start
            while end > 0 and text[end - 1].isspace():
                end -= 1
            mark(end, ENTRY)
    for end in heading_ends:  # a heading stays with the text under it
        strength.pop(end, None)
    words = [
        m.span()
        for m in _WORD.finditer(text, scan_lo, scan_hi)
        if m.end() - m.start() <= chunk_size
    ]
    ends = sorted(strength)
    return _Boundaries(
        text=text,
        lo=lo,
        hi=hi,
        content_end=content_end,
        ends=ends,
        strengths=[strength[end] for end in ends],
        word_starts=[start for start, _ in words],
        word_ends=[end for _, end in words],
    )


def _entry_starts(text: str, lo: int, hi: int, reach: int) -> list[int]:
    """Offsets in ``[lo, hi)`` where a question-and-answer entry ("问：…" / "答：…", "Q: …" /
    "A: …") starts right after another entry's answer: FAQ files are cut there, one entry a
    chunk, as FAQ-aware splitters do (RAGFlow's "Q&A" chunking, FastGPT's QA pairs). A long
    FAQ entry diluted its neighbours: "如何更新知识库？" missed the entry that answers it, one
    of four in a chunk. The previous entry is looked for up to ``4 * reach`` characters back.
    """
    since = max(0, lo - 4 * reach)
    questions = [m.start() for m in FAQ_QUESTION.finditer(text, since, hi)]
    answers = [m.start() for m in FAQ_ANSWER.finditer(text, since, hi)]
    starts: list[int] = []
    for previous, question in itertools.pairwise(questions):
        answered = bisect.bisect_right(answers, previous) < bisect.bisect_left(answers, question)
        if question >= lo and answered:
            starts.append(question)
    return starts


def _ends_sentence(text: str, period: int) -> bool:
    """Whether the '.' at ``period`` (followed by a space) ends a sentence."""
    word = _WORD_BEFORE_PERIOD.search(text, max(0, period - 20), period)
    token = word.group(1) if word else ""
    if text.startswith("..", period - 2) or not token:
        return True
    if "." in token.strip("."):  # "e.g", "U.S"
        return False
    if len(token) == 1 and token.isalpha():  # an initial: "J. K. Rowling"
        return False
    return token.lower() not in _ABBREVIATIONS


def _legal_cut_at_or_before(bounds: _Boundaries, index: int) -> int:
    """The largest offset <= ``index`` that is not inside a word or number."""
    slot = bisect.bisect_right(bounds.word_starts, index) - 1
    if slot >= 0 and bounds.word_starts[slot] < index < bounds.word_ends[slot]:
        return bounds.word_starts[slot]
    return index


def _choose_cut(
    bounds: _Boundaries, start: int, chunk_size: int, *, after: int, table: bool
) -> int | None:
    """End offset of the chunk starting at ``start``; it must lie beyond ``after``."""
    text = bounds.text
    limit = start + chunk_size
    low = bisect.bisect_right(bounds.ends, max(start, after))
    high = bisect.bisect_right(bounds.ends, limit)
    candidates = list(zip(bounds.ends[low:high], bounds.strengths[low:high], strict=True))
    if any(level == ENTRY for _, level in candidates):  # one FAQ entry (or section) a chunk
        return min(end for end, level in candidates if level >= HEADING)
    if bounds.content_end - start <= chunk_size:
        return bounds.content_end
    hard = _legal_cut_at_or_before(bounds, limit)
    if hard > max(start, after) and not text[hard - 1].isspace():
        candidates.append((hard, HARD))
    if not candidates:
        return None
    if table and any(level == ROW for _, level in candidates):
        return max(end for end, level in candidates if level == ROW)
    half = start + chunk_size * MIN_FILL

    def preference(candidate: tuple[int, int]) -> tuple[int, int, int]:
        end, level = candidate
        full = end >= half
        if level >= HEADING:  # a section starts a chunk unless it fits whole
            tier = 6
        elif level >= SENTENCE:
            tier = 5 if full else 4
        elif level > HARD:
            tier = 3 if full else 1
        else:
            tier = 2 if full else 0
        return tier, level, end

    return max(candidates, key=preference)[0]


def _next_start(bounds: _Boundaries, start: int, end: int, chunk_overlap: int) -> int:
    """Where the chunk after ``text[start:end]`` begins, repeating the end of it.

    The repeated text starts at the earliest clause (or sentence) boundary within
    ``chunk_overlap`` of ``end``, else the earliest word boundary, else a character, taking
    the first of these that repeats at least half of ``chunk_overlap``.
    """
    text = bounds.text
    following = _skip_space(text, end)
    if chunk_overlap == 0 or following >= bounds.content_end:
        return following
    slot = bisect.bisect_left(bounds.ends, end)
    if slot < len(bounds.ends) and bounds.ends[slot] == end and bounds.strengths[slot] >= HEADING:
        return following  # a new section does not repeat the previous one
    earliest = max(start + 1, end - chunk_overlap)
    enough = end - chunk_overlap // 2
    fallback = following
    for find in (_clause_start, _space_start, _cjk_word_start, _character_start):
        candidate = find(bounds, earliest, end)
        if candidate is None:
            continue
        if candidate <= enough:
            return candidate
        fallback = min(fallback, candidate)
    return fallback


def _boundary_start(bounds: _Boundaries, earliest: int, end: int, level: int) -> int | None:
    """The first start after a boundary of at least ``level`` in ``[earliest, end)``."""
    low = bisect.bisect_left(bounds.ends, earliest)
    high = bisect.bisect_left(bounds.ends, end)
    for index in range(low, high):
        if bounds.strengths[index] >= level:
            candidate = _skip_space(bounds.text, bounds.ends[index])
            if candidate < end:
                return candidate
    return None


def _clause_start(bounds: _Boundaries, earliest: int, end: int) -> int | None:
    return _boundary_start(bounds, earliest, end, CLAUSE)


def _space_start(bounds: _Boundaries, earliest: int, end: int) -> int | None:
    return _boundary_start(bounds, earliest, end, SPACE)


def _cjk_word_start(bounds: _Boundaries, earliest: int, end: int) -> int | None:
    """The first jieba word boundary in ``[earliest, end)`` that is not inside an ASCII word."""
    text = bounds.text
    if not HAN_RE.search(text, earliest, end):
        return None
    import rjieba

    offset = max(0, earliest - _JIEBA_CONTEXT)
    for token in rjieba.cut(text[offset:end]):
        offset += len(token)
        if (
            earliest <= offset < end
            and not text[offset].isspace()
            and _legal_cut_at_or_before(bounds, offset) == offset
        ):
            return offset
    return None


def _character_start(bounds: _Boundaries, earliest: int, end: int) -> int | None:
    """``earliest``, or the end of the ASCII word it falls in."""
    candidate = _skip_space(bounds.text, earliest)
    slot = bisect.bisect_right(bounds.word_starts, candidate) - 1
    if slot >= 0 and bounds.word_starts[slot] < candidate < bounds.word_ends[slot]:
        candidate = _skip_space(bounds.text, bounds.word_ends[slot])
    return candidate if candidate < end else None
