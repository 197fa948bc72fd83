"""A knowledge base's files opened as sources: the original, its text, its chunks; retry.

Each route is ``/api/kbs/{kb}/{view}/{file}``: the file's name (which may hold folders) comes
last, so no route can be mistaken for another (``/files/{file}`` answers DELETE for any
name). The file is named by its name in the knowledge base and looked up in the catalog; the
bytes served are those at the path the catalog recorded when the file was added (an
upload's copy, or the file ``kb add`` read), never a path built from the request. A file
skipped when it was added (a link out of its folder, a pipe, an unsupported type) was not
read on purpose and is not served either.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from kbchat.errors import BadInput, Conflict, NotFound
from kbchat.ingest.discover import source_path
from kbchat.ingest.loaders import LoadLimits, load_file
from kbchat.kb.knowledge_base import file_sha256
from kbchat.kb.worker import add_tasks
from kbchat.server.auth import Principal, Role
from kbchat.server.errors import documented
from kbchat.server.schemas import KBNameInPath
from kbchat.server.state import ServerState, current_principal, find_kb, get_state
from kbchat.shapes.kb import JobAccepted, job_info
from kbchat.shapes.sources import ChunkInfo, DocumentText, FileChunks, FileText
from kbchat.store.catalog_schema import FileRecord, KBRecord

router = APIRouter(tags=["knowledge bases"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]

# Shown in the browser's own viewer; anything else (html, svg, xml, office files) is a
# download, so a knowledge-base file can never run script on the page's origin.
_INLINE = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/bmp",
        "image/webp",
        "text/plain",
        "text/markdown",
        "text/csv",
        "text/tab-separated-values",
        "application/json",
    }
)
_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".log": "text/plain",
    ".text": "text/plain",
    ".jsonl": "application/jsonl",
    ".tsv": "text/tab-separated-values",
    ".eml": "message/rfc822",
    ".webp": "image/webp",
    ".xlsm": "application/vnd.ms-excel.sheet.macroEnabled.12",
}
ORIGINAL_ROUTE = "/api/kbs/{name}/original/{file:path}"
FILE_ROUTES = frozenset({("get", ORIGINAL_ROUTE)})
"""Routes that answer a file's bytes (any media type) instead of a JSON shape."""
_IMAGES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
_SNIFF_BYTES = 65536
_SANDBOX = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"


def content_type(name: str) -> str:
    """The media type of a file by its name (``application/octet-stream`` if unknown)."""
    suffix = PurePosixPath(name).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"


@router.get(
    ORIGINAL_ROUTE,
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file's bytes, with its media type.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **documented(401, 404, 422),
    },
)
def original(
    name: KBNameInPath,
    file: str,
    state: StateDep,
    caller: CallerDep,
    download: Annotated[
        bool, Query(description="Send it as an attachment instead of for viewing.")
    ] = False,
) -> FileResponse:
    """The file as it was added (an upload's kept copy, or the file ``kb add`` read).

    PDFs, images and plain text are sent for viewing; other types as attachments.
    404 names the file when it is gone from the server or was never kept.
    """
    record, stored = _file(state, caller, name, file, "read")
    path = _original_path(record, stored)
    media = content_type(stored.name)
    if media.startswith("text/") and _is_utf8(path):
        media += "; charset=utf-8"
    inline = not download and media.split(";")[0] in _INLINE
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}
    if media != "application/pdf":  # the browser's pdf viewer does not run in a sandbox
        headers["Content-Security-Policy"] = _SANDBOX
    return FileResponse(
        path,
        media_type=media,
        filename=PurePosixPath(stored.name).name,
        content_disposition_type="inline" if inline else "attachment",
        headers=headers,
    )


@router.get("/api/kbs/{name}/chunks/{file:path}", responses=documented(401, 404, 422))
def chunks(
    name: KBNameInPath,
    file: str,
    state: StateDep,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="First chunk to list.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Chunks to list at most.")] = 200,
) -> FileChunks:
    """A file's chunks in file order, with where each is (page, sheet, slide, headings)."""
    record, stored = _file(state, caller, name, file, "read")
    catalog = state.services.library.catalog
    ids = catalog.chunk_ids_for_files(record.id, [stored.name]).tolist()
    rows = sorted(catalog.get_chunks(ids).values(), key=lambda row: row.chunk.position)
    return FileChunks(
        kb=name,
        file=stored.name,
        status=stored.status,
        error=stored.error,
        total=len(rows),
        offset=offset,
        chunks=[
            ChunkInfo(
                id=row.id,
                position=row.chunk.position,
                text=row.chunk.text,
                page=row.chunk.page,
                sheet=row.chunk.sheet,
                slide=row.chunk.slide,
                headings=list(row.chunk.headings),
            )
            for row in rows[offset : offset + limit]
        ],
    )


