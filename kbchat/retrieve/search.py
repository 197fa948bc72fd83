"""Hybrid retrieval over one or more knowledge bases: dense + BM25, fused, reranked, thresholded.

Every score a caller sees is a relevance in [0, 1], whatever the mode:
- dense: the cosine similarity measured from the query's similarity to chit-chat in the
  passage's language, in units of the embedder's ``score_width`` (see ``relevance``);
- bm25: BM25 divided by the query's total idf weight (see ``LexicalIndex``);
- hybrid: a weighted mean of both, computed for every candidate either retriever found.
So one threshold means the same thing in every mode, and a greeting scores near 0.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from kbchat.embed.base import Embedder
from kbchat.embed.chit_chat import ChitChat
from kbchat.embed.composite import CompositeEmbedder
from kbchat.errors import BadInput
from kbchat.options import OptionError, RerankThreshold, RetrievalOptions, check_fields
from kbchat.retrieve.source import SearchableKB
from kbchat.store.bm25 import LexicalIndex, tokenize
from kbchat.store.catalog import StoredChunk
from kbchat.text import detect_language
from kbchat.types import Hit

MAX_QUERY_CHARS = 2000
RRF_K = 60


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant, each score in [0, 1]."""

    name: str

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchOptions(RetrievalOptions):
    """How to search: the ``[retrieval]`` settings plus what only a request sets.

    Validated on construction against the option types (``kbchat.options``); errors
    name the bad value.
    """

    files: tuple[str, ...] = ()
    file_types: tuple[str, ...] = ()
    pages: tuple[int, int] | None = None
    dedupe: bool = True
    rerank_threshold: RerankThreshold = 0.0

    def __post_init__(self) -> None:
        check_fields(self)
        if self.candidates < self.top_k:
            object.__setattr__(self, "candidates", self.top_k)
        if self.pages is not None and (self.pages[0] > self.pages[1] or self.pages[0] < 1):
            raise OptionError(
                f"page range must be FIRST-LAST with 1 <= FIRST <= LAST, got {self.pages}"
            )


@dataclass(slots=True)
class Retrieval:
    """Hits plus what the caller should know: notices (e.g. a truncated query) and timings."""

    hits: list[Hit]
    notices: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


def search(
    kbs: Sequence[SearchableKB],
    query: str,
    options: SearchOptions | None = None,
    *,
    reranker: Reranker | None = None,
) -> list[Hit]:
    """The hits for ``query`` over ``kbs``, best first (see ``retrieve``)."""
    return retrieve(kbs, query, options, reranker=reranker).hits


def retrieve(
    kbs: Sequence[SearchableKB],
    query: str,
    options: SearchOptions | None = None,
    *,
    reranker: Reranker | None = None,
) -> Retrieval:
    """Search several knowledge bases at once; hits carry their KB's name.

    Raises:
        BadInput: empty query or invalid options.
    """
    options = options or SearchOptions()
    if not query.strip():
        raise BadInput("the query is empty")
    if not kbs:
        raise BadInput("no knowledge base to search")
    result = Retrieval(hits=[])
    if len(query) > MAX_QUERY_CHARS:
        result.notices.append(
            f"the query was {len(query)} characters; only the first {MAX_QUERY_CHARS} were used"
        )
        query = query[:MAX_QUERY_CHARS]
    started = time.perf_counter()
    tokens = tokenize(query) if options.mode != "dense" else []
    vectors = _query_vectors(kbs, query) if options.mode != "bm25" else {}
    result.timings_ms["embed"] = (time.perf_counter() - started) * 1000
    hits: list[Hit] = []
    for kb in kbs:
        hits.extend(_search_kb(kb, query, vectors.get(kb.embedder.name), tokens, options))
    hits.sort(key=lambda h: h.extra.get("rank_key", h.score), reverse=True)
    if reranker is None:
        hits = [h for h in hits if h.score >= options.threshold]
    if options.dedupe:
        hits = _dedupe(hits, options.top_k if reranker is None else options.candidates)
    if reranker is not None and hits:
        hits = _rerank(reranker, query, hits[: options.candidates], options)
        hits = [h for h in hits if h.score >= options.threshold]
    result.hits = hits[: options.top_k]
    result.timings_ms["total"] = (time.perf_counter() - started) * 1000
    return result


