"""Knowledge-base endpoints: KBs, their files and uploads, write jobs, and search."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from kbchat.chat.summaries import SummaryStore
from kbchat.errors import BadInput, Conflict, KbchatError, NotFound
from kbchat.kb import FileOutcome, IngestListener
from kbchat.options import search_options
from kbchat.retrieve import retrieve
from kbchat.serialize import file_json, hit_json, kb_json
from kbchat.server.auth import Principal
from kbchat.server.errors import Forbidden, PayloadTooLarge, error_body
from kbchat.server.sse import KEEP_ALIVE, SSE_HEADERS, sse_event
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.server.uploads import accept_upload, remove_uploads, uploads_dir

router = APIRouter(tags=["knowledge bases"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]
KBName = Annotated[str, Field(min_length=1, max_length=64)]
_JOB_POLL_S = 0.2
_KEEP_ALIVE_S = 15.0


class CreateKB(BaseModel):
    """A new knowledge base; unset options take the configured defaults."""

    name: KBName
    embedder: str | None = Field(None, max_length=64, description="Embedder backend name.")
    chunk_size: int | None = Field(None, gt=20, le=100_000)
    chunk_overlap: int | None = Field(None, ge=0, le=100_000)
    description: str = Field("", max_length=2000)


class SyncRequest(BaseModel):
    """Re-scan the KB's uploads folder, or a server-side folder allowed by server.sync_folders."""

    folder: str | None = Field(None, max_length=4096)


class SearchRequest(BaseModel):
    """A search over one or more knowledge bases; unset options take the configured defaults."""

    kbs: list[KBName] = Field(..., min_length=1, max_length=20)
    query: str = Field(..., min_length=1, max_length=20_000)
    top_k: int | None = Field(None, ge=1, le=100)
    mode: Literal["hybrid", "dense", "bm25"] | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    files: list[str] | None = Field(None, max_length=100, description="File name globs.")
    file_types: list[str] | None = Field(None, max_length=50, description="Extensions.")
    pages: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None = None


# -- knowledge bases -----------------------------------------------------------------


