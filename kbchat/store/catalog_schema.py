"""The catalog's tables and the typed records its rows become (and come from)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from kbchat.types import Chunk, FileStatus

if TYPE_CHECKING:
    import numpy as np


metadata = MetaData()

BigId = BigInteger().with_variant(Integer, "sqlite")
"""A 63-bit id column (chunk ids are hashes): BIGINT on PostgreSQL, INTEGER (64-bit) on SQLite."""

kbs = Table(
    "kbs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("embedder", Text, nullable=False),
    Column("embedder_spec", Text, nullable=False),
    Column("dim", Integer, nullable=False),
    # Vector store backend; catalogs made before stores were pluggable get "faiss".
    Column("store", String(64), nullable=False, server_default="faiss"),
    Column("chunk_size", Integer, nullable=False),
    Column("chunk_overlap", Integer, nullable=False),
    Column("generation", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # The tokenizer version (kbchat.store.bm25.TOKENIZER_VERSION) its chunks' stored BM25
    # tokens were made with; catalogs made before it was recorded hold version 1 tokens.
    Column("tokenizer", Integer, nullable=False, server_default="1"),
    # A dropped knowledge base's id is never handed out again (SQLite reuses the largest id
    # otherwise): caches and uploads on every machine are kept per id.
    sqlite_autoincrement=True,
)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kb_id", Integer, ForeignKey("kbs.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False, default=""),
    Column("size", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("chunks", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("kb_id", "name"),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=False),
    Column("kb_id", Integer, ForeignKey("kbs.id", ondelete="CASCADE"), nullable=False),
    Column("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("page", Integer, nullable=True),
    Column("sheet", Text, nullable=True),
    Column("slide", Integer, nullable=True),
    Column("headings", Text, nullable=False, default="[]"),
    Column("title", Text, nullable=True),
    Column("tokens", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Index("ix_chunks_kb", "kb_id"),
    Index("ix_chunks_file", "file_id"),
)


@dataclass(frozen=True, slots=True)
class KBRecord:
    """A knowledge base as the catalog stores it."""

    id: int
    name: str
    description: str
    embedder: str
    embedder_spec: dict[str, Any]
    dim: int
    store: str
    chunk_size: int
    chunk_overlap: int
    generation: int
    created_at: float
    updated_at: float
    tokenizer: int
    """The version of ``kbchat.store.bm25.tokenize`` its chunks' stored tokens were made with."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file of a knowledge base and the outcome of its last ingest."""

    id: int
    name: str
    path: str
    sha256: str
    size: int
    status: FileStatus
    error: str | None
    chunks: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk row, as read back for search results."""

    id: int
    file: str
    chunk: Chunk


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk ready to be written: its id, BM25 tokens and vector."""

    id: int
    chunk: Chunk
    tokens: list[str]
    vector: np.ndarray


def new_chunk_row(kb_id: int, file_id: int, new: NewChunk) -> dict[str, Any]:
    """The `chunks` row of a new chunk: headings JSON, tokens space-joined, float32 vector bytes."""
    import numpy as np

    chunk = new.chunk
    return {
        "id": new.id,
        "kb_id": kb_id,
        "file_id": file_id,
        "position": chunk.position,
        "text": chunk.text,
        "page": chunk.page,
        "sheet": chunk.sheet,
        "slide": chunk.slide,
        "headings": json.dumps(list(chunk.headings), ensure_ascii=False),
        "title": chunk.title,
        "tokens": " ".join(new.tokens),
        "vector": np.asarray(new.vector, dtype=np.float32).tobytes(),
    }


def chunk_from_row(row: Any) -> Chunk:
    """The Chunk of a `chunks` row joined with its file name (as `file_name`)."""
    return Chunk(
        text=row["text"],
        source=row["file_name"],
        position=int(row["position"]),
        page=row["page"],
        sheet=row["sheet"],
        slide=row["slide"],
        headings=tuple(json.loads(row["headings"])),
        title=row["title"],
    )


def kb_from_row(row: Any) -> KBRecord:
    """The KBRecord of a `kbs` row."""
    values = dict(row)
    values["embedder_spec"] = json.loads(values["embedder_spec"])
    return KBRecord(**values)


def file_from_row(row: Any) -> FileRecord:
    """The FileRecord of a `files` row."""
    values = dict(row)
    values.pop("kb_id")
    return FileRecord(**values)


# -- write jobs (kbchat.kb.jobs): every server and worker sharing the catalog sees them ------

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kb", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
    # Outcomes decided before any task ran (refused uploads), as a JSON list.
    Column("refused", Text, nullable=False, default="[]"),
    Column("version", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ix_jobs_kb", "kb", "created_at"),
)

job_tasks = Table(
    "job_tasks",
    metadata,
    # The id orders a knowledge base's tasks: a task waits for earlier ones it conflicts with.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("kb", String(128), nullable=False),
    # The file in the KB the task writes; NULL: the whole knowledge base (sync, rebuild).
    Column("file", Text, nullable=True),
    Column("op", String(16), nullable=False),
    Column("payload", Text, nullable=False, default="{}"),
    # Content hash of an uploaded file (duplicate uploads, blob clean-up).
    Column("sha256", String(64), nullable=True),
    # The host that must run it (it reads files only that host has); NULL: any worker.
    Column("host", String(255), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_after", Float, nullable=False),
    Column("lease_owner", String(255), nullable=True),
    Column("lease_expires", Float, nullable=True),
    Column("total", Integer, nullable=False, default=0),
    Column("done", Integer, nullable=False, default=0),
    # Chunks embedded of the files in hand while the task runs (a big file's progress).
    Column("chunks_done", Integer, nullable=True),
    Column("chunks_total", Integer, nullable=True),
    Column("outcomes", Text, nullable=False, default="[]"),
    Column("error", Text, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    # Set while the task runs when its job is cancelled: why; its worker stops at the next
    # embedding batch and leaves the file as it was.
    Column("cancel_reason", Text, nullable=True),
    Index("ix_job_tasks_claim", "status", "run_after"),
    Index("ix_job_tasks_kb", "kb", "status"),
    Index("ix_job_tasks_job", "job_id"),
)

blobs = Table(
    "blobs",
    metadata,
    # Uploaded files' bytes, by content hash, when the catalog is shared between machines.
    Column("sha256", String(64), primary_key=True),
    Column("size", BigId, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    # API keys by name, when the catalog is shared: every server sees the same keys.
    Column("name", String(128), primary_key=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("permissions", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
