"""KnowledgeBase: add, update, remove, sync and rebuild files, atomically per file.

A file is loaded, split and embedded outside any transaction; its chunks then replace the
previous version in one catalog transaction, and the search indexes follow. Re-adding an
unchanged file costs one hash. One writer at a time per knowledge base (a file lock), so
two processes adding at once queue instead of corrupting each other.

A write can be cancelled (``IngestListener.cancelled``): it stops before its next file, its
next commit or after the embedding batch in hand; files committed before stay, the others are
reported as ``cancelled`` and left exactly as they were (a file never indexed loses its
pending row).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from numpy.typing import NDArray
from sqlalchemy.exc import SQLAlchemyError

from kbchat.embed.base import Embedder, embed_texts
from kbchat.embed.chit_chat import ChitChat
from kbchat.errors import BadInput
from kbchat.ingest.discover import FoundFile, discover, known_file, readable
from kbchat.ingest.loaders import LoadLimits, is_supported
from kbchat.kb.index import KBIndex, StoreOpener
from kbchat.kb.prepare import (
    FileOutcome,
    FilePreparer,
    PreparedFile,
    file_sha256,
    prefetch,
    small_files_first,
)
from kbchat.store.base import Ids
from kbchat.store.bm25 import (
    LEGACY_PICKLE,
    LEXICAL_DIR,
    TOKENIZER_VERSION,
    LexicalIndex,
    chunk_tokens,
)
from kbchat.store.catalog import Catalog, FileRecord, KBRecord, NewChunk, StoredChunk
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


class IngestListener:
    """Receives progress of a write operation; override what you need (all no-ops here)."""

    def started(self, total: int) -> None:
        """``total`` files are about to be processed."""

    def file_started(self, name: str) -> None:
        """The write has reached file ``name``: it is being read, or waits to be embedded
        with the files before it in one batch, until ``file_done``."""

    def file_done(self, outcome: FileOutcome) -> None:
        """One file finished (indexed, failed, skipped, unchanged or removed)."""

    def waiting(self, message: str) -> None:
        """Another process holds the knowledge base's write lock; this one waits."""

    def chunks_embedded(self, done: int, total: int) -> None:
        """``done`` of the ``total`` chunks of the files being committed are embedded."""

    def cancelled(self) -> str | None:
        """Why the write must stop now, or None to go on. Asked before starting each file,
        before each commit and after each embedding batch (keep it cheap: one small query at
        most)."""
        return None

    def hands_back(self) -> bool:
        """Whether the stop ``cancelled`` asked for hands the unfinished files back to be
        written later (their pending rows stay listed), rather than cancelling them."""
        return False


