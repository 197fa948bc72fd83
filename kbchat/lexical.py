"""BM25 over jieba tokens (Chinese) and words (English), persisted beside the vectors."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kbchat.store.base import Ids

_WORDLIKE = re.compile(r"[0-9a-z\u00c0-\u024f\u0400-\u04ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_STOPWORDS = frozenset(
    """a an and are as at be by for from has have in is it its of on or that the this to was
    were what when where which who why how with do does did 的 了 是 在 和 与 及 或 也 就 都 而
    吗 呢 吧 啊 之 其 这 那 一个 什么 哪些 哪个 怎么 如何 为什么 多少 有 被 把 对""".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased search tokens: jieba words (with sub-words) for CJK, words elsewhere."""
    import rjieba

    tokens = []
    for token in rjieba.cut_for_search(text.lower()):
        token = token.strip()
        if token and _WORDLIKE.search(token) and token not in _STOPWORDS:
            tokens.append(token)
    return tokens


class LexicalIndex:
    """A BM25 index (bm25s) mapping rows back to chunk ids."""

    def __init__(self) -> None:
        self._model: Any = None
        self._ids: Ids = np.zeros(0, dtype=np.int64)
        self._row_of: dict[int, int] = {}

    @classmethod
    def build(cls, entries: Iterable[tuple[int, Sequence[str]]]) -> LexicalIndex:
        import bm25s

        index = cls()
        ids: list[int] = []
        corpus: list[list[str]] = []
        for chunk_id, tokens in entries:
            ids.append(chunk_id)
            corpus.append(list(tokens) or ["\u2400"])
        index._ids = np.asarray(ids, dtype=np.int64)
        index._row_of = {chunk_id: row for row, chunk_id in enumerate(ids)}
        if corpus:
            model = bm25s.BM25()
            model.index(corpus, show_progress=False)
            index._model = model
        return index

    def count(self) -> int:
        return len(self._ids)

    def search(
        self, tokens: Sequence[str], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` chunk ids by raw BM25 score (> 0 only), best first."""
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        if self._model is None:
            return []
        vocab = self._model.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return []
        scores = np.asarray(self._model.get_scores(known), dtype=np.float32)
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            rows = [self._row_of[i] for i in np.asarray(allowed).tolist() if i in self._row_of]
            mask[rows] = True
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self._ids[row]), float(scores[row])) for row in top if scores[row] > 0]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with tmp.open("wb") as handle:
            pickle.dump({"model": self._model, "ids": self._ids}, handle, protocol=5)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LexicalIndex:
        with path.open("rb") as handle:
            state = pickle.load(handle)
        index = cls()
        index._model = state["model"]
        index._ids = state["ids"]
        index._row_of = {int(chunk_id): row for row, chunk_id in enumerate(index._ids)}
        return index
