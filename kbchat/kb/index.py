"""The search indexes of one knowledge base (vectors + BM25), kept in step with the catalog.

Both indexes are caches of what the catalog holds. Each remembers the catalog generation it
reflects (``state.json``); when the catalog has moved on (another process wrote, or a crash
came between a catalog commit and an index save) the index is reconciled from the catalog.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kbchat.store.base import Ids, VectorStore
from kbchat.store.bm25 import LEGACY_PICKLE, LEXICAL_DIR, LexicalIndex
from kbchat.store.catalog import Catalog

logger = logging.getLogger(__name__)

StoreOpener = Callable[[], VectorStore]
"""Opens the knowledge base's vector store (its backend, folder, collection and dimension)."""


class KBIndex:
    """Vector store and BM25 index of one knowledge base, reconciled lazily."""

    def __init__(
        self, catalog: Catalog, kb_id: int, directory: Path, open_store: StoreOpener
    ) -> None:
        self.catalog = catalog
        self.kb_id = kb_id
        self.directory = directory
        self._lock = threading.RLock()
        self._state_path = directory / "state.json"
        state = self._read_state()
        self.vectors: VectorStore = open_store()
        # An empty store reflects nothing, whatever the state file says (a lost or damaged
        # file, a dropped collection): the first read refills it from the catalog.
        vectors_ok = self.vectors.count() > 0
        self._vector_generation = int(state.get("vectors", -1)) if vectors_ok else -1
        self._lexical: LexicalIndex | None = None
        self._lexical_path = directory / LEXICAL_DIR
        lexical_ok = self._lexical_path.exists()
        self._lexical_generation = int(state.get("lexical", -1)) if lexical_ok else -1
        if (directory / LEGACY_PICKLE).exists():
            self._migrate_pickled_lexical()

    # -- writes from this process --------------------------------------------------------

    def apply(
        self, removed: Ids, added: Ids, vectors: NDArray[np.float32], generation: int
    ) -> None:
        """Mirror one committed catalog change into the vector store."""
        with self._lock:
            in_step = self._vector_generation == generation - 1
            self.vectors.delete(removed)
            self.vectors.add(added, vectors)
            if in_step:
                self._vector_generation = generation

    def persist(self) -> None:
        """Reconcile with the catalog, then save both indexes and the state file."""
        with self._lock:
            self.fresh_vectors()
            self.vectors.persist()
            lexical = self.fresh_lexical()
            lexical.save(self._lexical_path)
            self._write_state()

    # -- reads -------------------------------------------------------------------------

    def fresh_vectors(self) -> VectorStore:
        """The vector store, reconciled with the catalog if it is behind."""
        with self._lock:
            generation = self.catalog.generation(self.kb_id)
            if generation != self._vector_generation:
                self._reconcile_vectors()
                self._vector_generation = generation
            return self.vectors

    def fresh_lexical(self) -> LexicalIndex:
        """The BM25 index, loaded from disk or rebuilt from the catalog if it is behind."""
        with self._lock:
            generation = self.catalog.generation(self.kb_id)
            if self._lexical is not None and self._lexical_generation == generation:
                return self._lexical
            path = self._lexical_path
            if self._lexical is None and self._lexical_generation == generation and path.exists():
                try:
                    self._lexical = LexicalIndex.load(path)
                    return self._lexical
                except Exception as exc:  # a damaged cache file is rebuilt, never fatal
                    logger.warning("cannot load %s (%s); rebuilding it from the catalog", path, exc)
            self._lexical = LexicalIndex.build(self.catalog.iter_tokens(self.kb_id))
            self._lexical_generation = generation
            return self._lexical

    def tokens_rewritten(self, old_generation: int, generation: int) -> None:
        """The catalog's BM25 tokens were rewritten, moving its generation from
        ``old_generation`` to ``generation`` and changing nothing else: vectors in step before
        stay in step, and the BM25 index is rebuilt from the catalog at the next read (the
        one saved before is never loaded again: its generation is behind)."""
        with self._lock:
            if self._vector_generation == old_generation:
                self._vector_generation = generation
            self._lexical = None
            self._lexical_generation = -1

    def save_lexical(self) -> None:
        """Save the BM25 index (rebuilt from the catalog if behind) and the state file.

        Without the knowledge base's write lock (which ``persist`` runs under) it races with
        a writer of this machine saving at the same moment.
        """
        with self._lock:
            self.fresh_lexical().save(self._lexical_path)
            self._write_state()

    def drop_vectors(self) -> None:
        """Remove the vector store's content (files or collection); the next read refills it."""
        with self._lock:
            self.vectors.drop()
            self._vector_generation = -1

    # -- internals ---------------------------------------------------------------------

    def _migrate_pickled_lexical(self) -> None:
        """Replace a BM25 index pickled by an earlier kbchat with one rebuilt from the catalog.

        The pickle is deleted unread: loading it would run whatever code it holds.
        """
        legacy = self.directory / LEGACY_PICKLE
        with self._lock:
            self._lexical = None
            self._lexical_generation = -1
            self.save_lexical()
            legacy.unlink(missing_ok=True)
        logger.info("%s: BM25 index rebuilt in %s (the pickle is removed)", legacy, LEXICAL_DIR)

    def _reconcile_vectors(self) -> None:
        truth = self.catalog.chunk_ids(self.kb_id)
        present = self.vectors.ids()
        extra = np.setdiff1d(present, truth, assume_unique=True)
        missing = np.setdiff1d(truth, present, assume_unique=True)
        self.vectors.delete(extra)
        for ids, vectors in self.catalog.iter_vectors(self.kb_id, missing.tolist()):
            self.vectors.add(ids, vectors)

    def _read_state(self) -> dict[str, int]:
        try:
            state = json.loads(self._state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return state if isinstance(state, dict) else {}

    def _write_state(self) -> None:
        tmp = self._state_path.with_name(f"state.json.tmp{os.getpid()}")
        tmp.write_text(
            json.dumps({"vectors": self._vector_generation, "lexical": self._lexical_generation})
        )
        os.replace(tmp, self._state_path)
