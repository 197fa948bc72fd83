"""Knowledge-base endpoints: KBs, their files and uploads, write jobs, and search."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kbchat.chat.summaries import SummaryStore
from kbchat.errors import BadInput, Conflict, KbchatError, NotFound
from kbchat.kb.cancel import cancel_job as cancel
from kbchat.kb.jobs import Job
from kbchat.kb.knowledge_base import FileOutcome
from kbchat.kb.originals import save_blob
from kbchat.kb.worker import add_tasks, rebuild_task, remove_task, sync_task
from kbchat.options import (
    ChunkOverlap,
    ChunkSize,
    SearchMode,
    Threshold,
    TopK,
    search_options,
)
from kbchat.retrieve.search import retrieve
from kbchat.server.auth import Principal
from kbchat.server.errors import Forbidden, PayloadTooLarge, documented, error_body
from kbchat.server.schemas import KBName, KBNameInPath, KBNameInQuery
from kbchat.server.sse import KEEP_ALIVE, SSE_HEADERS, sse_event
from kbchat.server.state import ServerState, current_principal, find_kb, get_state
from kbchat.server.uploads import (
    place_uploads,
    safe_path,
    stage_uploads,
    supported_types,
    unsupported_reason,
    uploads_dir,
)
from kbchat.shapes.kb import (
    FileListing,
    JobAccepted,
    JobInfo,
    KBDetail,
    KBListing,
    MigrationInfo,
    SearchResult,
    file_listing,
    hit_info,
    job_info,
    kb_listing,
    migration_info,
)

router = APIRouter(tags=["knowledge bases"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]
_KEEP_ALIVE_S = 15.0
_POLL_S = 0.5
"""How often a job's event stream looks for changes made by workers in other processes."""


class CreateKB(BaseModel):
    """A new knowledge base; unset options take the configured defaults."""

    model_config = ConfigDict(strict=True)

    name: KBName
    embedder: str | None = Field(None, max_length=64, description="Embedder backend name.")
    chunk_size: ChunkSize | None = None
    chunk_overlap: ChunkOverlap | None = None
    description: str = Field("", max_length=2000)
    store: str | None = Field(None, max_length=64, description="Vector store backend name.")


class MigrateRequest(BaseModel):
    """Move a knowledge base's vectors to another store backend (``kbchat kb migrate``)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    to: str = Field(..., min_length=1, max_length=64, description="Vector store backend name.")


class SyncRequest(BaseModel):
    """Re-scan the KB's uploads folder, or a server-side folder allowed by server.sync_folders."""

    folder: str | None = Field(None, max_length=4096)


class SearchRequest(BaseModel):
    """A search over one or more knowledge bases; unset options take the configured defaults."""

    model_config = ConfigDict(strict=True)

    kbs: list[KBName] = Field(..., min_length=1, max_length=20)
    query: str = Field(..., min_length=1, max_length=20_000)
    top_k: TopK | None = None
    mode: SearchMode | None = None
    threshold: Threshold | None = None
    files: list[str] | None = Field(None, max_length=100, description="File name globs.")
    file_types: list[str] | None = Field(None, max_length=50, description="Extensions.")
    pages: tuple[Annotated[StrictInt, Field(ge=1)], Annotated[StrictInt, Field(ge=1)]] | None = None


# -- knowledge bases -----------------------------------------------------------------


@router.get("/api/kbs", responses=documented(401))
def list_kbs(state: StateDep, caller: CallerDep) -> list[KBListing]:
    """Every knowledge base the caller may read, with file and chunk counts."""
    catalog = state.services.library.catalog
    return [
        kb_listing(record, catalog.kb_stats(record.id))
        for record in catalog.list_kbs()
        if caller.can(record.name, "read")
    ]