class _Stopped(Exception):
    """The listener asked the write to stop (raised before a commit, never during one)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_QUIET = IngestListener()
log = logging.getLogger(__name__)


def write_lock(directory: Path) -> FileLock:
    """The lock the one writer of the knowledge base in ``directory`` holds while it writes
    (any process on this machine; ``acquire(timeout=0)`` tells whether one is writing now)."""
    return FileLock(str(directory / "write.lock"))


def chunk_id(kb: str, file: str, position: int, text: str) -> int:
    """Stable 63-bit id from KB, file name, position and content."""
    digest = hashlib.blake2b(f"{kb}\0{file}\0{position}\0{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


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
        listener: IngestListener = _QUIET,
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
            return self._ingest(found, listener, force=force)

    def add_found(
        self,
        found: Sequence[FoundFile],
        *,
        listener: IngestListener = _QUIET,
        force: bool = False,
    ) -> list[FileOutcome]:
        """Add or update files already named: ``FoundFile.name`` is the name in the KB.

        For callers that know the names themselves (uploads keeping their folders, files
        left pending by an interrupted run); unchanged files are skipped by hash.
        """
        with self._writing(listener):
            listener.started(len(found))
            return self._ingest(found, listener, force=force)

    def sync(
        self,
        folder: Path,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        listener: IngestListener = _QUIET,
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
            outcomes = self._ingest(found, listener, force=False)
            stopped = next((o.error for o in outcomes if o.status == "cancelled"), None)
            if stopped is None:
                outcomes += self._remove(gone, listener)
            else:  # the files gone from the folder stay, as the cancelled ones do
                for name in gone:
                    outcome = FileOutcome(name, "", "cancelled", stopped)
                    outcomes.append(outcome)
                    listener.file_done(outcome)
        return outcomes

    def remove(
        self, names: Sequence[str], *, listener: IngestListener = _QUIET
    ) -> list[FileOutcome]:
        """Remove files (by their name in the KB) with all their chunks."""
        with self._writing(listener):
            listener.started(len(names))
            return self._remove(names, listener)

    def rebuild(self, *, listener: IngestListener = _QUIET) -> list[FileOutcome]:
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
            return self._ingest(present, listener, force=True) + outcomes

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

    def _remove(self, names: Sequence[str], listener: IngestListener) -> list[FileOutcome]:
        outcomes = []
        for name in names:
            record = self.catalog.get_file(self.record.id, name)
            if record is None:
                outcome = FileOutcome(
                    name, "", "failed", f"{name}: not in knowledge base {self.name!r}"
                )
            else:
                removed, generation = self.catalog.remove_file(self.record.id, name)
                self.index.apply(
                    np.asarray(removed, dtype=np.int64),
                    np.zeros(0, dtype=np.int64),
                    np.zeros((0, self.record.dim), dtype=np.float32),
                    generation,
                )
                outcome = FileOutcome(name, record.path, "removed", None, len(removed))
            outcomes.append(outcome)
            listener.file_done(outcome)
        return outcomes

    def _ingest(
        self, found: Sequence[FoundFile], listener: IngestListener, *, force: bool
    ) -> list[FileOutcome]:
        kb_id = self.record.id
        found = small_files_first(found)
        readable_files = [f for f in found if f.problem is None and is_supported(f.path)]
        self.catalog.mark_pending(
            kb_id, [(f.name, f.location, f.size_on_disk()) for f in readable_files]
        )
        known = {record.name: record for record in self.files()}
        outcomes: list[FileOutcome] = []

        def report(outcome: FileOutcome) -> None:
            outcomes.append(outcome)
            listener.file_done(outcome)

        def reached(found_file: FoundFile) -> None:  # no new file starts after a cancel
            _stop_if_cancelled(listener)
            listener.file_started(found_file.name)

        prepared = prefetch(found, lambda f: self.prepare(f, known, force), reached=reached)
        try:
            with closing(prepared):  # a cancel stops the loading of the files ahead at once
                self._commit_prepared(prepared, report, listener)
        except _Stopped as stop:
            finished = {o.name for o in outcomes}
            self._abandon(found, finished, stop.reason, report, keep=listener.hands_back())
        return outcomes

    def _commit_prepared(
        self,
        prepared: Iterator[tuple[FoundFile, FileOutcome | PreparedFile]],
        report: Callable[[FileOutcome], None],
        listener: IngestListener,
    ) -> None:
        """Record each file's outcome as it is read, committing files in embedding batches."""
        kb_id = self.record.id
        batch: list[PreparedFile] = []
        for found_file, result in prepared:
            if isinstance(result, FileOutcome):
                if result.error is not None:  # an OS error may quote an undecodable path
                    result = replace(result, error=readable(result.error))
                if result.status in ("failed", "skipped"):
                    self.catalog.set_file_status(
                        kb_id,
                        found_file.name,
                        path=found_file.location,
                        status=result.status,
                        error=result.error,
                        sha256=result.sha256,
                        size=result.size,
                    )
                report(result)
                continue
            if batch and sum(len(p.chunks) for p in [*batch, result]) > self.batch_size:
                # Files ready so far land now, not after a big file's embedding.
                self._commit(batch, report, listener)
                batch = []
            batch.append(result)
            if sum(len(p.chunks) for p in batch) >= self.batch_size:
                self._commit(batch, report, listener)
                batch = []
        self._commit(batch, report, listener)

    def _abandon(
        self,
        found: Sequence[FoundFile],
        finished: set[str],
        reason: str,
        report: Callable[[FileOutcome], None],
        *,
        keep: bool,
    ) -> None:
        """A stopped write: the files it did not finish are reported as cancelled. A cancel
        forgets the pending rows of those never indexed (the catalog is as before for each of
        them); a stop that hands them back (``keep``) leaves them pending, to be written later."""
        left = [f for f in found if f.name not in finished]
        if not keep:
            self.catalog.forget_pending(self.record.id, [f.name for f in left])
        for found_file in left:
            report(FileOutcome(found_file.name, found_file.location, "cancelled", reason))

    def _commit(
        self,
        batch: list[PreparedFile],
        report: Callable[[FileOutcome], None],
        listener: IngestListener,
    ) -> None:
        if not batch:
            return
        _stop_if_cancelled(listener)
        texts = [chunk.text for prepared in batch for chunk in prepared.chunks]
        done = 0

        def on_batch(n: int) -> None:
            nonlocal done
            done += n
            listener.chunks_embedded(done, len(texts))
            _stop_if_cancelled(listener)

        vectors = embed_texts(self.embedder, texts, batch_size=self.batch_size, on_batch=on_batch)
        start = 0
        for prepared in batch:
            found, count = prepared.found, len(prepared.chunks)
            block = vectors[start : start + count]
            start += count
            new = [
                NewChunk(
                    id=chunk_id(self.name, found.name, c.position, c.text),
                    chunk=c,
                    tokens=chunk_tokens(c.text, c.headings),
                    vector=vector,
                )
                for c, vector in zip(prepared.chunks, block, strict=True)
            ]
            before = self._chunk_texts(found.name)
            removed, generation = self.catalog.replace_file_chunks(
                self.record.id,
                found.name,
                path=found.location,
                sha256=prepared.sha256,
                size=prepared.size,
                new_chunks=new,
            )
            ids = np.asarray([c.id for c in new], dtype=np.int64)
            self.index.apply(np.asarray(removed, dtype=np.int64), ids, block, generation)
            fresh = sum(c.text not in before for c in prepared.chunks)
            report(
                FileOutcome(
                    found.name, found.location, "indexed", None, count, fresh, prepared.notes
                )
            )

    def _chunk_texts(self, name: str) -> set[str]:
        """The texts of the chunks the catalog holds now for file ``name``."""
        ids = self.catalog.chunk_ids_for_files(self.record.id, [name]).tolist()
        return {row.chunk.text for row in self.catalog.get_chunks(ids).values()} if ids else set()


def _stop_if_cancelled(listener: IngestListener) -> None:
    reason = listener.cancelled()
    if reason is not None:
        raise _Stopped(reason)


def remove_kb_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