@router.get("/api/kbs/{name}/text/{file:path}", responses=documented(401, 404, 422))
def text(name: KBNameInPath, file: str, state: StateDep, caller: CallerDep) -> FileText:
    """The file's text as its loader reads it now: the whole text, or one part per page,
    sheet or slide. Images are not read again (no OCR here): their chunks hold the text."""
    record, stored = _file(state, caller, name, file, "read")
    path = _original_path(record, stored)
    if PurePosixPath(stored.name).suffix.lower() in _IMAGES:
        raise BadInput(f"{stored.name}: an image has no text of its own; list its chunks instead")
    ingest = state.settings.ingest
    limits = LoadLimits(
        max_file_bytes=int(ingest.max_file_mb * 2**20),
        max_unpacked_bytes=int(ingest.max_unpacked_mb * 2**20),
        ocr=None,
    )
    documents = load_file(path, source=stored.name, limits=limits)
    return FileText(
        kb=name,
        file=stored.name,
        content_type=content_type(stored.name),
        changed=bool(stored.sha256) and file_sha256(path) != stored.sha256,
        documents=[
            DocumentText(text=d.text, page=d.page, sheet=d.sheet, slide=d.slide) for d in documents
        ],
    )


@router.post(
    "/api/kbs/{name}/retry/{file:path}",
    status_code=202,
    responses=documented(401, 403, 404, 409, 422, 503),
)
def retry(name: KBNameInPath, file: str, state: StateDep, caller: CallerDep) -> JobAccepted:
    """Read a failed file again from its kept copy, in a background job (202 with the job).

    409 if the file did not fail or no copy of it was kept (a refused upload: upload it
    again); 404 if the kept copy is gone.
    """
    record, stored = _file(state, caller, name, file, "write")
    if stored.status != "failed":
        raise Conflict(
            f"{stored.name} is {stored.status}, not failed; only a failed file can be retried"
        )
    if not stored.path:  # refused when uploaded: nothing was kept to read again
        why = f" ({stored.error})" if stored.error else ""
        raise Conflict(
            f"{stored.name} was refused when it was uploaded{why}, so no copy was kept to "
            "retry: upload it again (with overwrite=true to replace this entry)"
        )
    path = _original_path(record, stored)
    tasks = add_tasks(
        [(stored.name, path, stored.sha256)],
        shared=state.settings.uploads_in_database,
        force=True,
    )
    return JobAccepted(job=job_info(state.jobs.submit(name, "add", tasks)))


def _file(
    state: ServerState, caller: Principal, kb: str, file: str, role: Role
) -> tuple[KBRecord, FileRecord]:
    """The knowledge base and its file ``file``, if ``caller`` has ``role`` on the KB.

    Raises:
        NotFound: no such knowledge base (or one the caller may not read), or no such file.
        Forbidden: the caller may read the knowledge base but lacks ``role``.
    """
    record = find_kb(state, caller, kb, role)
    stored = state.services.library.catalog.require_file(record.id, kb, file)
    return record, stored


def _original_path(record: KBRecord, stored: FileRecord) -> Path:
    """The regular file the catalog recorded for ``stored``.

    Raises:
        NotFound: no copy was kept (a refused upload, a skipped file), or it is gone or is
            no longer a regular file; the message names the file.
    """
    if stored.status == "skipped" or not stored.path:
        why = f" ({stored.error})" if stored.error else ""
        raise NotFound(
            f"{stored.name}: knowledge base {record.name!r} keeps no copy of this file, "
            f"it was {stored.status} when added{why}"
        )
    path = source_path(stored.path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is None or not stat.S_ISREG(mode):
        raise NotFound(
            f"{stored.name}: the original is gone from {stored.path} (moved or deleted since "
            f"it was added to knowledge base {record.name!r}); add it again or remove it"
        )
    return path


def _is_utf8(path: Path) -> bool:
    """Whether the start of a text file decodes as UTF-8 (a cut last character allowed)."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return len(head) == _SNIFF_BYTES and exc.start >= len(head) - 3
    return True
