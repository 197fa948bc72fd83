"""KnowledgeBase: add, update, remove, sync and rebuild files, atomically per file.

A file is loaded, split and embedded outside any transaction; its chunks then replace the
previous version in one catalog transaction, and the search indexes follow. Re-adding an
unchanged file costs one hash. One writer at a time per knowledge base (a file lock), so
two processes adding at once queue instead of corrupting each other.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from filelock import FileLock, Timeout

from kbchat.catalog import Catalog, FileRecord, KBRecord, NewChunk, StoredChunk
from kbchat.embed.base import Embedder, embed_texts
from kbchat.errors import BadInput, KbchatError
from kbchat.index import KBIndex
from kbchat.ingest.discover import FoundFile, discover
from kbchat.ingest.loaders import LoadLimits, is_supported, load_file
from kbchat.ingest.splitter import split_documents
from kbchat.lexical import tokenize
from kbchat.types import Chunk, Hit

OutcomeStatus = Literal["indexed", "failed", "skipped", "unchanged", "removed", "pending"]


class IngestListener:
    """Receives progress of a write operation; override what you need (all no-ops here)."""

    def started(self, total: int) -> None:
        """``total`` files are about to be processed."""

    def file_done(self, outcome: FileOutcome) -> None:
        """One file finished (indexed, failed, skipped, unchanged or removed)."""

    def waiting(self, message: str) -> None:
        """Another process holds the knowledge base's write lock; this one waits."""