@router.get("/api/kbs")
def list_kbs(state: StateDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Every knowledge base the caller may read, with file and chunk counts."""
    catalog = state.services.library.catalog
    return [
        kb_json(record, catalog.kb_stats(record.id))
        for record in catalog.list_kbs()
        if caller.can(record.name, "read")
    ]


@router.post("/api/kbs", status_code=201)
def create_kb(body: CreateKB, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Create an empty knowledge base (409 if the name is taken)."""
    caller.require(body.name, "admin")
    library = state.services.library
    try:
        record = library.create(
            body.name,
            embedder=body.embedder,
            chunk_size=body.chunk_size,
            chunk_overlap=body.chunk_overlap,
            description=body.description,
        )
    except (TypeError, ValueError) as exc:  # an embedder backend refusing its settings
        raise BadInput(
            f"cannot create {body.name!r} with embedder {body.embedder!r}: {exc}"
        ) from exc
    return kb_json(record, library.catalog.kb_stats(record.id))


@router.get("/api/kbs/{name}")
def get_kb(name: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    caller.require(name, "read")
    catalog = state.services.library.catalog
    record = catalog.get_kb(name)
    value = kb_json(record, catalog.kb_stats(record.id))
    value["jobs"] = [job.id for job in state.jobs.active(name)]
    return value


@router.delete("/api/kbs/{name}", status_code=204)
def delete_kb(name: str, state: StateDep, caller: CallerDep) -> Response:
    """Delete a knowledge base, its indexes and its uploaded files (409 while jobs run)."""
    caller.require(name, "admin")
    library = state.services.library
    record = library.catalog.get_kb(name)
    if active := state.jobs.active(name):
        raise Conflict(
            f"knowledge base {name!r} has {len(active)} job(s) queued or running "
            f"({', '.join(j.id for j in active)}); delete it when they finish"
        )
    library.drop(name)
    remove_uploads(uploads_dir(state.settings, record.id))
    return Response(status_code=204)


# -- files ---------------------------------------------------------------------------


@router.get("/api/kbs/{name}/files")
def list_files(name: str, state: StateDep, caller: CallerDep) -> list[dict[str, Any]]:
    caller.require(name, "read")
    catalog = state.services.library.catalog
    kb_id = catalog.get_kb(name).id
    records = catalog.list_files(kb_id)
    kept = SummaryStore(catalog.engine).for_files(kb_id, records)
    return [
        {**file_json(r), "summary": s.text if (s := kept.get(r.name)) else None} for r in records
    ]


@router.post("/api/kbs/{name}/files", status_code=202)
def upload_files(
    name: str,
    files: Annotated[list[UploadFile], File(description="Files to add.")],
    state: StateDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """Save uploaded files and ingest them in a background job (202 with the job)."""
    caller.require(name, "write")
    record = state.services.library.catalog.get_kb(name)
    limits = state.settings.server
    if len(files) > limits.max_upload_files:
        raise PayloadTooLarge(
            f"{len(files)} files in one upload; the limit is "
            f"{limits.max_upload_files} (server.max_upload_files)"
        )
    max_bytes = int(limits.max_upload_mb * 2**20)
    for upload in files:
        if upload.size is not None and upload.size > max_bytes:
            raise PayloadTooLarge(
                f"{upload.filename}: {upload.size / 2**20:.1f} MB is over the "
                f"{limits.max_upload_mb:g} MB upload limit (server.max_upload_mb)"
            )
    folder = uploads_dir(state.settings, record.id)
    saved: dict[str, Path] = {}
    refused: list[FileOutcome] = []
    for upload in files:
        target, problem = _accept(upload, folder, saved, max_bytes)
        if problem is not None:
            refused.append(problem)
        elif target is not None:
            saved[target.name] = target
    paths = list(saved.values())

    def work(listener: IngestListener) -> list[FileOutcome]:
        kb = state.services.library.get(name)
        return kb.add(paths, listener=listener) if paths else []

    return {"job": state.jobs.submit(name, "add", work, outcomes=refused).to_json()}


def _accept(
    upload: UploadFile, folder: Path, saved: dict[str, Path], max_bytes: int
) -> tuple[Path | None, FileOutcome | None]:
    """Save one upload, or say why it was refused."""
    return accept_upload(upload.filename or "upload", upload.file, folder, saved, max_bytes)


@router.delete("/api/kbs/{name}/files/{file:path}", status_code=202)
def delete_file(name: str, file: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Remove a file and its chunks in a background job (its uploaded copy goes too)."""
    caller.require(name, "write")
    catalog = state.services.library.catalog
    record = catalog.get_kb(name)
    stored = catalog.get_file(record.id, file)
    if stored is None:
        raise NotFound(f"no file named {file!r} in knowledge base {name!r}")
    folder = uploads_dir(state.settings, record.id).resolve()

    def work(listener: IngestListener) -> list[FileOutcome]:
        outcomes = state.services.library.get(name).remove([file], listener=listener)
        copy = Path(stored.path)
        if copy.parent.resolve() == folder:
            copy.unlink(missing_ok=True)
        return outcomes

    return {"job": state.jobs.submit(name, "remove", work).to_json()}


@router.post("/api/kbs/{name}/sync", status_code=202)
def sync_kb(
    name: str, state: StateDep, caller: CallerDep, body: SyncRequest | None = None
) -> dict[str, Any]:
    """Make the KB match its uploads folder (or an allowed server folder), in a job."""
    caller.require(name, "write")
    record = state.services.library.catalog.get_kb(name)
    if body is not None and body.folder:
        folder = _allowed_folder(state, body.folder)
    else:
        folder = uploads_dir(state.settings, record.id)
        folder.mkdir(parents=True, exist_ok=True)
    exclude = list(state.settings.ingest.exclude)

    def work(listener: IngestListener) -> list[FileOutcome]:
        kb = state.services.library.get(name)
        return kb.sync(folder, exclude=exclude, listener=listener)

    return {"job": state.jobs.submit(name, "sync", work).to_json()}


def _allowed_folder(state: ServerState, given: str) -> Path:
    folder = Path(given).expanduser().resolve()
    roots = [Path(r).expanduser().resolve() for r in state.settings.server.sync_folders]
    if not any(folder.is_relative_to(root) for root in roots):
        raise Forbidden(
            f"the server may not read {given!r}: only folders under "
            "server.sync_folders can be synced"
        )
    if not folder.is_dir():
        raise BadInput(f"{given}: not a folder on the server")
    return folder


@router.post("/api/kbs/{name}/rebuild", status_code=202)
def rebuild_kb(name: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Rebuild the indexes and re-read every file, in a background job."""
    caller.require(name, "write")
    state.services.library.catalog.get_kb(name)

    def work(listener: IngestListener) -> list[FileOutcome]:
        return state.services.library.get(name).rebuild(listener=listener)

    return {"job": state.jobs.submit(name, "rebuild", work).to_json()}


# -- jobs ----------------------------------------------------------------------------


@router.get("/api/jobs", tags=["jobs"])
def list_jobs(
    state: StateDep, caller: CallerDep, kb: Annotated[str | None, Query(max_length=64)] = None
) -> list[dict[str, Any]]:
    """Recent jobs (newest first), optionally of one knowledge base."""
    return [job.to_json() for job in state.jobs.list_jobs(kb) if caller.can(job.kb, "read")]


@router.get("/api/jobs/{job_id}", tags=["jobs"])
def get_job(job_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    job = state.jobs.get(job_id)
    caller.require(job.kb, "read")
    return state.jobs.snapshot(job_id)[0]


@router.get("/api/jobs/{job_id}/events", tags=["jobs"])
async def job_events(job_id: str, state: StateDep, caller: CallerDep) -> StreamingResponse:
    """Server-sent events: ``progress`` (the job) on every change, then one ``done``."""
    caller.require(state.jobs.get(job_id).kb, "read")
    return StreamingResponse(
        _job_stream(state, job_id), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _job_stream(state: ServerState, job_id: str) -> AsyncIterator[str]:
    last_version = -1
    last_sent = time.monotonic()
    while True:
        try:
            body, version, finished = state.jobs.snapshot(job_id)
        except KbchatError as exc:
            yield sse_event("error", error_body(exc))
            return
        if finished:
            yield sse_event("done", body)
            return
        if version != last_version:
            yield sse_event("progress", body)
            last_version, last_sent = version, time.monotonic()
        elif time.monotonic() - last_sent > _KEEP_ALIVE_S:
            yield KEEP_ALIVE
            last_sent = time.monotonic()
        await asyncio.sleep(_JOB_POLL_S)


# -- search --------------------------------------------------------------------------


@router.post("/api/search", tags=["search"])
def search(body: SearchRequest, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Hybrid search over knowledge bases: hits best first, scores in [0, 1]."""
    names = list(dict.fromkeys(body.kbs))
    for name in names:
        caller.require(name, "read")
    services = state.services
    kbs = [services.library.get(name) for name in names]
    options = search_options(
        state.settings,
        top_k=body.top_k,
        mode=body.mode,
        threshold=body.threshold,
        files=tuple(body.files or ()),
        file_types=tuple(body.file_types or ()),
        pages=body.pages,
    )
    result = retrieve(kbs, body.query, options, reranker=services.reranker())
    return {
        "hits": [hit_json(h) for h in result.hits],
        "notices": result.notices,
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
    }
