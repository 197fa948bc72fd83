"""Chit-chat embedded once per embedder: how similar a query is to these lines is its
"nothing to find" level (``kbchat.retrieve.search.relevance``).

The vectors are kept by a ``ChitChat`` object, not by the module: a library makes one and
its knowledge bases share it, so they live as long as the library (built at the edge).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from weakref import WeakKeyDictionary

import numpy as np

from kbchat.embed.base import Embedder
from kbchat.text import detect_language

BACKGROUND = (
    "你好",
    "您好",
    "谢谢",
    "再见",
    "早上好",
    "你是谁？",
    "今天天气怎么样？",
    "讲个笑话",
    "帮我写一首诗",
    "你能做什么？",
    "在吗",
    "哈哈",
    "好的",
    "没问题",
    "我想问一个问题",
    "hello",
    "hi there",
    "thanks",
    "goodbye",
    "good morning",
    "who are you?",
    "how are you?",
    "what's the weather like today?",
    "tell me a joke",
    "write me a poem",
    "what can you do?",
    "ok",
    "yes",
    "I have a question",
    "help",
)
"""Chit-chat in both languages."""


class ChitChat:
    """The chit-chat lines' vectors per embedder, embedded on first use and kept."""

    def __init__(self, lines: Sequence[str] = BACKGROUND) -> None:
        self._by_language: dict[str, list[str]] = {"zh": [], "en": []}
        for line in lines:
            self._by_language[detect_language(line)].append(line)
        self._vectors: WeakKeyDictionary[Embedder, dict[str, np.ndarray]] = WeakKeyDictionary()
        self._lock = threading.Lock()

    def similarity(self, embedder: Embedder, query_vector: np.ndarray) -> dict[str, float]:
        """The query's highest similarity to chit-chat in each language ('zh', 'en').

        It is what an irrelevant passage in that language scores: cross-lingual similarities
        run lower than monolingual ones, so each passage is measured against its own language.
        """
        with self._lock:
            vectors = self._vectors.get(embedder)
            if vectors is None:
                vectors = {
                    lang: embedder.embed_batch(lines, is_query=True)
                    for lang, lines in self._by_language.items()
                }
                self._vectors[embedder] = vectors
        return {lang: float(np.max(m @ query_vector)) for lang, m in vectors.items()}
