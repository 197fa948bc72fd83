"""The catalog: knowledge bases, their files and chunks, in one SQL database.

The catalog is the source of truth. Chunk vectors and BM25 tokens are stored here too,
so a knowledge base's vector store (any backend) and BM25 index are caches that can always
be refilled from it (after a crash, another process's writes, a lost file, a rebuild), and
a file's chunks change in one transaction: all of them or none. Searches read vectors from
the store, never from here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError

from kbchat.errors import ConfigError, Conflict, NotFound, not_found_among
from kbchat.store.catalog_schema import (
    FileRecord,
    KBRecord,
    NewChunk,
    StoredChunk,
    chunk_from_row,
    chunks,
    file_from_row,
    files,
    job_tasks,
    kb_from_row,
    kbs,
    metadata,
    new_chunk_row,
)
from kbchat.store.reach import database_unreachable, masked_url
from kbchat.types import FileStatus

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Catalog",
    "FileRecord",
    "FileStatus",
    "KBRecord",
    "NewChunk",
    "StoredChunk",
    "chunks",
    "files",
    "kbs",
    "metadata",
]


def open_engine(url: str) -> Engine:
    """A SQLAlchemy engine for the catalog: SQLite in WAL mode, or a server database whose
    pooled connections are checked before use (a restarted PostgreSQL costs no failed query).
    """
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(
            f"catalog.url: {masked_url(url)} is not a database URL SQLAlchemy can open "
            f"({exc}); use postgresql://user:password@host:5432/dbname"
        ) from None


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Serialise table creation between processes starting at once on a shared database."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(7427001)"))
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(7427001)"))
            conn.commit()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


class Catalog:
    """Typed access to the catalog tables; every write is one transaction."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        """Open (creating its tables if needed) the catalog at SQLAlchemy ``url``.

        Raises:
            BackendError: the database cannot be reached or refused the login (the message
                names the URL without its password and what to check).
        """
        if engine is None:
            engine = open_engine(url)
        self.engine = engine
        try:
            with schema_lock(engine):
                metadata.create_all(engine)
                _add_missing_columns(engine)
        except OperationalError as exc:
            engine.dispose()
            raise database_unreachable(engine.url.render_as_string(), exc) from None

    @property
    def shared(self) -> bool:
        """Whether other processes on other machines may use this catalog (not SQLite)."""
        return self.engine.dialect.name != "sqlite"

    def close(self) -> None:
        self.engine.dispose()

    # -- knowledge bases -------------------------------------------------------------

    def create_kb(
        self,
        name: str,
        *,
        embedder: str,
        embedder_spec: dict[str, Any],
        dim: int,
        store: str,
        chunk_size: int,
        chunk_overlap: int,
        tokenizer: int,
        description: str = "",
    ) -> KBRecord:
        """Add a knowledge base whose chunks' BM25 tokens will be made by ``tokenizer``
        (``kbchat.store.bm25.TOKENIZER_VERSION``).

        Raises:
            Conflict: one of that name exists.
        """
        now = time.time()
        with self.engine.begin() as conn:
            if conn.execute(select(kbs.c.id).where(kbs.c.name == name)).first():
                raise Conflict(f"knowledge base {name!r} already exists")
            conn.execute(
                insert(kbs).values(
                    name=name,
                    description=description,
                    embedder=embedder,
                    embedder_spec=json.dumps(embedder_spec, sort_keys=True),
                    dim=dim,
                    store=store,
                    chunk_size=chunk_size,
                    chunk_overlap=chunk_overlap,
                    generation=0,
                    tokenizer=tokenizer,
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get_kb(name)

    def get_kb(self, name: str) -> KBRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(kbs).where(kbs.c.name == name)).mappings().first()
        if row is None:
            known = ", ".join(self.kb_names()) or "none yet"
            raise NotFound(f"no knowledge base named {name!r}; known: {known}")
        return kb_from_row(row)

    def kb_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(kbs.c.name).order_by(kbs.c.name)).scalars())

    def list_kbs(self) -> list[KBRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(kbs).order_by(kbs.c.name)).mappings().all()
        return [kb_from_row(row) for row in rows]

    def drop_kb(self, kb_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(chunks).where(chunks.c.kb_id == kb_id))
            conn.execute(delete(files).where(files.c.kb_id == kb_id))
            conn.execute(delete(kbs).where(kbs.c.id == kb_id))

    def generation(self, kb_id: int) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(kbs.c.generation).where(kbs.c.id == kb_id)).scalar()
        if value is None:
            raise NotFound(f"knowledge base id {kb_id} no longer exists")
        return int(value)

    def kb_stats(self, kb_id: int) -> dict[str, int]:
        """Number of files by status, plus the total number of chunks."""
        with self.engine.connect() as conn:
            by_status = conn.execute(
                select(files.c.status, func.count())
                .where(files.c.kb_id == kb_id)
                .group_by(files.c.status)
            ).all()
            total_chunks = conn.execute(
                select(func.count()).select_from(chunks).where(chunks.c.kb_id == kb_id)
            ).scalar_one()
        stats = {str(status): int(count) for status, count in by_status}
        stats["chunks"] = int(total_chunks)
        return stats

    # -- files -----------------------------------------------------------------------

    def list_files(self, kb_id: int) -> list[FileRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(files).where(files.c.kb_id == kb_id).order_by(files.c.name)
            ).mappings()
            return [file_from_row(row) for row in rows]

    def get_file(self, kb_id: int, name: str) -> FileRecord | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(files).where(files.c.kb_id == kb_id, files.c.name == name))
                .mappings()
                .first()
            )
        return None if row is None else file_from_row(row)

    def require_file(self, kb_id: int, kb_name: str, name: str) -> FileRecord:
        """The file ``name`` of knowledge base ``kb_id`` (called ``kb_name`` in messages).

        Raises:
            NotFound: no such file; the message suggests the closest name and lists some.
        """
        record = self.get_file(kb_id, name)
        if record is None:
            known = [r.name for r in self.list_files(kb_id)]
            raise not_found_among("file", name, f"knowledge base {kb_name!r}", known)
        return record

    def mark_pending(self, kb_id: int, entries: Sequence[tuple[str, str, int]]) -> None:
        """Record files about to be ingested (name, path, size in bytes) that the catalog
        does not know yet: listings show them, with their size, before they are read."""
        now = time.time()
        latest = {name: (path, size) for name, path, size in entries}
        with self.engine.begin() as conn:
            known = set(conn.execute(select(files.c.name).where(files.c.kb_id == kb_id)).scalars())
            fresh = [
                {
                    "kb_id": kb_id,
                    "name": name,
                    "path": path,
                    "status": "pending",
                    "sha256": "",
                    "size": size,
                    "chunks": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for name, (path, size) in latest.items()
                if name not in known
            ]
            if fresh:
                conn.execute(insert(files), fresh)

    def forget_pending(self, kb_id: int, names: Sequence[str]) -> list[str]:
        """Delete the rows of files ``names`` that are still pending and were never indexed
        (their write was cancelled); returns the names deleted. Other rows are left as they are."""
        if not names:
            return []
        where = and_(
            files.c.kb_id == kb_id,
            files.c.name.in_(list(names)),
            files.c.status == "pending",
            files.c.chunks == 0,
            ~exists().where(chunks.c.file_id == files.c.id),
        )
        with self.engine.begin() as conn:
            gone = list(conn.execute(select(files.c.name).where(where)).scalars())
            if gone:
                conn.execute(delete(files).where(where))
        return gone

    def set_file_status(
        self,
        kb_id: int,
        name: str,
        *,
        path: str,
        status: FileStatus,
        error: str | None,
        sha256: str = "",
        size: int = 0,
    ) -> None:
        """Record a file outcome that adds no chunks (failed or skipped)."""
        with self.engine.begin() as conn:
            file_id = self._upsert_file(conn, kb_id, name, path)
            existing = conn.execute(select(files.c.chunks).where(files.c.id == file_id)).scalar()
            if existing:
                # An indexed version exists: keep serving it and say why the update failed.
                values: dict[str, Any] = {"error": f"update failed, previous version kept: {error}"}
            else:
                values = {"status": status, "error": error, "sha256": sha256, "size": size}
            conn.execute(
                update(files).where(files.c.id == file_id).values(updated_at=time.time(), **values)
            )

    def replace_file_chunks(
        self,
        kb_id: int,
        name: str,
        *,
        path: str,
        sha256: str,
        size: int,
        new_chunks: Sequence[NewChunk],
    ) -> tuple[list[int], int]:
        """Atomically replace a file's chunks; returns (removed ids, new generation)."""
        now = time.time()
        with self.engine.begin() as conn:
            file_id = self._upsert_file(conn, kb_id, name, path)
            removed = list(
                conn.execute(select(chunks.c.id).where(chunks.c.file_id == file_id)).scalars()
            )
            conn.execute(delete(chunks).where(chunks.c.file_id == file_id))
            if new_chunks:
                conn.execute(insert(chunks), [new_chunk_row(kb_id, file_id, c) for c in new_chunks])
            conn.execute(
                update(files)
                .where(files.c.id == file_id)
                .values(
                    path=path,
                    sha256=sha256,
                    size=size,
                    status="indexed",
                    error=None,
                    chunks=len(new_chunks),
                    updated_at=now,
                )
            )
            generation = self._bump(conn, kb_id)
        return removed, generation

    def remove_file(self, kb_id: int, name: str) -> tuple[list[int], int]:
        """Delete a file and its chunks; returns (removed chunk ids, new generation)."""
        with self.engine.begin() as conn:
            file_id = conn.execute(
                select(files.c.id).where(files.c.kb_id == kb_id, files.c.name == name)
            ).scalar()
            if file_id is None:
                raise NotFound(f"no file named {name!r} in this knowledge base")
            removed = list(
                conn.execute(select(chunks.c.id).where(chunks.c.file_id == file_id)).scalars()
            )
            conn.execute(delete(chunks).where(chunks.c.file_id == file_id))
            conn.execute(delete(files).where(files.c.id == file_id))
            generation = self._bump(conn, kb_id)
        return removed, generation

    # -- chunks ----------------------------------------------------------------------

    def chunk_ids(self, kb_id: int) -> np.ndarray:
        import numpy as np

        with self.engine.connect() as conn:
            ids = conn.execute(select(chunks.c.id).where(chunks.c.kb_id == kb_id)).scalars().all()
        return np.asarray(ids, dtype=np.int64)

    def iter_vectors(
        self, kb_id: int, ids: Sequence[int] | None = None, batch: int = 2000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids, vectors) blocks for the whole KB or for the given ids."""
        query = select(chunks.c.id, chunks.c.vector).where(chunks.c.kb_id == kb_id)
        wanted = None if ids is None else list(ids)
        with self.engine.connect() as conn:
            if wanted is None:
                yield from _vector_blocks(conn.execute(query.order_by(chunks.c.id)), batch)
                return
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                yield from _vector_blocks(conn.execute(query.where(chunks.c.id.in_(part))), batch)

    def iter_tokens(self, kb_id: int) -> Iterator[tuple[int, list[str]]]:
        with self.engine.connect() as conn:
            result = conn.execute(
                select(chunks.c.id, chunks.c.tokens)
                .where(chunks.c.kb_id == kb_id)
                .order_by(chunks.c.id)
            )
            for chunk_id, tokens in result:
                yield int(chunk_id), tokens.split(" ") if tokens else []

    def get_chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        found: dict[int, StoredChunk] = {}
        query = select(chunks, files.c.name.label("file_name")).join(
            files, files.c.id == chunks.c.file_id
        )
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                part = list(ids[start : start + 500])
                for row in conn.execute(query.where(chunks.c.id.in_(part))).mappings():
                    found[int(row["id"])] = StoredChunk(
                        id=int(row["id"]), file=row["file_name"], chunk=chunk_from_row(row)
                    )
        return found

    def chunk_ids_for_files(
        self, kb_id: int, names: Sequence[str], *, pages: tuple[int, int] | None = None
    ) -> np.ndarray:
        import numpy as np

        query = (
            select(chunks.c.id)
            .join(files, files.c.id == chunks.c.file_id)
            .where(chunks.c.kb_id == kb_id, files.c.name.in_(list(names)))
        )
        if pages is not None:
            query = query.where(chunks.c.page.between(pages[0], pages[1]))
        with self.engine.connect() as conn:
            return np.asarray(conn.execute(query).scalars().all(), dtype=np.int64)

    # -- internals -------------------------------------------------------------------

    def _upsert_file(self, conn: Connection, kb_id: int, name: str, path: str) -> int:
        file_id = conn.execute(
            select(files.c.id).where(files.c.kb_id == kb_id, files.c.name == name)
        ).scalar()
        if file_id is not None:
            return int(file_id)
        now = time.time()
        result = conn.execute(
            insert(files).values(
                kb_id=kb_id,
                name=name,
                path=path,
                status="pending",
                sha256="",
                size=0,
                chunks=0,
                created_at=now,
                updated_at=now,
            )
        )
        key = result.inserted_primary_key
        if key is None:
            raise RuntimeError("the database returned no id for the new file row")
        return int(key[0])

    @staticmethod
    def _bump(conn: Connection, kb_id: int) -> int:
        conn.execute(
            update(kbs)
            .where(kbs.c.id == kb_id)
            .values(generation=kbs.c.generation + 1, updated_at=time.time())
        )
        return int(conn.execute(select(kbs.c.generation).where(kbs.c.id == kb_id)).scalar_one())


def _add_missing_columns(engine: Engine) -> None:
    """Columns added since a catalog was made (``kbs.store``, ``kbs.tokenizer``,
    ``job_tasks.chunks_done``, ``job_tasks.cancel_reason``), with their server defaults (or
    nullable): existing knowledge bases read ``store = 'faiss'`` and ``tokenizer = 1``."""
    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in (kbs, job_tasks):
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                default = column.server_default
                clause = ""
                if default is not None:
                    clause = f" NOT NULL DEFAULT '{default.arg}'"  # type: ignore[attr-defined]
                conn.execute(
                    text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{clause}")
                )


def _vector_blocks(result: Any, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    import numpy as np

    while rows := result.fetchmany(batch):
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        vectors = np.vstack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
        yield ids, vectors