_QUIET = IngestListener()


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file in an add, sync, remove or rebuild."""

    name: str
    path: str
    status: OutcomeStatus
    error: str | None = None
    chunks: int = 0


@dataclass(slots=True)
class _Prepared:
    found: FoundFile
    sha256: str
    size: int
    chunks: list[Chunk] = field(default_factory=list)


def chunk_id(kb: str, file: str, position: int, text: str) -> int:
    """Stable 63-bit id from KB, file name, position and content."""
    digest = hashlib.blake2b(f"{kb}\0{file}\0{position}\0{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class KnowledgeBase:
    """One knowledge base: its catalog rows, its indexes and its embedder."""

    def __init__(
        self,
        record: KBRecord,
        catalog: Catalog,
        embedder: Embedder,
        directory: Path,
        *,
        limits: LoadLimits,
        batch_size: int = 32,
    ) -> None:
        self.record = record
        self.catalog = catalog
        self.embedder = embedder
        self.directory = directory
        self.limits = limits
        self.batch_size = batch_size
        directory.mkdir(parents=True, exist_ok=True)
        self.index = KBIndex(catalog, record.id, directory, record.dim)
        self._write_lock = FileLock(str(directory / "write.lock"))

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
        scored = self.index.fresh_vectors().search(vector, top_k)
        return self.hits(scored)

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
    ) -> list[FileOutcome]:
        """Add or update the files under ``paths``; unchanged files are skipped by hash."""
        found = list(discover(paths, include=include, exclude=exclude))
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
    ) -> list[FileOutcome]:
        """Make the KB's files from ``folder`` match it: add new, re-index changed, drop missing."""
        if not folder.is_dir():
            raise BadInput(f"{folder}: not a folder")
        root = folder.resolve()
        found = list(discover([root], include=include, exclude=exclude))
        with self._writing(listener):
            present = {f.name for f in found}
            gone = [
                record.name
                for record in self.files()
                if record.name not in present and Path(record.path).is_relative_to(root)
            ]
            listener.started(len(found) + len(gone))
            outcomes = self._ingest(found, listener, force=False)
            outcomes += self._remove(gone, listener)
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

        Files whose source has gone keep their indexed chunks and are reported as failed.
        """
        with self._writing(listener):
            for stale in ("vectors.faiss", "bm25.pkl", "state.json"):
                (self.directory / stale).unlink(missing_ok=True)
            self.index = KBIndex(self.catalog, self.record.id, self.directory, self.record.dim)
            records = self.files()
            present = [
                FoundFile(name=r.name, path=Path(r.path)) for r in records if Path(r.path).is_file()
            ]
            listener.started(len(records))
            outcomes = self._ingest(present, listener, force=True)
            for record in records:
                if not Path(record.path).is_file():
                    outcome = FileOutcome(
                        record.name,
                        record.path,
                        "failed",
                        f"{record.path}: source file no longer exists",
                        record.chunks,
                    )
                    outcomes.append(outcome)
                    listener.file_done(outcome)
            return outcomes

    # -- internals -------------------------------------------------------------------

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
        self.catalog.mark_pending(
            kb_id, [(f.name, str(f.path)) for f in found if is_supported(f.path)]
        )
        known = {record.name: record for record in self.files()}
        outcomes: list[FileOutcome] = []

        def report(outcome: FileOutcome) -> None:
            outcomes.append(outcome)
            listener.file_done(outcome)

        batch: list[_Prepared] = []
        for found_file, result in _prefetch(found, lambda f: self._prepare(f, known, force)):
            if isinstance(result, FileOutcome):
                if result.status in ("failed", "skipped"):
                    self.catalog.set_file_status(
                        kb_id,
                        found_file.name,
                        path=str(found_file.path),
                        status=result.status,
                        error=result.error,
                    )
                report(result)
                continue
            batch.append(result)
            if sum(len(p.chunks) for p in batch) >= self.batch_size:
                self._commit(batch, report)
                batch = []
        self._commit(batch, report)
        return outcomes

    def _prepare(
        self, found: FoundFile, known: dict[str, FileRecord], force: bool
    ) -> FileOutcome | _Prepared:
        name, path = found.name, str(found.path)
        if not is_supported(found.path):
            return FileOutcome(
                name,
                path,
                "skipped",
                f"{name}: unsupported file type {found.path.suffix or '(no extension)'}",
            )
        try:
            size = found.path.stat().st_size
            if size > self.limits.max_file_bytes:
                raise BadInput(
                    f"{name}: {size / 2**20:.1f} MB is over the "
                    f"{self.limits.max_file_bytes / 2**20:.0f} MB file size limit"
                )
            sha = file_sha256(found.path)
        except OSError as exc:
            return FileOutcome(name, path, "failed", f"{name}: cannot read: {exc.strerror or exc}")
        except BadInput as exc:
            return FileOutcome(name, path, "failed", str(exc))
        previous = known.get(name)
        if not force and previous and previous.status == "indexed" and previous.sha256 == sha:
            return FileOutcome(name, path, "unchanged", None, previous.chunks)
        try:
            documents = load_file(found.path, source=name, limits=self.limits)
        except KbchatError as exc:
            return FileOutcome(name, path, "failed", str(exc))
        except Exception as exc:  # a parser's own bug on odd input must not sink the batch
            return FileOutcome(
                name, path, "failed", f"{name}: could not be read ({type(exc).__name__}: {exc})"
            )
        chunks = split_documents(
            documents, chunk_size=self.record.chunk_size, chunk_overlap=self.record.chunk_overlap
        )
        if not chunks:
            return FileOutcome(name, path, "failed", f"{name}: no text found")
        return _Prepared(found=found, sha256=sha, size=size, chunks=chunks)

    def _commit(self, batch: list[_Prepared], report: Callable[[FileOutcome], None]) -> None:
        if not batch:
            return
        texts = [chunk.text for prepared in batch for chunk in prepared.chunks]
        vectors = embed_texts(self.embedder, texts, batch_size=self.batch_size)
        start = 0
        for prepared in batch:
            found, count = prepared.found, len(prepared.chunks)
            block = vectors[start : start + count]
            start += count
            new = [
                NewChunk(
                    id=chunk_id(self.name, found.name, c.position, c.text),
                    chunk=c,
                    tokens=tokenize(_lexical_text(c)),
                    vector=vector,
                )
                for c, vector in zip(prepared.chunks, block, strict=True)
            ]
            removed, generation = self.catalog.replace_file_chunks(
                self.record.id,
                found.name,
                path=str(found.path),
                sha256=prepared.sha256,
                size=prepared.size,
                new_chunks=new,
            )
            ids = np.asarray([c.id for c in new], dtype=np.int64)
            self.index.apply(np.asarray(removed, dtype=np.int64), ids, block, generation)
            report(FileOutcome(found.name, str(found.path), "indexed", None, count))


def _lexical_text(chunk: Chunk) -> str:
    return " ".join([*chunk.headings, chunk.text])


def _prefetch(
    items: Iterable[FoundFile], work: Callable[[FoundFile], FileOutcome | _Prepared], ahead: int = 4
) -> Iterator[tuple[FoundFile, FileOutcome | _Prepared]]:
    """Run ``work`` on the next few items in a thread while the caller embeds the current one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbchat-load") as pool:
        queue: deque[tuple[FoundFile, Future[FileOutcome | _Prepared]]] = deque()
        for item in items:
            queue.append((item, pool.submit(work, item)))
            if len(queue) > ahead:
                head, future = queue.popleft()
                yield head, future.result()
        while queue:
            head, future = queue.popleft()
            yield head, future.result()


def remove_kb_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
