"""Helpers shared by tests that work on a catalog directly."""

from __future__ import annotations

from kbchat.store.bm25 import TOKENIZER_VERSION
from kbchat.store.catalog import Catalog


def create_hash_kb(
    catalog: Catalog, name: str = "kb", *, tokenizer: int = TOKENIZER_VERSION
) -> int:
    """Record a knowledge base of the 8-dimension hash embedder in ``catalog``; its id."""
    catalog.create_kb(
        name,
        embedder="hash-8",
        embedder_spec={"backend": "hash"},
        dim=8,
        store="faiss",
        chunk_size=300,
        chunk_overlap=30,
        tokenizer=tokenizer,
    )
    return catalog.get_kb(name).id
