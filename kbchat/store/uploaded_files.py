"""Files uploaded through the OpenAI-style Files API (``/v1/files``), kept per owner.

A file's bytes are written to ``<folder>/<id>`` (written to a staging name, then renamed,
so a reader never sees half a file); its name, purpose and size are a row in the catalog
database. Chat messages refer to a file by its id (``file-`` + 24 hex digits); an owner
sees only their own files, and another owner's id is "no such file" like an unknown one.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, delete, select
from sqlalchemy.engine import Engine

from kbchat.errors import BadInput, NotFound

metadata = MetaData()

uploaded_files = Table(
    "uploaded_files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(256), nullable=False, index=True),
    Column("filename", String(1024), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """An uploaded file: ``bytes`` is its size, ``created_at`` Unix seconds."""

    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    created_at: float


class UploadedFileStore:
    """Uploaded files of every owner: rows in ``engine``'s database, bytes under ``folder``.

    ``owner`` None (a server without API keys) is one owner like any other.
    """

    def __init__(self, engine: Engine, folder: Path) -> None:
        self.engine = engine
        self.folder = folder
        metadata.create_all(engine)

    def add(self, owner: str | None, filename: str, purpose: str, data: bytes) -> UploadedFile:
        """Keep ``data`` as a new file.

        Raises:
            BadInput: the file is empty or has no name.
        """
        name = Path(filename.replace("\\", "/")).name.strip()
        if name in ("", ".", ".."):
            raise BadInput(f"the uploaded file has no filename (got {filename!r})")
        if not data:
            raise BadInput(f"{name}: the file is empty")
        record = UploadedFile(
            id=f"file-{secrets.token_hex(12)}",
            owner=owner or "",
            filename=name,
            purpose=purpose,
            bytes=len(data),
            created_at=time.time(),
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f".{record.id}.part"
        staging.write_bytes(data)
        os.replace(staging, self._path(record.id))
        with self.engine.begin() as conn:
            conn.execute(uploaded_files.insert().values(**_row(record)))
        return record

    def list(
        self,
        owner: str | None,
        *,
        purpose: str | None = None,
        limit: int = 10_000,
        after: str | None = None,
        order: Order = "desc",
    ) -> list[UploadedFile]:
        """The owner's files by creation time; ``after`` an id: those that come after it.

        Raises:
            NotFound: ``after`` is not one of the owner's files.
        """
        table = uploaded_files
        query = select(table).where(table.c.owner == (owner or ""))
        if purpose is not None:
            query = query.where(table.c.purpose == purpose)
        key = (table.c.created_at, table.c.id)
        if after is not None:
            mark = self.get(owner, after)
            if order == "desc":
                query = query.where(
                    (table.c.created_at < mark.created_at)
                    | ((table.c.created_at == mark.created_at) & (table.c.id < mark.id))
                )
            else:
                query = query.where(
                    (table.c.created_at > mark.created_at)
                    | ((table.c.created_at == mark.created_at) & (table.c.id > mark.id))
                )
        ordered = [c.desc() for c in key] if order == "desc" else list(key)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(*ordered).limit(limit)).mappings().all()
        return [_record(row) for row in rows]

    def get(self, owner: str | None, file_id: str) -> UploadedFile:
        """Raises: NotFound: no such file of this owner."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(uploaded_files).where(
                        uploaded_files.c.id == file_id, uploaded_files.c.owner == (owner or "")
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"No such File object: {file_id}")
        return _record(row)

    def content(self, owner: str | None, file_id: str) -> tuple[UploadedFile, bytes]:
        """The file and its bytes. Raises: NotFound: no such file of this owner."""
        record = self.get(owner, file_id)
        try:
            return record, self._path(file_id).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"File {file_id} ({record.filename}): its content is gone") from None

    def delete(self, owner: str | None, file_id: str) -> None:
        """Raises: NotFound: no such file of this owner."""
        self.get(owner, file_id)
        with self.engine.begin() as conn:
            conn.execute(delete(uploaded_files).where(uploaded_files.c.id == file_id))
        self._path(file_id).unlink(missing_ok=True)

    def _path(self, file_id: str) -> Path:
        return self.folder / file_id


def _row(record: UploadedFile) -> dict[str, Any]:
    return {
        "id": record.id,
        "owner": record.owner,
        "filename": record.filename,
        "purpose": record.purpose,
        "bytes": record.bytes,
        "created_at": record.created_at,
    }


def _record(row: Any) -> UploadedFile:
    return UploadedFile(
        id=str(row["id"]),
        owner=str(row["owner"]),
        filename=str(row["filename"]),
        purpose=str(row["purpose"]),
        bytes=int(row["bytes"]),
        created_at=float(row["created_at"]),
    )
