"""BM25 over jieba tokens (Chinese) and words (English), persisted beside the vectors.

On disk an index is a folder: bm25s's own files (``BM25.save``: numpy arrays and JSON, read
back without pickle) plus ``ids.npy`` (row -> chunk id) and ``doc_freq.json``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kbchat.store.base import Ids

LEXICAL_DIR = "bm25"
"""The folder a knowledge base's BM25 index is saved in."""
LEGACY_PICKLE = "bm25.pkl"
"""Where earlier kbchat versions pickled the index; never unpickled (a pickle runs code), only
replaced by an index rebuilt from the catalog (``KBIndex``)."""
_IDS = "ids.npy"
_DOC_FREQ = "doc_freq.json"
_MODEL_PARAMS = "params.index.json"

_WORDLIKE = re.compile(r"[0-9a-z\u00c0-\u024f\u0400-\u04ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
STOPWORDS = frozenset(
    """a an and are as at be by for from has have in is it its of on or that the this to was
    were what when where which who why how with do does did 的 了 是 在 和 与 及 或 也 就 都 而
    吗 呢 吧 啊 之 其 这 那 一个 什么 哪些 哪个 哪里 哪 谁 怎么 怎样 如何 为什么 为何 多少 多长
    多久 几 请问 请 有 被 把 对 我 你 他 她 它 们 我们 是否 可以 能 会 吗？""".split()
)


TOKENIZER_VERSION = 2
"""What :func:`tokenize` makes; a knowledge base records the version its stored tokens were made
with (catalog ``kbs.tokenizer``), and one made with an older version is re-tokenized when it is
opened (``kbchat.kb.retokenize``). Raise it with every change to what ``tokenize`` returns for a
passage, and say here what changed:

1. jieba words for CJK, words elsewhere; a word with accented letters cut up by jieba
   ("Doñana" -> "do", "ñ", "ana").
2. a word with accented letters is one token without its accents ("Doñana" -> "donana").
"""


def tokenize(text: str) -> list[str]:
    """Lower-cased search tokens: jieba words (with sub-words) for CJK, words elsewhere; a
    word with accented letters is one token, without its accents ("Doñana" and "Donana" are
    "donana": ``kbchat.text.cut_words``, ``without_accents``). This is version
    :data:`TOKENIZER_VERSION`; tokens stored by an earlier version are replaced when their
    knowledge base is next opened, without re-embedding."""
    from kbchat.text import cut_words, without_accents

    tokens = []
    for token in cut_words(without_accents(text.lower()), for_search=True):
        token = token.strip()
        if token and _WORDLIKE.search(token) and token not in STOPWORDS:
            tokens.append(token)
    return tokens


def chunk_tokens(text: str, headings: Sequence[str]) -> list[str]:
    """The BM25 tokens stored for a chunk: its headings' and its text's."""
    return tokenize(" ".join([*headings, text]))


def _idf(doc_freq: int, total: int) -> float:
    """Lucene's BM25 idf, the one bm25s scores with by default."""
    return math.log(1.0 + (total - doc_freq + 0.5) / (doc_freq + 0.5))


class LexicalIndex:
    """A BM25 index (bm25s) mapping rows back to chunk ids.

    Besides raw BM25, it gives a normalised score in [0, 1]: the raw score divided by the
    summed idf of every query token, found in the corpus or not. A passage that contains
    each query term about once, at average length, scores about 1; one that matches only
    the common half of the query scores far less, whatever the corpus size.
    """

    def __init__(self) -> None:
        self._model: Any = None
        self._ids: Ids = np.zeros(0, dtype=np.int64)
        self._row_of: dict[int, int] = {}
        self._doc_freq: dict[str, int] = {}

    @classmethod
    def build(cls, entries: Iterable[tuple[int, Sequence[str]]]) -> LexicalIndex:
        import bm25s

        index = cls()
        ids: list[int] = []
        corpus: list[list[str]] = []
        doc_freq: Counter[str] = Counter()
        for chunk_id, tokens in entries:
            ids.append(chunk_id)
            corpus.append(list(tokens) or ["\u2400"])
            doc_freq.update(set(tokens))
        index._doc_freq = dict(doc_freq)
        index._ids = np.asarray(ids, dtype=np.int64)
        index._row_of = {chunk_id: row for row, chunk_id in enumerate(ids)}
        if corpus:
            model = bm25s.BM25()
            model.index(corpus, show_progress=False)
            index._model = model
        return index

    def count(self) -> int:
        return len(self._ids)

    def query_weight(self, tokens: Sequence[str]) -> float:
        """What a passage matching every query token about once scores.

        A token the corpus lacks still counts (the passage cannot match that part of the
        question), weighted like the rarest known token of the query rather than with its
        own, near-infinite idf, so one typo or odd word does not zero every score.
        """
        total = len(self._ids)
        known = [_idf(self._doc_freq[t], total) for t in tokens if t in self._doc_freq]
        if not known:
            return 0.0
        unknown = sum(1 for t in tokens if t not in self._doc_freq)
        return sum(known) + unknown * max(known)

    def normalised_scores(self, tokens: Sequence[str]) -> np.ndarray | None:
        """Normalised BM25 of every row in [0, 1], or None if no query token is in the corpus."""
        if self._model is None:
            return None
        vocab = self._model.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return None
        raw = np.asarray(self._model.get_scores(known), dtype=np.float32)
        normalised: np.ndarray = np.clip(raw / self.query_weight(tokens), 0.0, 1.0)
        return normalised

    def scores_for(self, scores: np.ndarray, ids: Sequence[int]) -> list[float]:
        """Pick the scores of given chunk ids out of a full score array (0 if unknown)."""
        return [float(scores[self._row_of[i]]) if i in self._row_of else 0.0 for i in ids]

    def search(
        self, tokens: Sequence[str], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` chunk ids by normalised BM25 score (> 0 only), best first."""
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        normalised = self.normalised_scores(tokens)
        if normalised is None:
            return []
        return self.top(normalised, k, allowed)

    def top(
        self, scores: np.ndarray, k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best rows of a score array as (chunk id, score), optionally restricted."""
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            rows = [self._row_of[i] for i in np.asarray(allowed).tolist() if i in self._row_of]
            mask[rows] = True
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self._ids[row]), float(scores[row])) for row in top if scores[row] > 0]

    def save(self, directory: Path) -> None:
        """Write the index into ``directory``, replacing what was there as one step.

        It is written beside it first; readers of the old folder meanwhile see it whole or,
        for the instant of the swap, missing (then they rebuild from the catalog).
        """
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.with_name(f"{directory.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if self._model is not None:
            self._model.save(tmp, show_progress=False)
        np.save(tmp / _IDS, self._ids, allow_pickle=False)
        (tmp / _DOC_FREQ).write_text(json.dumps(self._doc_freq, ensure_ascii=False), "utf-8")
        old = directory.with_name(f"{directory.name}.old{os.getpid()}")
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        """Read an index :meth:`save` wrote (no pickle is read).

        Raises:
            OSError, ValueError: a file is missing or damaged.
        """
        import bm25s

        index = cls()
        index._ids = np.load(directory / _IDS, allow_pickle=False).astype(np.int64, copy=False)
        index._doc_freq = json.loads((directory / _DOC_FREQ).read_text("utf-8"))
        if (directory / _MODEL_PARAMS).exists():
            index._model = bm25s.BM25.load(directory, allow_pickle=False)
            if index._model.scores["num_docs"] != len(index._ids):
                raise ValueError(f"{directory}: the BM25 model and ids.npy disagree")
        index._row_of = {int(chunk_id): row for row, chunk_id in enumerate(index._ids)}
        return index
