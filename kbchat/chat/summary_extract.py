"""The extractive half of a summary: a document's sentences and the most central of them.

Sentences are embedded once, in batches, as passages; a composite embedder (``e5+use``)
embeds them with its fastest part only (USE embeds sentences ~20x faster than e5 on two
cores, bench/results/summarize.json), since centrality needs no cross-lingual ranking.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

import numpy as np

from kbchat.chat.memory import truncate_to_tokens
from kbchat.embed.base import Embedder, Vectors, embed_texts
from kbchat.embed.composite import CompositeEmbedder
from kbchat.text import CLOSING_MARKS, FAQ_ANSWER, FAQ_QUESTION

_SENTENCE = re.compile(
    f"[^。！？!?；;.]+(?:[。！？!?；;]+[{CLOSING_MARKS}]*|\\.[{CLOSING_MARKS}]*(?=\\s|$))?"
)
_PARAGRAPH = re.compile(r"\n\s*\n")
_LINE_START = re.compile(r"\s*(?:[#>*|•\-+]|\d+[.)、]|[一二三四五六七八九十]+[、.])")
"""A line that starts a heading, quote, list item or table row is not a wrapped line."""
_MARKUP = re.compile(r"\*\*|__|`")
"""Markdown emphasis, dropped with the line's marker: a small model shown a list of
"- **...**" lines goes on with the list instead of summarising it."""
_MIN_CJK = 6
_MIN_WORDS = 4
"""Shorter sentences are fragments (a heading, a reference's "& Wen, J.")."""
_PROBE = 16
"""Sentences embedded by each part of a composite embedder to find the fastest."""


def document_sentences(texts: Sequence[str], *, limit: int = 1000) -> list[str]:
    """The document's sentences in order, without repeats or fragments.

    A single line break inside a paragraph is a wrapped line (PDF text), not a sentence
    end, unless the next line starts a heading or list item. Beyond ``limit`` sentences,
    ``limit`` of them evenly spread over the document.
    """
    seen: set[str] = set()
    sentences = []
    for text in texts:
        for paragraph in _PARAGRAPH.split(text):
            for sentence in _with_answers(_SENTENCE.findall(_unwrapped(paragraph))):
                sentence = _MARKUP.sub("", _LINE_START.sub("", sentence, count=1)).strip()
                if _is_sentence(sentence) and sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
    if len(sentences) > limit:
        step = len(sentences) / limit
        sentences = [sentences[int(i * step)] for i in range(limit)]
    return sentences


def _with_answers(sentences: Sequence[str]) -> list[str]:
    """``sentences`` with a FAQ question ("问：如何备份？") joined to the sentence after it
    (its answer's first): picked alone, a question without its answer told the summary
    nothing (a fresh user's extract of the sample FAQ)."""
    joined: list[str] = []
    for sentence in sentences:
        question = joined and FAQ_QUESTION.match(joined[-1]) and not FAQ_ANSWER.search(joined[-1])
        if question and FAQ_ANSWER.match(sentence.strip()):
            joined[-1] = f"{joined[-1].strip()} {sentence.strip()}"
        else:
            joined.append(sentence)
    return joined


def _is_sentence(text: str) -> bool:
    cjk = sum(ord(c) > 0x2E7F for c in text)
    return cjk >= _MIN_CJK or len(text.split()) >= _MIN_WORDS


def _unwrapped(paragraph: str) -> str:
    """``paragraph`` with wrapped lines joined; other line breaks end a sentence."""
    lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
    joined = ""
    for line in lines:
        if not joined:
            joined = line
        elif _LINE_START.match(line):
            joined += "\n" + line
        else:
            cjk = ord(joined[-1]) > 0x2E7F and ord(line[0]) > 0x2E7F
            joined += ("" if cjk else " ") + line
    return joined.replace("\n", "。" if _mostly_cjk(joined) else ". ")


def _mostly_cjk(text: str) -> bool:
    return sum(ord(c) > 0x2E7F for c in text) * 2 > len(text)


def sentence_vectors(
    embedder: Embedder, sentences: Sequence[str], *, batch_size: int = 32
) -> tuple[Vectors, str]:
    """Unit vectors of ``sentences`` (as passages), and the name of the embedder used.

    A composite embedder embeds a probe batch with each part and the rest with the
    fastest part alone.
    """
    if not isinstance(embedder, CompositeEmbedder) or len(sentences) <= _PROBE:
        return embed_texts(embedder, sentences, batch_size=batch_size), embedder.name
    probe = list(sentences[:_PROBE])
    timed = []
    for part in embedder.parts:
        started = time.perf_counter()
        vectors = part.embed_batch(probe)
        timed.append((time.perf_counter() - started, part, vectors))
    _, fastest, first = min(timed, key=lambda item: item[0])
    rest = embed_texts(fastest, sentences[_PROBE:], batch_size=batch_size)
    return np.ascontiguousarray(np.vstack([first, rest]), dtype=np.float32), fastest.name


def central_sentences(
    sentences: Sequence[str],
    vectors: np.ndarray,
    *,
    limit: int,
    budget: int,
    count: Callable[[str], int],
    redundancy: float = 0.5,
) -> list[str]:
    """The sentences closest to the document's centroid, each unlike those already picked.

    Greedy maximal marginal relevance (Carbonell & Goldstein, 1998): score = similarity to
    the centroid - ``redundancy`` x the highest similarity to a picked sentence. A sentence
    that does not fit the ``budget`` (tokens) left is passed over; stops at ``limit``
    sentences, or after passing over 2 x ``limit``. If none fits at all, the most central
    one cut to the budget. Returns them in document order.
    """
    if len(sentences) == 0:
        return []
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    central = vectors @ centroid
    closest = np.zeros(len(sentences))
    open_ = np.ones(len(sentences), dtype=bool)
    chosen: list[int] = []
    used = skipped = 0
    while len(chosen) < limit and open_.any() and skipped < 2 * limit:
        scores = np.where(open_, central - redundancy * closest, -np.inf)
        best = int(np.argmax(scores))
        open_[best] = False
        cost = count(sentences[best])
        if used + cost > budget:
            skipped += 1
            continue
        chosen.append(best)
        used += cost
        closest = np.maximum(closest, vectors @ vectors[best])
    if not chosen:
        return [truncate_to_tokens(sentences[int(np.argmax(central))], budget, count)]
    return [sentences[i] for i in sorted(chosen)]
