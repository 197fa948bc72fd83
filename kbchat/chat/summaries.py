"""Per-file summaries kept in the catalog database, valid while the file is unchanged.

A summary is stored with the sha256 of the file it summarises; once the file changes
(another sha256 in the catalog) the stored summary no longer counts and is made anew.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, delete, select
from sqlalchemy.engine import Engine

from kbchat.chat.summarize import Summary, SummaryEvent, SummaryOptions, summarize
from kbchat.errors import BadInput, NotFound
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.llm.base import ChatModel
from kbchat.store.catalog import FileRecord
from kbchat.text import detect_language

metadata = MetaData()

file_summaries = Table(
    "file_summaries",
    metadata,
    Column("kb_id", Integer, primary_key=True),
    Column("file", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("model", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class StoredSummary:
    """A file's summary as kept: for the file content with ``sha256``."""

    file: str
    sha256: str
    strategy: str
    model: str
    text: str
    created_at: float


class SummaryStore:
    """Reads and writes per-file summaries (tables beside the catalog's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def get(self, kb_id: int, record: FileRecord) -> StoredSummary | None:
        """The summary of the file as it is now (None if none, or the file changed)."""
        return self.for_files(kb_id, [record]).get(record.name)

    def for_files(self, kb_id: int, records: list[FileRecord]) -> dict[str, StoredSummary]:
        """Current summaries of ``records`` by file name (changed files left out)."""
        current = {r.name: r.sha256 for r in records}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(file_summaries).where(file_summaries.c.kb_id == kb_id)
            ).mappings()
            stored = [_stored(row) for row in rows]
        return {s.file: s for s in stored if current.get(s.file) == s.sha256}

    def put(self, kb_id: int, record: FileRecord, summary: Summary, model: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(file_summaries).where(
                    file_summaries.c.kb_id == kb_id, file_summaries.c.file == record.name
                )
            )
            conn.execute(
                file_summaries.insert().values(
                    kb_id=kb_id,
                    file=record.name,
                    sha256=record.sha256,
                    strategy=summary.strategy,
                    model=model,
                    text=summary.text,
                    created_at=time.time(),
                )
            )


def _stored(row: Any) -> StoredSummary:
    return StoredSummary(
        file=str(row["file"]),
        sha256=str(row["sha256"]),
        strategy=str(row["strategy"]),
        model=str(row["model"]),
        text=str(row["text"]),
        created_at=float(row["created_at"]),
    )


def file_record(kb: KnowledgeBase, name: str) -> FileRecord:
    """The catalog record of an indexed file of ``kb``.

    Raises:
        NotFound: no such file (the message lists a few known ones).
        BadInput: the file is not indexed (failed, skipped or still pending).
    """
    record = kb.catalog.get_file(kb.record.id, name)
    if record is None:
        known = ", ".join(r.name for r in kb.files()[:10]) or "none"
        raise NotFound(f"no file {name!r} in knowledge base {kb.name!r}; files: {known}")
    if record.status != "indexed":
        reason = f": {record.error}" if record.error else ""
        raise BadInput(f"{name}: not indexed ({record.status}{reason}); nothing to summarise")
    return record


def file_chunks(kb: KnowledgeBase, name: str) -> list[str]:
    """A file's chunk texts in document order."""
    ids = kb.catalog.chunk_ids_for_files(kb.record.id, [name])
    stored = kb.catalog.get_chunks([int(i) for i in ids])
    rows = sorted(stored.values(), key=lambda row: row.chunk.position)
    return [row.chunk.text for row in rows]


def summarize_file(
    kb: KnowledgeBase,
    name: str,
    model: ChatModel,
    store: SummaryStore,
    *,
    options: SummaryOptions | None = None,
    refresh: bool = False,
    cancel: threading.Event | None = None,
) -> Iterator[SummaryEvent]:
    """A file's summary: the stored one if the file is unchanged (and the strategy fits),
    else made now (events as ``summarize``) and stored.

    Raises:
        NotFound, BadInput: see ``file_record``.
    """
    options = options or SummaryOptions()
    record = file_record(kb, name)
    stored = None if refresh else store.get(kb.record.id, record)
    if stored is not None and options.strategy in ("auto", stored.strategy):
        yield stored.text
        yield Summary(
            text=stored.text,
            strategy=stored.strategy,  # type: ignore[arg-type]
            language=detect_language(stored.text),
            steps=0,
            estimated_s=0.0,
            cached=True,
        )
        return
    chunks = file_chunks(kb, name)
    for event in summarize(model, chunks, embedder=kb.embedder, options=options, cancel=cancel):
        if isinstance(event, Summary) and event.finish_reason != "cancelled" and event.text:
            store.put(kb.record.id, record, event, model.name)
        yield event
