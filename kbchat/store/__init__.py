"""Vector stores: id -> vector, searched by cosine similarity in [0, 1]."""

from kbchat.store.base import VectorStore

__all__ = ["VectorStore"]
