"""One file on the write path, before anything is written: type, hash, load, split.

``FilePreparer`` turns a found file into a ``PreparedFile`` (distinct chunks ready to embed)
or a ``FileOutcome`` saying why not (skipped, failed, unchanged). It touches no index and
no catalog row, so a file that fails here leaves the knowledge base as it was.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kbchat.errors import BadInput, KbchatError
from kbchat.ingest.discover import FoundFile, file_kind_problem, readable
from kbchat.ingest.loaders import LoadLimits, is_supported, load_file
from kbchat.ingest.splitter import iter_chunks
from kbchat.store.catalog import FileRecord
from kbchat.types import Chunk, Document, OutcomeStatus


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file in an add, sync, remove or rebuild.

    Attributes:
        chunks: the file's chunks after the operation (removed: the chunks dropped).
        new_chunks: chunks whose text the file did not have before (indexed files only).
        notes: what an indexed file's loader could not read as its author sees it.
        sha256, size: the bytes read (hex digest, bytes), when the file was read before it
            failed; "" and 0 otherwise, and for outcomes that do not record them.
    """

    name: str
    path: str
    status: OutcomeStatus
    error: str | None = None
    chunks: int = 0
    new_chunks: int = 0
    notes: tuple[str, ...] = ()
    sha256: str = ""
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        """The outcome as the API shows it (``FileOutcomeInfo``): without the bytes read,
        which only the catalog's file row keeps."""
        return {
            "name": self.name,
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "chunks": self.chunks,
            "new_chunks": self.new_chunks,
            "notes": list(self.notes),
        }


@dataclass(slots=True)
class PreparedFile:
    """A file loaded and split, ready to embed and commit."""

    found: FoundFile
    sha256: str
    size: int
    chunks: list[Chunk] = field(default_factory=list)
    notes: tuple[str, ...] = ()


def file_sha256(path: Path) -> str:
    """SHA-256 of a regular file's bytes.

    The file is opened without blocking and checked to be a regular file before a byte is
    read, so a named pipe or device swapped in for a file cannot hang the caller.

    Raises:
        BadInput: ``path`` is not a regular file.
        OSError: it cannot be opened or read.
    """
    digest = hashlib.sha256()
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if problem := file_kind_problem(os.fstat(descriptor).st_mode):
            raise BadInput(f"{readable(path.name)}: {problem}")
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class FilePreparer:
    """Prepares files with one knowledge base's limits and chunk sizes (thread-safe)."""

    def __init__(
        self,
        limits: LoadLimits,
        *,
        chunk_size: int,
        chunk_overlap: int,
        max_chunks_per_file: int,
    ) -> None:
        if max_chunks_per_file <= 0:
            raise ValueError(f"max_chunks_per_file must be > 0, got {max_chunks_per_file}")
        self.limits = limits
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_chunks_per_file = max_chunks_per_file

    def __call__(
        self, found: FoundFile, known: dict[str, FileRecord], force: bool
    ) -> FileOutcome | PreparedFile:
        name, path = found.name, found.location
        if found.problem is not None:
            return FileOutcome(name, path, "skipped", found.problem)
        if not is_supported(found.path):
            suffix = readable(found.path.suffix) or "(no extension)"
            error = f"{name}: unsupported file type {suffix}"
            return FileOutcome(name, path, "skipped", error, size=found.size_on_disk())
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

        def failed(error: str) -> FileOutcome:  # its row still shows the bytes that were read
            return FileOutcome(name, path, "failed", error, sha256=sha, size=size)

        try:
            documents = load_file(found.path, source=name, limits=self.limits)
            chunks = self.distinct_chunks(documents, name)
        except KbchatError as exc:
            return failed(str(exc))
        except Exception as exc:  # a parser's own bug on odd input must not sink the batch
            return failed(f"{name}: could not be read ({type(exc).__name__}: {exc})")
        if not chunks:
            return failed(f"{name}: no text found")
        notes = tuple(dict.fromkeys(note for doc in documents for note in doc.notes))
        return PreparedFile(found=found, sha256=sha, size=size, chunks=chunks, notes=notes)

    def distinct_chunks(self, documents: Sequence[Document], name: str) -> list[Chunk]:
        """The file's chunks with each text once, renumbered 0..n-1, within the chunk budget.

        Raises:
            BadInput: the file has more than ``max_chunks_per_file`` distinct chunks (it is
                not split further than one chunk past the budget).
        """
        seen: set[str] = set()
        chunks: list[Chunk] = []
        split = iter_chunks(documents, chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap)
        for chunk in split:
            if chunk.text in seen:
                continue
            if len(chunks) == self.max_chunks_per_file:
                raise BadInput(
                    f"{name}: has more than {self.max_chunks_per_file} distinct chunks, the "
                    "per-file limit (setting ingest.max_chunks_per_file); split the file or "
                    "raise the limit"
                )
            seen.add(chunk.text)
            chunks.append(replace(chunk, position=len(chunks)))
        return chunks


_LARGE_FILE_BYTES = 2**20
"""Files above this size are ingested after the smaller files of the same batch."""


def small_files_first(found: Sequence[FoundFile]) -> list[FoundFile]:
    """Keep the given order for small files and move large ones (smallest first) behind them."""

    def size(item: FoundFile) -> int:
        if item.problem is not None:
            return 0
        try:
            return item.path.stat().st_size  # stat opens nothing, even for a pipe
        except OSError:
            return 0

    sizes = {id(item): size(item) for item in found}
    return sorted(
        found,
        key=lambda f: (0, 0) if sizes[id(f)] <= _LARGE_FILE_BYTES else (1, sizes[id(f)]),
    )


def prefetch(
    items: Iterable[FoundFile],
    work: Callable[[FoundFile], FileOutcome | PreparedFile],
    ahead: int = 4,
    reached: Callable[[FoundFile], None] | None = None,
) -> Generator[tuple[FoundFile, FileOutcome | PreparedFile], None, None]:
    """Run ``work`` on the next few items in a thread while the caller embeds the current one.

    ``reached(item)`` is called as the caller's turn comes to an item, before waiting for
    its ``work``; an exception it raises ends the generator there (a cancelled write stops
    before starting another file)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbchat-load") as pool:
        queue: deque[tuple[FoundFile, Future[FileOutcome | PreparedFile]]] = deque()

        def next_result() -> tuple[FoundFile, FileOutcome | PreparedFile]:
            head, future = queue[0]
            if reached is not None:
                reached(head)  # if it raises, the item stays queued and is cancelled below
            queue.popleft()
            return head, future.result()

        try:
            for item in items:
                queue.append((item, pool.submit(work, item)))
                if len(queue) > ahead:
                    yield next_result()
            while queue:
                yield next_result()
        finally:  # the caller stopped early (a cancelled write): the files not begun are not read
            for _, future in queue:
                future.cancel()
