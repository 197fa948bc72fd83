"""Chit-chat lines are embedded once per embedder, by the object that keeps them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kbchat.config import load_settings
from kbchat.embed.base import Vectors
from kbchat.embed.chit_chat import ChitChat
from kbchat.kb.library import Library


class Counting:
    """Every text embeds to the same unit vector; counts calls."""

    dim = 2
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        self.calls += 1
        return np.tile(np.array([[0.6, 0.8]], dtype=np.float32), (len(texts), 1))


def test_lines_are_embedded_once_per_embedder() -> None:
    chit_chat = ChitChat(["hello", "你好"])
    first, second = Counting(), Counting()
    query = np.array([1.0, 0.0], dtype=np.float32)
    assert chit_chat.similarity(first, query) == {
        "zh": 0.6000000238418579,
        "en": 0.6000000238418579,
    }
    chit_chat.similarity(first, query)
    chit_chat.similarity(second, query)
    assert (first.calls, second.calls) == (2, 2)  # one batch per language, then kept


def test_a_librarys_knowledge_bases_share_one() -> None:
    library = Library(load_settings(embedder={"backend": "hash"}))
    try:
        library.create("a")
        library.create("b")
        assert library.get("a").chit_chat is library.get("b").chit_chat
        other = Library(library.settings)
        assert other.get("a").chit_chat is not library.get("a").chit_chat
        other.close()
    finally:
        library.close()
