"""Per-file summaries kept in the catalog database, valid while the file is unchanged.

A summary is stored with the sha256 of the file it summarises; once the file changes
(another sha256 in the catalog) the stored summary no longer counts and is made anew.
A knowledge base's overview (a summary of its files' summaries) is kept the same way,
under a digest of the summaries it was made from.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, delete, select
from sqlalchemy.engine import Engine

from kbchat.chat.summarize import Summary, SummaryEvent, SummaryOptions, summarize
from kbchat.errors import BadInput
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

kb_overviews = Table(
    "kb_overviews",
    metadata,
    Column("kb_id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
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

    def get_overview(self, kb_id: int, digest: str) -> StoredSummary | None:
        """The kept overview made from the summaries with ``digest`` (None if none)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(kb_overviews).where(kb_overviews.c.kb_id == kb_id))
                .mappings()
                .first()
            )
        if row is None or row["digest"] != digest:
            return None
        return _stored({**row, "file": "", "sha256": digest})

    def put_overview(self, kb_id: int, digest: str, summary: Summary, model: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(kb_overviews).where(kb_overviews.c.kb_id == kb_id))
            conn.execute(
                kb_overviews.insert().values(
                    kb_id=kb_id,
                    digest=digest,
                    strategy=summary.strategy,
                    model=model,
                    text=summary.text,
                    created_at=time.time(),
                )
            )


def overview_digest(summaries: Sequence[StoredSummary]) -> str:
    """What an overview was made from: its files, their versions and summaries."""
    digest = hashlib.sha256()
    for summary in sorted(summaries, key=lambda s: s.file):
        digest.update(f"{summary.file}\0{summary.sha256}\0{summary.text}\0".encode())
    return digest.hexdigest()


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
    record = kb.catalog.require_file(kb.record.id, kb.name, name)
    if record.status != "indexed":
        reason = f": {record.error}" if record.error else ""
        raise BadInput(f"{name}: not indexed ({record.status}{reason}); nothing to summarise")
    return record


def file_chunks(kb: KnowledgeBase, name: str) -> list[str]:
    """A file's text as its chunks in document order, each without the text it repeats
    from the one before (chunks overlap; a summary reads every part once)."""
    ids = kb.catalog.chunk_ids_for_files(kb.record.id, [name])
    stored = kb.catalog.get_chunks([int(i) for i in ids])
    rows = sorted(stored.values(), key=lambda row: row.chunk.position)
    texts = [row.chunk.text for row in rows]
    return texts[:1] + [unrepeated(a, b) for a, b in itertools.pairwise(texts)]


def unrepeated(before: str, text: str, *, shortest: int = 8) -> str:
    """``text`` without its start when that repeats the end of ``before`` (the longest such
    overlap of at least ``shortest`` characters; shorter ones may be chance)."""
    if len(text) < shortest:
        return text
    start = before.find(text[:shortest])
    while start != -1:
        tail = before[start:]
        if text.startswith(tail):
            return text[len(tail) :].lstrip()
        start = before.find(text[:shortest], start + 1)
    return text


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
        yield from _replayed(stored)
        return
    chunks = file_chunks(kb, name)
    for event in summarize(model, chunks, embedder=kb.embedder, options=options, cancel=cancel):
        if isinstance(event, Summary) and event.finish_reason != "cancelled" and event.text:
            store.put(kb.record.id, record, event, model.name)
        yield event


def _replayed(stored: StoredSummary) -> Iterator[SummaryEvent]:
    """A kept summary as the events of a run that made it: its text, then the Summary."""
    yield stored.text
    yield Summary(
        text=stored.text,
        strategy=stored.strategy,  # type: ignore[arg-type]
        language=detect_language(stored.text),
        steps=0,
        estimated_s=0.0,
        cached=True,
    )


def kept_summaries(kb: KnowledgeBase, store: SummaryStore) -> tuple[list[StoredSummary], list[str]]:
    """The current summaries of ``kb``'s indexed files, and the names of those without one."""
    records = [r for r in kb.files() if r.status == "indexed"]
    kept = store.for_files(kb.record.id, records)
    return [kept[r.name] for r in records if r.name in kept], [
        r.name for r in records if r.name not in kept
    ]


def summarize_overview(
    kb: KnowledgeBase,
    model: ChatModel,
    store: SummaryStore,
    *,
    options: SummaryOptions | None = None,
    refresh: bool = False,
    cancel: threading.Event | None = None,
) -> Iterator[SummaryEvent]:
    """The knowledge base's overview, made from its files' kept summaries (events as
    ``summarize``); kept until one of those summaries changes. A single summary is the
    overview as it is.

    Raises:
        BadInput: no file of ``kb`` has a summary yet.
    """
    summaries, _ = kept_summaries(kb, store)
    if not summaries:
        raise BadInput(
            f"no file of knowledge base {kb.name!r} has a summary yet; "
            f"make them with `kbchat summarize {kb.name}`"
        )
    digest = overview_digest(summaries)
    stored = None if refresh else store.get_overview(kb.record.id, digest)
    if stored is None and len(summaries) == 1:
        stored = summaries[0]
    if stored is not None:
        yield from _replayed(stored)
        return
    texts = [f"{s.file}: {s.text}" for s in summaries]
    for event in summarize(model, texts, embedder=kb.embedder, options=options, cancel=cancel):
        if isinstance(event, Summary) and event.finish_reason != "cancelled" and event.text:
            store.put_overview(kb.record.id, digest, event, model.name)
        yield event