def _query_vectors(kbs: Sequence[SearchableKB], query: str) -> dict[str, np.ndarray]:
    vectors: dict[str, np.ndarray] = {}
    for kb in kbs:
        if kb.embedder.name not in vectors:
            vectors[kb.embedder.name] = kb.embedder.embed_batch([query], is_query=True)[0]
    return vectors


DEFAULT_SCORE_WIDTH = 0.2
CHIT_CHAT_LEVEL = 0.3
"""Relevance of a passage exactly as similar to the question as chit-chat is."""


def relevance(
    embedder: Embedder,
    query_vector: np.ndarray,
    cosine: np.ndarray,
    languages: Sequence[str] | None = None,
    *,
    chit_chat: ChitChat,
) -> np.ndarray:
    """Raw cosine similarities as relevance: ~0 for chit-chat-like, ~1 for typical answers.

    Embedders differ wildly in scale (e5 puts almost everything between 0.75 and 0.95), so
    a fixed cut-off means nothing. Each similarity is measured from the query's similarity
    to chit-chat in the passage's language, in units of the embedder's ``score_width``, and
    shifted so that chit-chat level is ``CHIT_CHAT_LEVEL``. Not clipped: the ranking keeps
    every difference; callers clip to [0, 1] for the score they show. ``chit_chat`` keeps
    the chit-chat lines' vectors (the knowledge base's, shared through its library).
    """
    floors = chit_chat.similarity(embedder, query_vector)
    width = float(getattr(embedder, "score_width", DEFAULT_SCORE_WIDTH))
    # Another language's floor may sit lower, but by no more than half a width.
    highest = max(floors.values())
    floors = {lang: max(value, highest - width / 2) for lang, value in floors.items()}
    langs = languages or ["en"] * len(cosine)
    floor = np.array([floors.get(lang, floors["en"]) for lang in langs], dtype=np.float32)
    values: np.ndarray = (np.asarray(cosine, dtype=np.float32) - floor) / width + CHIT_CHAT_LEVEL
    return values


def _search_kb(
    kb: SearchableKB,
    query: str,
    vector: np.ndarray | None,
    tokens: list[str],
    options: SearchOptions,
) -> list[Hit]:
    allowed = _allowed_ids(kb, options)
    if allowed is not None and len(allowed) == 0:
        return []
    found: list[int] = []  # dense candidates
    if vector is not None:
        query_vector = _store_query(kb.embedder, vector)
        found = [i for i, _ in kb.nearest(query_vector, options.candidates, allowed)]
    lexical_index = kb.lexical() if tokens else None
    lexical_scores = lexical_index.normalised_scores(tokens) if lexical_index else None
    lexical: dict[int, float] = {}
    if lexical_index is not None and lexical_scores is not None:
        lexical = dict(lexical_index.top(lexical_scores, options.candidates, allowed))
    if options.mode == "dense":
        candidates = found
    elif options.mode == "bm25":
        candidates = list(lexical)
    else:
        candidates = list(dict.fromkeys([*found, *lexical]))
    stored = kb.chunks(candidates)
    candidates = [i for i in candidates if i in stored]
    if not candidates:
        return []
    scored = _Lexical(lexical_index, lexical_scores, lexical)
    rank, dense = _rank(kb, query, vector, candidates, stored, scored, options)
    if options.fusion == "weighted" or options.mode != "hybrid" or dense is None:
        keys = rank
    else:
        keys = _rrf_keys(candidates, set(found), dense, lexical)
    order = sorted(range(len(candidates)), key=lambda n: keys[n], reverse=True)
    hits = []
    for n in order[: options.candidates]:
        hit = kb.to_hit(stored[candidates[n]], float(min(max(rank[n], 0.0), 1.0)))
        hits.append(replace(hit, extra={"rank_key": float(keys[n])}))
    return hits