@router.post("/api/kbs", status_code=201, responses=documented(400, 401, 403, 409, 413, 422))
def create_kb(body: CreateKB, state: StateDep, caller: CallerDep) -> KBListing:
    """Create an empty knowledge base (409 if the name is taken)."""
    if not caller.can(body.name, "admin"):
        raise caller.forbidden(body.name, "admin")
    library = state.services.library
    try:
        record = library.create(
            body.name,
            embedder=body.embedder,
            chunk_size=body.chunk_size,
            chunk_overlap=body.chunk_overlap,
            description=body.description,
            store=body.store,
        )
    except (TypeError, ValueError) as exc:  # an embedder backend refusing its settings
        raise BadInput(
            f"cannot create {body.name!r} with embedder {body.embedder!r}: {exc}"
        ) from exc
    return kb_listing(record, library.catalog.kb_stats(record.id))


@router.get("/api/kbs/{name}", responses=documented(401, 404, 422))
def get_kb(name: KBNameInPath, state: StateDep, caller: CallerDep) -> KBDetail:
    record = find_kb(state, caller, name, "read")
    catalog = state.services.library.catalog
    listing = kb_listing(record, catalog.kb_stats(record.id))
    return KBDetail(**listing.model_dump(), jobs=[job.id for job in state.jobs.active(name)])


@router.delete("/api/kbs/{name}", status_code=204, responses=documented(401, 403, 404, 409, 422))
def delete_kb(name: KBNameInPath, state: StateDep, caller: CallerDep) -> Response:
    """Delete a knowledge base, its indexes and its uploaded files (409 while jobs run)."""
    find_kb(state, caller, name, "admin")
    library = state.services.library
    if active := state.jobs.active(name):
        raise Conflict(
            f"knowledge base {name!r} has {len(active)} job(s) queued or running "
            f"({', '.join(j.id for j in active)}); delete it when they finish"
        )
    library.drop(name)  # with its uploads
    return Response(status_code=204)


@router.post(
    "/api/kbs/{name}/migrate", responses=documented(400, 401, 403, 404, 409, 413, 422, 502)
)
def migrate_kb(
    name: KBNameInPath, body: MigrateRequest, state: StateDep, caller: CallerDep
) -> MigrationInfo:
    """Copy the vectors to another store without re-embedding, verify, then switch to it.

    Answers when done; on any failure the knowledge base stays on its store (409 while jobs
    run or another process writes to it, 502 when a store cannot be reached or the copy does
    not verify).
    """
    from kbchat.kb.migrate import migrate

    find_kb(state, caller, name, "admin")
    if active := state.jobs.active(name):
        raise Conflict(
            f"knowledge base {name!r} has {len(active)} job(s) queued or running "
            f"({', '.join(j.id for j in active)}); migrate it when they finish"
        )
    return migration_info(migrate(state.services.library, name, body.to))


# -- files ---------------------------------------------------------------------------


@router.get("/api/kbs/{name}/files", responses=documented(401, 404, 422))
def list_files(name: KBNameInPath, state: StateDep, caller: CallerDep) -> list[FileListing]:
    record = find_kb(state, caller, name, "read")
    catalog = state.services.library.catalog
    records = catalog.list_files(record.id)
    kept = SummaryStore(catalog.engine).for_files(record.id, records)
    return [file_listing(r, s.text if (s := kept.get(r.name)) else None) for r in records]


@router.post(
    "/api/kbs/{name}/files",
    status_code=202,
    responses=documented(401, 403, 404, 409, 413, 422, 503),
)
def upload_files(
    name: KBNameInPath,
    files: Annotated[
        list[UploadFile],
        File(
            min_length=1,
            description="Files to add. A file name may carry its folders (a folder upload's "
            "relative path, e.g. `北京分公司/考勤 制度.txt`); they are kept.",
        ),
    ],
    state: StateDep,
    caller: CallerDep,
    overwrite: Annotated[
        bool,
        Query(
            description="Replace files of the same names whose content differs; without it "
            "such an upload is refused with 409 and nothing is saved."
        ),
    ] = False,
) -> JobAccepted:
    """Save uploaded files and ingest them in a background job (202 with the job).

    An upload of only unsupported file types is refused (422, naming the files and the
    supported types); unsupported files among others are listed as skipped. A file that
    replaces another (``overwrite``) is put in place only when its ingest commits."""
    record = find_kb(state, caller, name, "write")
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
    _refuse_unsupported(files)
    catalog = state.services.library.catalog
    folder = uploads_dir(state.settings, record.id)
    exclude = state.settings.ingest.exclude
    staged, refused = stage_uploads(files, folder, max_bytes, exclude)
    waiting = place_uploads(  # replacements wait staged until their ingest commits
        staged, lambda file: catalog.get_file(record.id, file), kb=name, replace=overwrite
    )
    catalog.mark_pending(record.id, [(s.name, str(s.target), s.size) for s in staged])
    placed = {s.name for s in staged}
    for outcome in _catalogued(refused, placed):  # listed with their reason, as `kb add` does
        catalog.set_file_status(
            record.id,
            outcome.name,
            path="",
            status="skipped" if outcome.status == "skipped" else "failed",
            error=outcome.error,
            size=outcome.size,
        )
    shared = state.settings.uploads_in_database
    if shared:
        for placed_upload in staged:
            bytes_at = waiting.get(placed_upload.name, placed_upload.target)
            save_blob(catalog, bytes_at, placed_upload.sha256)
    found = [(s.name, s.target, s.sha256) for s in staged]
    tasks = add_tasks(found, shared=shared, staged=waiting)
    return JobAccepted(job=job_info(state.jobs.submit(name, "add", tasks, outcomes=refused)))


