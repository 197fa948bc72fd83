"""A write's file loop over one knowledge base: each file is prepared (read, split) outside
any transaction, embedded in batches, and its chunks then replace the previous version in one
catalog transaction that the search indexes follow; a stop asked for by the listener leaves the
files not yet committed as they were."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import replace

import numpy as np

from kbchat.embed.base import Embedder, embed_texts
from kbchat.ingest.discover import FoundFile, readable
from kbchat.ingest.loaders import is_supported
from kbchat.kb.index import KBIndex
from kbchat.kb.ingest_listener import IngestListener, WriteStopped, stop_if_cancelled
from kbchat.kb.prepare import FileOutcome, FilePreparer, PreparedFile, prefetch, small_files_first
from kbchat.store.bm25 import chunk_tokens
from kbchat.store.catalog import Catalog, KBRecord, NewChunk


def chunk_id(kb: str, file: str, position: int, text: str) -> int:
    """Stable 63-bit id from KB, file name, position and content."""
    digest = hashlib.blake2b(f"{kb}\0{file}\0{position}\0{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


class FileWriter:
    """Adds, replaces and removes files of one knowledge base (its catalog rows and indexes);
    the caller holds the knowledge base's write lock.

    Args:
        record: The knowledge base's catalog record (id, name, vector dimension).
        catalog: The catalog holding its rows.
        index: Its vector and BM25 indexes, which follow the catalog.
        embedder: Embeds the chunks of the files written.
        prepare: Reads and splits a file.
        batch_size: Chunks embedded, and files committed, together.
    """

    def __init__(
        self,
        record: KBRecord,
        catalog: Catalog,
        index: KBIndex,
        embedder: Embedder,
        prepare: FilePreparer,
        *,
        batch_size: int,
    ) -> None:
        self.record = record
        self.catalog = catalog
        self.index = index
        self.embedder = embedder
        self.prepare = prepare
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        return self.record.name

    def remove(self, names: Sequence[str], listener: IngestListener) -> list[FileOutcome]:
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

    def ingest(
        self, found: Sequence[FoundFile], listener: IngestListener, *, force: bool
    ) -> list[FileOutcome]:
        kb_id = self.record.id
        found = small_files_first(found)
        readable_files = [f for f in found if f.problem is None and is_supported(f.path)]
        self.catalog.mark_pending(
            kb_id, [(f.name, f.location, f.size_on_disk()) for f in readable_files]
        )
        known = {record.name: record for record in self.catalog.list_files(self.record.id)}
        outcomes: list[FileOutcome] = []

        def report(outcome: FileOutcome) -> None:
            outcomes.append(outcome)
            listener.file_done(outcome)

        def reached(found_file: FoundFile) -> None:  # no new file starts after a cancel
            stop_if_cancelled(listener)
            listener.file_started(found_file.name)

        prepared = prefetch(found, lambda f: self.prepare(f, known, force), reached=reached)
        try:
            with closing(prepared):  # a cancel stops the loading of the files ahead at once
                self._commit_prepared(prepared, report, listener)
        except WriteStopped as stop:
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
        stop_if_cancelled(listener)
        texts = [chunk.text for prepared in batch for chunk in prepared.chunks]
        done = 0

        def on_batch(n: int) -> None:
            nonlocal done
            done += n
            listener.chunks_embedded(done, len(texts))
            stop_if_cancelled(listener)

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
