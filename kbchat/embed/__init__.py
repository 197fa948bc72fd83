"""Embedders: text -> L2-normalised float32 vectors."""

from kbchat.embed.base import Embedder, embed_texts

__all__ = ["Embedder", "embed_texts"]
