"""KnowledgeBase: add, update, remove, sync and rebuild files, atomically per file.

A file is loaded, split and embedded outside any transaction; its chunks then replace the
previous version in one catalog transaction, and the search indexes follow. Re-adding an
unchanged file costs one hash. One writer at a time per knowledge base (a file lock), so
two processes adding at once queue instead of corrupting each other.

A write can be cancelled (``IngestListener.cancelled``): it stops before its next file, its
next commit or after the embedding batch in hand; files committed before stay, the others are
reported as ``cancelled`` and left exactly as they were (a file never indexed loses its
pending row). The file loop itself is ``kbchat.kb.file_writer.FileWriter``; the listener is
``kbchat.kb.ingest_listener.IngestListener`` (both importable from here).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from numpy.typing import NDArray
from sqlalchemy.exc import SQLAlchemyError

from kbchat.embed.base import Embedder
from kbchat.embed.chit_chat import ChitChat
from kbchat.errors import BadInput
from kbchat.ingest.discover import FoundFile, discover, known_file, readable
from kbchat.ingest.loaders import LoadLimits
from kbchat.kb.file_writer import FileWriter, chunk_id
from kbchat.kb.index import KBIndex, StoreOpener
from kbchat.kb.ingest_listener import QUIET, IngestListener
from kbchat.kb.prepare import FileOutcome, FilePreparer, file_sha256
from kbchat.store.base import Ids
from kbchat.store.bm25 import LEGACY_PICKLE, LEXICAL_DIR, TOKENIZER_VERSION, LexicalIndex
from kbchat.store.catalog import Catalog, FileRecord, KBRecord, StoredChunk
from kbchat.store.retokenize import retokenize
from kbchat.types import Hit, OutcomeStatus

__all__ = [
    "FileOutcome",
    "IngestListener",
    "KnowledgeBase",
    "OutcomeStatus",
    "chunk_id",
    "file_sha256",
    "remove_kb_directory",
    "write_lock",
]


log = logging.getLogger(__name__)


def write_lock(directory: Path) -> FileLock:
    """The lock the one writer of the knowledge base in ``directory`` holds while it writes
    (any process on this machine; ``acquire(timeout=0)`` tells whether one is writing now)."""
    return FileLock(str(directory / "write.lock"))


class KnowledgeBase:
    """One knowledge base: its catalog rows, its indexes and its embedder.

    Retrieval reads it through the methods under "reading" (see
    ``kbchat.retrieve.source.SearchableKB``), never through the catalog or indexes.
    """

    def __init__(
        self,
        record: KBRecord,
        catalog: Catalog,
        embedder: Embedder,
        directory: Path,
        *,
        open_store: StoreOpener,
        limits: LoadLimits,
        max_chunks_per_file: int,
        batch_size: int = 32,
        chit_chat: ChitChat | None = None,
    ) -> None:
        self.record = record
        self.catalog = catalog
        self.embedder = embedder
        self.chit_chat = chit_chat if chit_chat is not None else ChitChat()
        """The embedded chit-chat search measures relevance from (shared by a library's KBs)."""
        self.directory = directory
        self.limits = limits
        self.prepare = FilePreparer(
            limits,
            chunk_size=record.chunk_size,
            chunk_overlap=record.chunk_overlap,
            max_chunks_per_file=max_chunks_per_file,
        )
        self.batch_size = batch_size
        directory.mkdir(parents=True, exist_ok=True)
        self._open_store = open_store
        self.index = KBIndex(catalog, record.id, directory, open_store)
        self._write_lock = write_lock(directory)
        if record.tokenizer < TOKENIZER_VERSION:
            self._retokenize()

    @property
    def name(self) -> str:
        return self.record.name

    # -- reading ---------------------------------------------------------------------

    def files(self) -> list[FileRecord]:
        return self.catalog.list_files(self.record.id)

    def stats(self) -> dict[str, int]:
        return self.catalog.kb_stats(self.record.id)

    def search(self, query: str, *, top_k: int = 5) -> list[Hit]:
        """Dense search: the ``top_k`` chunks most similar to ``query``."""
        if not query.strip():
            raise BadInput("the query is empty")
        if top_k <= 0:
            raise BadInput(f"top_k must be > 0, got {top_k}")
        vector = self.embedder.embed_batch([query], is_query=True)[0]
        return self.hits(self.nearest(vector, top_k))

    def nearest(
        self, vector: NDArray[np.float32], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` chunk ids nearest to a ``(dim,)`` store query, with cosine scores."""
        return self.index.fresh_vectors().search(vector, k, allowed)

    def stored_vectors(self, ids: Sequence[int]) -> tuple[Ids, NDArray[np.float32]]:
        """The vectors the store holds for ``ids``: (found ids, (len(found), dim) float32)."""
        return self.index.fresh_vectors().get(np.asarray(ids, dtype=np.int64))

    def lexical(self) -> LexicalIndex:
        """The BM25 index, in step with the catalog."""
        return self.index.fresh_lexical()

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """The stored chunks of those ``ids`` that exist, by id."""
        return self.catalog.get_chunks(ids)

    def chunk_ids_for_files(
        self, names: Sequence[str], *, pages: tuple[int, int] | None = None
    ) -> Ids:
        """The ids of the chunks of files ``names``, optionally on pages FIRST..LAST."""
        return self.catalog.chunk_ids_for_files(self.record.id, names, pages=pages)

    def hits(self, scored: Sequence[tuple[int, float]]) -> list[Hit]:
        """Turn (chunk id, score) pairs into Hits, in the given order."""
        stored = self.catalog.get_chunks([chunk_id for chunk_id, _ in scored])
        return [self.to_hit(stored[i], score) for i, score in scored if i in stored]

    def to_hit(self, row: StoredChunk, score: float) -> Hit:
        """A search hit for a stored chunk of this knowledge base."""
        chunk = row.chunk
        return Hit(
            kb=self.name,
            file=row.file,
            text=chunk.text,
            score=score,
            chunk_id=row.id,
            page=chunk.page,
            sheet=chunk.sheet,
            slide=chunk.slide,
            headings=chunk.headings,
        )

    # -- writing ---------------------------------------------------------------------

    def add(
        self,
        paths: Sequence[Path],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        listener: IngestListener = QUIET,
        force: bool = False,
        follow_symlinks: bool = False,
    ) -> list[FileOutcome]:
        """Add or update the files under ``paths``; unchanged files are skipped by hash.

        Symbolic links that lead out of a folder being added are skipped unless
        ``follow_symlinks`` (see ``discover``).
        """
        found = list(
            discover(paths, include=include, exclude=exclude, follow_symlinks=follow_symlinks)
        )
        with self._writing(listener):
            listener.started(len(found))
            return self._writer().ingest(found, listener, force=force)

    def add_found(
        self,
        found: Sequence[FoundFile],
        *,
        listener: IngestListener = QUIET,
        force: bool = False,
    ) -> list[FileOutcome]:
        """Add or update files already named: ``FoundFile.name`` is the name in the KB.

        For callers that know the names themselves (uploads keeping their folders, files
        left pending by an interrupted run); unchanged files are skipped by hash.
        """
        with self._writing(listener):
            listener.started(len(found))
            return self._writer().ingest(found, listener, force=force)

    def sync(
        self,
        folder: Path,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        listener: IngestListener = QUIET,
        follow_symlinks: bool = False,
    ) -> list[FileOutcome]:
        """Make the KB's files from ``folder`` match it: add new, re-index changed, drop missing.

        Symbolic links that lead out of ``folder`` are skipped unless ``follow_symlinks``;
        a server syncing folders on a caller's behalf must leave it False.
        """
        if not folder.is_dir():
            raise BadInput(f"{readable(str(folder))}: not a folder")
        root = folder.resolve()
        found = list(
            discover([root], include=include, exclude=exclude, follow_symlinks=follow_symlinks)
        )
        with self._writing(listener):
            present = {f.name for f in found}
            shown_root = readable(str(root))
            gone = [
                record.name
                for record in self.files()
                if record.name not in present and Path(record.path).is_relative_to(shown_root)
            ]
            listener.started(len(found) + len(gone))
            outcomes = self._writer().ingest(found, listener, force=False)
            stopped = next((o.error for o in outcomes if o.status == "cancelled"), None)
            if stopped is None:
                outcomes += self._writer().remove(gone, listener)
            else:  # the files gone from the folder stay, as the cancelled ones do
                for name in gone:
                    outcome = FileOutcome(name, "", "cancelled", stopped)
                    outcomes.append(outcome)
                    listener.file_done(outcome)
        return outcomes

    def remove(
        self, names: Sequence[str], *, listener: IngestListener = QUIET
    ) -> list[FileOutcome]:
        """Remove files (by their name in the KB) with all their chunks."""
        with self._writing(listener):
            listener.started(len(names))
            return self._writer().remove(names, listener)

    def rebuild(self, *, listener: IngestListener = QUIET) -> list[FileOutcome]:
        """Rebuild the indexes from the catalog, then re-read and re-embed every file.

        Files whose source has gone keep their indexed chunks and are reported as failed;
        files skipped when they were added (links out of their folder, pipes, unsupported
        types) stay skipped and are not opened.
        """
        with self._writing(listener):
            self.index.drop_vectors()
            for stale in (LEGACY_PICKLE, "state.json"):
                (self.directory / stale).unlink(missing_ok=True)
            shutil.rmtree(self.directory / LEXICAL_DIR, ignore_errors=True)
            self.index = KBIndex(self.catalog, self.record.id, self.directory, self._open_store)
            records = self.files()
            listener.started(len(records))
            present: list[FoundFile] = []
            outcomes: list[FileOutcome] = []
            for record in records:
                found = known_file(record.name, record.path)
                if record.status == "skipped":
                    outcome = FileOutcome(record.name, record.path, "skipped", record.error)
                elif found is None:
                    outcome = FileOutcome(
                        record.name,
                        record.path,
                        "failed",
                        f"{record.path}: source file no longer exists",
                        record.chunks,
                    )
                else:
                    present.append(found)
                    continue
                outcomes.append(outcome)
                listener.file_done(outcome)
            return self._writer().ingest(present, listener, force=True) + outcomes

    # -- internals -------------------------------------------------------------------

    def _retokenize(self) -> None:
        """Bring the chunks' stored BM25 tokens up to the current tokenizer (``retokenize``).

        Whoever opens the knowledge base first does it, a reader (``ask``, ``serve``) as well
        as a writer, with or without the write lock: the catalog's transaction and its
        version condition make it safe between processes and machines (that lock is a file
        on one machine), and every process, then, searches the same tokens. Tokenizing in
        memory instead would leave the catalog stale and redo the work on every open. One
        process of this machine tokenizes at a time; the others wait and find it done. If it
        fails the knowledge base keeps its old tokens (accented words match less) and the
        next open tries again.
        """
        try:
            with FileLock(str(self.directory / "retokenize.lock")):
                done = retokenize(self.catalog, self.record.id)
        except (SQLAlchemyError, OSError) as exc:
            log.warning(
                "knowledge base %r: its BM25 tokens could not be brought up to the current "
                "tokenizer (%s); they stay as they were until it is opened again",
                self.name,
                exc,
            )
            return
        if done is None:
            return
        self.record = replace(self.record, tokenizer=done.version, generation=done.generation)
        if not done.changed:
            return
        self.index.tokens_rewritten(done.old_generation, done.generation)
        try:
            self._write_lock.acquire(timeout=0)
        except Timeout:
            return  # the writer holding it saves the rebuilt index when it persists
        try:
            self.index.save_lexical()
        finally:
            self._write_lock.release()

    @contextmanager
    def _writing(self, listener: IngestListener) -> Iterator[None]:
        try:
            self._write_lock.acquire(timeout=0)
        except Timeout:
            listener.waiting(f"waiting for another process writing to knowledge base {self.name!r}")
            self._write_lock.acquire()
        try:
            yield
            self.index.persist()
        finally:
            self._write_lock.release()

    def _writer(self) -> FileWriter:
        """The file loop of a write, over the indexes as they are now."""
        return FileWriter(
            self.record,
            self.catalog,
            self.index,
            self.embedder,
            self.prepare,
            batch_size=self.batch_size,
        )


def remove_kb_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