def _refuse_unsupported(files: list[UploadFile]) -> None:
    """An upload of nothing but unsupported file types is refused before anything is saved
    (an upload that mixes them in is accepted: they are listed as skipped)."""
    reasons = [unsupported_reason(upload.filename or "upload") for upload in files]
    if not all(reasons):
        return
    names = ", ".join(repr(upload.filename or "upload") for upload in files[:5])
    more = f" and {len(files) - 5} more" if len(files) > 5 else ""
    raise BadInput(
        f"nothing to index: {names}{more} {'is not a' if len(files) == 1 else 'are not'} "
        f"supported file type{'' if len(files) == 1 else 's'}; nothing was saved. "
        f"Supported types: {supported_types()}",
        param="files",
    )


def _catalogued(refused: list[FileOutcome], placed: set[str]) -> list[FileOutcome]:
    """The refused uploads the file list shows: failed ones, and unsupported types (skipped).

    Left out, as ``kb add`` leaves them out: files an exclude pattern skipped, and names
    with nothing usable (they name no file the knowledge base could hold); and the twin of
    a file placed by the same request (it is being indexed).
    """
    kept = []
    for outcome in refused:
        if outcome.name in placed:
            continue
        try:
            usable = safe_path(outcome.name) == outcome.name
        except BadInput:
            usable = False
        unsupported = outcome.error == unsupported_reason(outcome.name)
        if usable and (outcome.status == "failed" or unsupported):
            kept.append(outcome)
    return kept


@router.delete(
    "/api/kbs/{name}/files/{file:path}",
    status_code=202,
    responses=documented(401, 403, 404, 422, 503),
)
def delete_file(name: KBNameInPath, file: str, state: StateDep, caller: CallerDep) -> JobAccepted:
    """Remove a file and its chunks in a background job (its uploaded copy goes too)."""
    record = find_kb(state, caller, name, "write")
    catalog = state.services.library.catalog
    stored = catalog.require_file(record.id, name, file)
    task = remove_task(file, stored.path, stored.sha256)
    return JobAccepted(job=job_info(state.jobs.submit(name, "remove", [task])))


@router.post(
    "/api/kbs/{name}/sync", status_code=202, responses=documented(401, 403, 404, 413, 422, 503)
)
def sync_kb(
    name: KBNameInPath, state: StateDep, caller: CallerDep, body: SyncRequest | None = None
) -> JobAccepted:
    """Make the KB match its uploads folder (or an allowed server folder), in a job."""
    record = find_kb(state, caller, name, "write")
    folder = None
    if body is not None and body.folder:
        folder = _allowed_folder(state, body.folder)
    else:
        uploads_dir(state.settings, record.id).mkdir(parents=True, exist_ok=True)
    task = sync_task(folder, state.settings.ingest.exclude)
    return JobAccepted(job=job_info(state.jobs.submit(name, "sync", [task])))


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


