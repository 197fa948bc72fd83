"""Character classes of Chinese, Japanese and Korean text, and the language of a text (one copy).

Ranges are Unicode blocks (The Unicode Standard, "Blocks.txt"):
- Han ideographs: CJK Unified Ideographs Extension A (U+3400–4DBF), CJK Unified Ideographs
  (U+4E00–9FFF) and CJK Compatibility Ideographs (U+F900–FAFF);
- wide characters written without spaces between words: everything from CJK Symbols and
  Punctuation (U+3000) to the end of the unified ideographs (U+9FFF, so kana and bopomofo
  too), the compatibility ideographs and Halfwidth and Fullwidth Forms (U+FF00–FFEF).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Language = Literal["zh", "en"]

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
"""Han ideographs, as the body of a regex character class."""
WIDE = "\u3000-\u9fff\uf900-\ufaff\uff00-\uffef"
"""Wide East Asian characters (ideographs, kana, CJK punctuation, full-width forms), ditto."""
CJK_PUNCTUATION = "\u3000-\u303f\uff00-\uffef"
"""CJK symbols and punctuation plus full-width forms, ditto."""

DENSE = WIDE + "\uac00-\ud7af\U00020000-\U0002fa1f"
"""``WIDE`` plus Hangul syllables and the ideograph extensions B and later: scripts that BPE
vocabularies spend about one token per character on."""

CLOSING_MARKS = "\"'”’」』）)\\]】》〉"
"""Closing quotes and brackets, ditto: one that follows a sentence end belongs to the sentence
(「他说：“好。”」, 「（见第三章。）」), so a sentence is cut after it, never before."""

HAN_RE = re.compile(f"[{HAN}]")
_HAN_OR_PUNCTUATION = re.compile(f"[{HAN}{CJK_PUNCTUATION}]")
_WIDE = re.compile(f"[{WIDE}]")
DENSE_RE = re.compile(f"[{DENSE}]")

FAQ_QUESTION = re.compile(
    r"^[ \t]*(?:\d{1,3}[.、)）][ \t]*)?(?:问题?|Q|Question)[ \t]*[：:]",
    re.MULTILINE | re.IGNORECASE,
)
"""A FAQ entry's question line ("问：…", "Q: …", "1. Question: …")."""
FAQ_ANSWER = re.compile(r"^[ \t]*(?:答|回答|A|Answer)[ \t]*[：:]", re.MULTILINE | re.IGNORECASE)
"""A FAQ entry's answer line ("答：…", "A: …")."""

ZH_SHARE = 0.2
"""Share of Han characters among letters from which a text counts as Chinese (tuned on the
bilingual sample KB: mixed Chinese prose with English product names stays 'zh')."""


def is_han(ch: str) -> bool:
    """True for one Han ideograph."""
    return HAN_RE.fullmatch(ch) is not None


def is_wide(ch: str) -> bool:
    """True for one wide East Asian character (see ``WIDE``)."""
    return _WIDE.fullmatch(ch) is not None


def is_han_or_punctuation(ch: str) -> bool:
    """True for one Han ideograph, CJK punctuation mark or full-width form."""
    return _HAN_OR_PUNCTUATION.fullmatch(ch) is not None


def detect_language(text: str) -> Language:
    """'zh' when Han characters make up at least ``ZH_SHARE`` of the letters, else 'en'."""
    han = len(HAN_RE.findall(text))
    letters = sum(1 for ch in text if ch.isalpha())
    return "zh" if letters and han / letters >= ZH_SHARE else "en"


_LETTERS = "0-9A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
_ACCENTED_WORD = re.compile(f"[{_LETTERS}]*[\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff][{_LETTERS}]*")
"""A word holding a letter outside ASCII in a Latin, Greek or Cyrillic script ("Doñana",
"Käthe", "Müller")."""


def cut_words(text: str, *, for_search: bool = False) -> list[str]:
    """``text`` cut into words: jieba's cut (``cut_for_search`` with sub-words) except that
    a word with accented letters stays whole (jieba cuts "doñana" into "do", "ñ", "ana").

    Returns every piece jieba returns, spaces and punctuation included, in order.
    """
    import rjieba

    cut = rjieba.cut_for_search if for_search else rjieba.cut
    words: list[str] = []
    start = 0
    for match in _ACCENTED_WORD.finditer(text):
        if match.start() > start:
            words.extend(cut(text[start : match.start()]))
        words.append(match.group())
        start = match.end()
    if start < len(text):
        words.extend(cut(text[start:]))
    return words


def without_accents(text: str) -> str:
    """Latin, Greek and Cyrillic letters without their accents ("doñana" -> "donana"): users
    type names without them. Other scripts are left alone (kana keep their voicing marks)."""
    return _ACCENTED_LETTER.sub(
        lambda m: "".join(
            ch for ch in unicodedata.normalize("NFD", m.group()) if not unicodedata.combining(ch)
        ),
        text,
    )


_ACCENTED_LETTER = re.compile("[\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]")
