"""Shapes of the write path: knowledge bases, their files, write jobs; and search results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from kbchat.shapes import Shape
from kbchat.types import FileStatus, OutcomeStatus

if TYPE_CHECKING:  # the CLI imports these shapes; the write path (numpy, faiss) stays unloaded
    from kbchat.kb.jobs import Job
    from kbchat.kb.migrate import Migration
    from kbchat.kb.prepare import FileOutcome
    from kbchat.store.catalog_schema import FileRecord, KBRecord
    from kbchat.types import Hit

PUBLIC_HIT_EXTRA = frozenset({"retrieval_score"})
"""The keys of ``Hit.extra`` a client sees; the others (fusion's ``rank_key``) are internal."""


class KBInfo(Shape):
    """A knowledge base's settings."""

    name: str
    description: str
    embedder: str = Field(description="Name of the embedder that built the vectors.")
    store: str = Field(description="Vector store backend (faiss, pgvector, milvus...).")
    embedder_spec: dict[str, Any] = Field(
        description="The embedder backend and the settings that change its vectors."
    )
    dim: int = Field(description="Vector dimension.")
    chunk_size: int = Field(description="Chunk length in characters.")
    chunk_overlap: int = Field(description="Overlap of neighbouring chunks in characters.")
    created_at: float = Field(description="Unix time in seconds.")
    updated_at: float = Field(description="Unix time in seconds.")


class KBListing(KBInfo):
    """A knowledge base with its file and chunk counts."""

    files: int = Field(description="Files in the knowledge base, whatever their status.")
    chunks: int = Field(description="Chunks indexed.")
    status: dict[str, int] = Field(description="Files per status: indexed, failed, pending...")


class KBDetail(KBListing):
    """A knowledge base, its counts and its write jobs queued or running."""

    jobs: list[str] = Field(description="Ids of the jobs queued or running (/api/jobs/{id}).")


def kb_settings(record: KBRecord) -> KBInfo:
    return KBInfo.model_validate(record, from_attributes=True)


def kb_listing(record: KBRecord, stats: dict[str, int]) -> KBListing:
    """``record`` with ``stats`` (files per status, and ``chunks``) as counts."""
    status = {k: v for k, v in stats.items() if k != "chunks"}
    return KBListing(
        **kb_settings(record).model_dump(),
        files=sum(status.values()),
        chunks=stats.get("chunks", 0),
        status=status,
    )


class MigrationInfo(Shape):
    """A knowledge base moved to another vector store (``kbchat kb migrate``)."""

    name: str
    source: str = Field(description="The vector store backend it left.")
    target: str = Field(description="The vector store backend it now uses.")
    vectors: int = Field(description="Vectors copied from the catalog (none re-embedded).")
    queries_compared: int = Field(
        description="Stored vectors searched in both stores, with identical top-k results."
    )
    seconds: float = Field(description="Wall time of the whole migration.")
    source_dropped: bool = Field(description="Whether the old store was removed.")
    note: str | None = Field(description="What is left to do by hand, if anything.")


def migration_info(migration: Migration) -> MigrationInfo:
    return MigrationInfo.model_validate(migration, from_attributes=True)


class FileInfo(Shape):
    """One file of a knowledge base and the outcome of its last ingest."""

    name: str = Field(description="The file's name in the knowledge base (may hold folders).")
    path: str = Field(description="Where the file was read from.")
    status: FileStatus
    error: str | None = Field(description="Why the file failed or was skipped.")
    chunks: int
    size: int | None = Field(
        description="Bytes; null when unknown (a file refused or failed before it was read)."
    )
    sha256: str
    updated_at: float = Field(description="Unix time in seconds.")


class FileListing(FileInfo):
    """A file with its kept summary."""

    summary: str | None = Field(description="The file's summary, if one was made and is current.")


def file_info(record: FileRecord) -> FileInfo:
    info = FileInfo.model_validate(record, from_attributes=True)
    return info.model_copy(update={"size": known_size(record)})


def known_size(record: FileRecord) -> int | None:
    """A file's size in bytes, or None when it is unknown: the catalog holds 0 for a file
    that was refused or failed before its bytes were read (its hash is unknown too)."""
    unread = record.size == 0 and not record.sha256 and record.status in ("skipped", "failed")
    return None if unread else record.size


def file_listing(record: FileRecord, summary: str | None) -> FileListing:
    return FileListing(**file_info(record).model_dump(), summary=summary)


class FileOutcomeInfo(Shape):
    """What happened to one file in an add, sync, remove or rebuild."""

    name: str
    path: str
    status: OutcomeStatus = Field(
        description="pending (waiting) or running until the job decides the file; a job lists "
        "every file it was given from the start."
    )
    error: str | None
    chunks: int = Field(description="The file's chunks after the write (removed: dropped).")
    new_chunks: int = Field(description="Chunks with text the file did not have before.")
    notes: list[str] = Field(description="What the loader could not read as the author sees it.")


def outcome_info(outcome: FileOutcome) -> FileOutcomeInfo:
    return FileOutcomeInfo.model_validate(outcome, from_attributes=True)


class JobInfo(Shape):
    """A write job and how far it got."""

    id: str
    kind: str = Field(description="add, sync, remove, rebuild, attach or resume.")
    kb: str
    status: Literal["queued", "running", "done", "failed", "cancelled"] = Field(
        description="queued while no worker holds any of its unfinished tasks (before the "
        "first one starts, and again after a stopping worker handed them back); running while "
        "one does; done when the work finished, even if files failed (see files); failed "
        "when the work itself stopped (see error); cancelled when someone stopped it (error "
        "says who; files finished before stay, the others are listed as cancelled)."
    )
    total: int = Field(description="Files to process.")
    done: int = Field(description="Files processed.")
    files: list[FileOutcomeInfo]
    error: str | None
    chunks: int = Field(
        0,
        description="Chunks the files it indexed were written with, so far (a finished add or "
        "rebuild: every chunk it embedded and stored).",
    )
    chunks_done: int | None = Field(
        None,
        description="Chunks embedded so far of the files being indexed (a big file's "
        "progress); null when no file is being embedded (queued, finished).",
    )
    chunks_total: int | None = Field(
        None, description="Chunks of the files being indexed; null when none is."
    )
    created_at: float = Field(description="Unix time in seconds.")
    started_at: float | None
    finished_at: float | None


def job_info(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        kind=job.kind,
        kb=job.kb,
        status=job.status,
        total=job.total,
        done=job.done,
        files=[outcome_info(f) for f in job.files],
        error=job.error,
        chunks=job.chunks,
        chunks_done=job.chunks_done,
        chunks_total=job.chunks_total,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


class JobAccepted(Shape):
    """A write accepted: the job that does it."""

    job: JobInfo


class HitInfo(Shape):
    """A passage found by a search."""

    kb: str
    file: str
    text: str
    score: float = Field(description="Relevance in [0, 1], higher is better (4 decimals).")
    chunk_id: int
    page: int | None
    sheet: str | None
    slide: int | None
    headings: list[str] = Field(description="The headings above the passage, outermost first.")
    extra: dict[str, float] = Field(
        description="retrieval_score: the score before reranking (reranked hits only)."
    )


def hit_info(hit: Hit) -> HitInfo:
    return HitInfo(
        kb=hit.kb,
        file=hit.file,
        text=hit.text,
        score=round(hit.score, 4),
        chunk_id=hit.chunk_id,
        page=hit.page,
        sheet=hit.sheet,
        slide=hit.slide,
        headings=list(hit.headings),
        extra={k: v for k, v in hit.extra.items() if k in PUBLIC_HIT_EXTRA},
    )


class SearchResult(Shape):
    """Hits best first, with what the search noticed and how long its steps took."""

    hits: list[HitInfo]
    notices: list[str] = Field(description="What the caller should know, e.g. a cut query.")
    timings_ms: dict[str, float] = Field(description="Milliseconds per step (embed, total...).")


class AttachAccepted(Shape):
    """Files accepted for a conversation: the job that ingests them."""

    conversation_id: str
    job: JobInfo


class AttachedFiles(Shape):
    """A conversation's files and its attach jobs, newest first."""

    conversation_id: str
    files: list[FileInfo]
    jobs: list[JobInfo]
