"""Files' kept summaries searched beside their chunks (``chat.search_summaries``).

A question about a file's subject as a whole ("which report covers the 2024 budget?") may
match its summary better than any one chunk. Each knowledge base's current summaries are
scored like chunks: dense relevance from the same embedder (vectors made on first search
and kept with the summary), fused with BM25 over the summaries in hybrid mode, and a hit
whose relevance passes the threshold competes with the chunk hits for ``top_k``. Off by
default until measured (bench/summary_search.py).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from sqlalchemy import Column, Integer, LargeBinary, String, Table, delete, select

from kbchat.chat.summaries import StoredSummary, SummaryStore, kept_summaries, metadata
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.retrieve.search import Retrieval, SearchOptions, dense_relevance
from kbchat.store.bm25 import LexicalIndex, tokenize
from kbchat.text import detect_language
from kbchat.types import Hit

SUMMARY_HEADING = "summary"
"""The heading of a summary hit (its ``headings``), so a reader can tell it from a chunk."""

summary_vectors = Table(
    "summary_vectors",
    metadata,
    Column("kb_id", Integer, primary_key=True),
    Column("file", String(1024), primary_key=True),
    Column("key", String(64), nullable=False),
    Column("vector", LargeBinary, nullable=False),
)


def with_summaries(
    kbs: Sequence[KnowledgeBase], query: str, options: SearchOptions, found: Retrieval
) -> Retrieval:
    """``found`` (the chunk hits of ``query``) with the files' summary hits merged in."""
    extra = [hit for kb in kbs for hit in summary_hits(kb, query, options)]
    if not extra:
        return found
    hits = sorted([*found.hits, *extra], key=lambda h: h.score, reverse=True)
    return replace(found, hits=hits[: options.top_k])


def summary_hits(kb: KnowledgeBase, query: str, options: SearchOptions) -> list[Hit]:
    """Hits for the kept summaries of ``kb``'s files that pass ``options.threshold``.

    A search limited to pages finds no summary (a summary has no page); one limited to
    files or file types finds only theirs.
    """
    if options.pages is not None:
        return []
    store = SummaryStore(kb.catalog.engine)
    summaries, _ = kept_summaries(kb, store)
    summaries = [s for s in summaries if _allowed(s.file, options)]
    if not summaries:
        return []
    scores = _scores(kb, query, summaries, options)
    hits = [
        Hit(
            kb=kb.name,
            file=summary.file,
            text=summary.text,
            score=float(min(max(score, 0.0), 1.0)),
            chunk_id=-n,
            headings=(SUMMARY_HEADING,),
            extra={"summary": 1.0},
        )
        for n, (summary, score) in enumerate(zip(summaries, scores, strict=True), 1)
    ]
    return sorted(
        (h for h in hits if h.score >= options.threshold), key=lambda h: h.score, reverse=True
    )


def _scores(
    kb: KnowledgeBase, query: str, summaries: list[StoredSummary], options: SearchOptions
) -> np.ndarray:
    texts = [s.text for s in summaries]
    lexical = np.zeros(len(texts))
    if options.mode != "dense":
        index = LexicalIndex.build((n, tokenize(text)) for n, text in enumerate(texts))
        normalised = index.normalised_scores(tokenize(query))
        if normalised is not None:
            lexical = np.asarray(index.scores_for(normalised, list(range(len(texts)))))
        if options.mode == "bm25":
            return lexical
    vector = kb.embedder.embed_batch([query], is_query=True)[0]
    languages = [detect_language(text[:300]) for text in texts]
    same = np.array([lang == detect_language(query) for lang in languages])
    dense = dense_relevance(
        kb.embedder, kb.chit_chat, vector, _vectors(kb, summaries), languages, same, options
    )
    if options.mode == "dense":
        return dense
    weight = options.dense_weight
    fused: np.ndarray = weight * dense + (1.0 - weight) * lexical
    return fused


def _vectors(kb: KnowledgeBase, summaries: list[StoredSummary]) -> np.ndarray:
    """The summaries' vectors (n, dim) float32: kept ones, the others embedded and kept."""
    keys = [_key(kb, s) for s in summaries]
    engine = kb.catalog.engine
    table = summary_vectors
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.file, table.c.key, table.c.vector).where(table.c.kb_id == kb.record.id)
        ).all()
    kept = {row.file: np.frombuffer(row.vector, dtype=np.float32) for row in rows}
    kept_keys = {row.file: row.key for row in rows}
    missing = [n for n, s in enumerate(summaries) if kept_keys.get(s.file) != keys[n]]
    if missing:
        made = kb.embedder.embed_batch([summaries[n].text for n in missing])
        with engine.begin() as conn:
            for n, vector in zip(missing, made, strict=True):
                file = summaries[n].file
                conn.execute(
                    delete(table).where(table.c.kb_id == kb.record.id, table.c.file == file)
                )
                conn.execute(
                    table.insert().values(
                        kb_id=kb.record.id,
                        file=file,
                        key=keys[n],
                        vector=np.asarray(vector, dtype=np.float32).tobytes(),
                    )
                )
                kept[file] = np.asarray(vector, dtype=np.float32)
    return np.stack([kept[s.file] for s in summaries]).astype(np.float32)


def _key(kb: KnowledgeBase, summary: StoredSummary) -> str:
    """What a kept vector was made from: the embedder and the summary's text."""
    return hashlib.sha256(f"{kb.embedder.name}\0{summary.text}".encode()).hexdigest()


def _allowed(file: str, options: SearchOptions) -> bool:
    if options.files and not any(fnmatch.fnmatch(file, g) for g in options.files):
        return False
    if options.file_types:
        types = {t.lower().lstrip(".") for t in options.file_types}
        return file.rsplit(".", 1)[-1].lower() in types
    return True