@router.post(
    "/api/kbs/{name}/rebuild", status_code=202, responses=documented(401, 403, 404, 422, 503)
)
def rebuild_kb(name: KBNameInPath, state: StateDep, caller: CallerDep) -> JobAccepted:
    """Rebuild the indexes and re-read every file, in a background job."""
    find_kb(state, caller, name, "write")
    return JobAccepted(job=job_info(state.jobs.submit(name, "rebuild", [rebuild_task()])))


# -- jobs ----------------------------------------------------------------------------


@router.get("/api/jobs", tags=["jobs"], responses=documented(401, 422))
def list_jobs(state: StateDep, caller: CallerDep, kb: KBNameInQuery = None) -> list[JobInfo]:
    """Recent jobs (newest first), optionally of one knowledge base."""
    return [job_info(job) for job in state.jobs.list_jobs(kb) if caller.can(job.kb, "read")]


@router.get("/api/jobs/{job_id}", tags=["jobs"], responses=documented(401, 404))
def get_job(job_id: str, state: StateDep, caller: CallerDep) -> JobInfo:
    return job_info(_readable_job(state, caller, job_id))


@router.delete(
    "/api/jobs/{job_id}",
    status_code=202,
    tags=["jobs"],
    responses=documented(401, 403, 404, 409),
)
def cancel_job(job_id: str, state: StateDep, caller: CallerDep) -> JobInfo:
    """Cancel a write job (202 with the job; 409 if it has already finished).

    Files not started are left out at once; the file a worker is embedding is abandoned at
    its next embedding batch and left as it was (an indexed version is kept, a new file is
    not added); files already finished stay. The job ends ``cancelled``, its files saying
    which were cancelled; until its worker stops it may still show ``running``.
    """
    job = _readable_job(state, caller, job_id)
    caller.require(job.kb, "write")
    reason = f"cancelled by {caller.name}" if caller.name else "cancelled"
    return job_info(cancel(state.services.library, state.jobs, job_id, reason))


@router.get(
    "/api/jobs/{job_id}/events",
    tags=["jobs"],
    responses={
        200: {"description": "SSE events progress, done (or error)"},
        **documented(401, 404),
    },
)
async def job_events(job_id: str, state: StateDep, caller: CallerDep) -> StreamingResponse:
    """Server-sent events: ``progress`` (the job) on every change, then one ``done``."""
    _readable_job(state, caller, job_id)
    return StreamingResponse(
        _job_stream(state, job_id), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _readable_job(state: ServerState, caller: Principal, job_id: str) -> Job:
    """The job, unless the caller may not read its KB: then the same 404 as for no such job."""
    job = state.jobs.get(job_id)
    if not caller.can(job.kb, "read"):
        raise NotFound(f"no job with id {job_id!r}")
    return job


async def _job_stream(state: ServerState, job_id: str) -> AsyncIterator[str]:
    """``progress`` on each change of the job: woken at once by this process's workers, and
    polling every ``_POLL_S`` for workers elsewhere."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody listens
            loop.call_soon_threadsafe(changed.set)

    stop = state.jobs.observe(wake)
    last_version = -1
    quiet_since = time.monotonic()
    try:
        while True:
            changed.clear()
            try:
                body, version, finished = await run_in_threadpool(state.jobs.snapshot, job_id)
            except KbchatError as exc:
                yield sse_event("error", error_body(exc))
                return
            if finished:
                yield sse_event("done", body)
                return
            if version != last_version:
                yield sse_event("progress", body)
                last_version = version
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= _KEEP_ALIVE_S:
                yield KEEP_ALIVE
                quiet_since = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), _POLL_S)
    finally:
        stop()


# -- search --------------------------------------------------------------------------


@router.post("/api/search", tags=["search"], responses=documented(401, 404, 413, 422, 502))
def search(body: SearchRequest, state: StateDep, caller: CallerDep) -> SearchResult:
    """Hybrid search over knowledge bases: hits best first, scores in [0, 1]."""
    names = list(dict.fromkeys(body.kbs))
    for name in names:
        find_kb(state, caller, name, "read")
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
    return SearchResult(
        hits=[hit_info(h) for h in result.hits],
        notices=result.notices,
        timings_ms={k: round(v, 2) for k, v in result.timings_ms.items()},
    )