def _store_query(embedder: Embedder, vector: np.ndarray) -> np.ndarray:
    """The vector store query: for a composite embedder, one that sums the parts' cosines
    in units of each part's score width (its relevance scale), so one pass finds the
    candidates of every part (as good as one search per part on every dev set, and faster)."""
    if isinstance(embedder, CompositeEmbedder):
        widths = [getattr(part, "score_width", DEFAULT_SCORE_WIDTH) for part in embedder.parts]
        return embedder.weighted_query(vector, [1.0 / width for width in widths])
    return vector


@dataclass(frozen=True, slots=True)
class _Lexical:
    """BM25 for one search: the index, its normalised score of every chunk, the top ones."""

    index: LexicalIndex | None
    scores: np.ndarray | None
    top: dict[int, float]


def _rank(
    kb: SearchableKB,
    query: str,
    vector: np.ndarray | None,
    candidates: list[int],
    stored: dict[int, StoredChunk],
    lexical: _Lexical,
    options: SearchOptions,
) -> tuple[list[float], np.ndarray | None]:
    """The unclipped ranking value of every candidate in the chosen mode, and its dense
    relevance (None in bm25 mode).

    Hybrid: the weighted mean of dense relevance and normalised BM25, each computed exactly
    for every candidate (dense from its stored vector, BM25 from the full score array),
    never a zero for "not in the other list".
    """
    if options.mode == "bm25" or vector is None:
        return [lexical.top.get(i, 0.0) for i in candidates], None
    languages = [detect_language(stored[i].chunk.text[:300]) for i in candidates]
    query_language = detect_language(query)
    same = np.array([lang == query_language for lang in languages])
    dense_part = _dense_relevance(kb, vector, candidates, languages, same, options)
    if options.mode == "dense" or lexical.index is None or lexical.scores is None:
        # In hybrid mode with no query word in the corpus, BM25 has nothing to say.
        return [float(v) for v in dense_part], dense_part
    lexical_part = np.array(lexical.index.scores_for(lexical.scores, candidates))
    lexical_part = _lexical_stand_in(lexical_part, dense_part, same, options.language_margin)
    weight = np.where(same | ~np.isnan(lexical_part), options.dense_weight, 1.0)
    fused = weight * dense_part + (1.0 - weight) * np.nan_to_num(lexical_part)
    return [float(v) for v in fused], dense_part


def _lexical_stand_in(
    lexical: np.ndarray, dense: np.ndarray, same: np.ndarray, margin: float
) -> np.ndarray:
    """BM25 for fusion: a passage in another language than the question gets, instead of
    its own (shared names are incidental across languages), the median BM25 of the
    same-language passages of comparable meaning (dense relevance within ``margin``); NaN
    when there are none, and it is then ranked by dense relevance alone.

    Normalised BM25 mostly sits below dense relevance, so ranking other-language passages
    by dense alone put the Chinese copy of a document first for an English question. A
    cross-language question keeps its ranking: its same-language candidates are far less
    relevant by meaning, so no stand-in applies. ``margin`` 0 turns this off.
    """
    result = np.where(same, lexical, np.nan).astype(np.float64)
    if margin <= 0 or not same.any():
        return result
    for n in np.flatnonzero(~same):
        peers = same & (np.abs(dense - dense[n]) <= margin)
        if peers.any():
            result[n] = float(np.median(lexical[peers]))
    return result


def _dense_relevance(
    kb: SearchableKB,
    vector: np.ndarray,
    candidates: list[int],
    languages: Sequence[str],
    same: np.ndarray,
    options: SearchOptions,
) -> np.ndarray:
    """Dense relevance of each candidate, from its vector in the store.

    With a composite embedder (e5+use) the first model leads and the others (their mean)
    weigh ``second_weight`` for a passage in the question's language and
    ``second_weight_cross`` for one in another language, where the first is weaker.
    """
    position = {chunk_id: n for n, chunk_id in enumerate(candidates)}
    matrix = np.zeros((len(candidates), kb.embedder.dim), dtype=np.float32)
    ids, vectors = kb.stored_vectors(candidates)
    matrix[[position[i] for i in ids.tolist()]] = vectors
    return dense_relevance(kb.embedder, kb.chit_chat, vector, matrix, languages, same, options)


def dense_relevance(
    embedder: Embedder,
    chit_chat: ChitChat,
    vector: np.ndarray,
    matrix: np.ndarray,
    languages: Sequence[str],
    same: np.ndarray,
    options: RetrievalOptions,
) -> np.ndarray:
    """Dense relevance of passages with vectors ``matrix`` (n, dim) to a query ``vector``;
    ``same`` (n,) bool: the passage is in the question's language (see ``_dense_relevance``)."""
    if not isinstance(embedder, CompositeEmbedder):
        return relevance(embedder, vector, matrix @ vector, languages, chit_chat=chit_chat)
    queries = embedder.split(vector)
    parts = [
        relevance(part, part_query, cosines, languages, chit_chat=chit_chat)
        for part, part_query, cosines in zip(
            embedder.parts, queries, embedder.part_cosines(matrix, vector), strict=True
        )
    ]
    weight = np.where(same, options.second_weight, options.second_weight_cross)
    result: np.ndarray = (1.0 - weight) * parts[0] + weight * np.mean(parts[1:], axis=0)
    return result


def _rrf_keys(
    candidates: list[int], found: set[int], dense: np.ndarray, lexical: dict[int, float]
) -> list[float]:
    """Reciprocal-rank fusion of the dense candidates (by dense relevance) and BM25's."""
    order = np.argsort(-dense, kind="stable")
    ranked = [candidates[n] for n in order if candidates[n] in found]
    fused = _rrf([ranked, sorted(lexical, key=lambda i: -lexical[i])])
    return [fused.get(i, 0.0) for i in candidates]


def _rrf(rankings: Sequence[Sequence[int]]) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return fused


def _allowed_ids(kb: SearchableKB, options: SearchOptions) -> np.ndarray | None:
    if not options.files and not options.file_types and options.pages is None:
        return None
    names = [f.name for f in kb.files() if f.status == "indexed"]
    if options.files:
        names = [n for n in names if any(fnmatch.fnmatch(n, g) for g in options.files)]
    if options.file_types:
        types = {t.lower().lstrip(".") for t in options.file_types}
        names = [n for n in names if n.rsplit(".", 1)[-1].lower() in types]
    return kb.chunk_ids_for_files(names, pages=options.pages)


def _dedupe(hits: list[Hit], limit: int) -> list[Hit]:
    """The first ``limit`` hits that do not repeat a better hit (90% shingle overlap)."""
    kept: list[Hit] = []
    shingles: list[set[str]] = []
    for hit in hits:
        if len(kept) >= limit:
            break
        text = "".join(hit.text.split()).lower()
        grams = {text[i : i + 4] for i in range(max(1, len(text) - 3))}
        if any(_jaccard(grams, other) >= 0.9 for other in shingles):
            continue
        kept.append(hit)
        shingles.append(grams)
    return kept


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _rerank(reranker: Reranker, query: str, hits: list[Hit], options: SearchOptions) -> list[Hit]:
    scores = reranker.rerank(query, [h.text for h in hits])
    rescored = [
        replace(h, score=float(s), extra={**h.extra, "retrieval_score": h.score})
        for h, s in zip(hits, scores, strict=True)
        if s >= options.rerank_threshold
    ]
    return sorted(rescored, key=lambda h: h.score, reverse=True)
