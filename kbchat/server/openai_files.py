"""The OpenAI Files API (``/v1/files``): upload, list, get and delete files.

A chat message refers to an uploaded file by id with a file content part,
``{"type": "file", "file": {"file_id": "file-..."}}``, as OpenAI's API defines it; the file
is then read into the conversation's temporary knowledge base like one sent inline
(``kbchat.server.files_api``). Each API key sees only its own files.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from kbchat.server.auth import Principal
from kbchat.server.errors import PayloadTooLarge, documented
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.store.uploaded_files import UploadedFile, UploadedFileStore

router = APIRouter(prefix="/v1", tags=["openai"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]
Purpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
"""The purposes OpenAI's Files API accepts; kbchat reads any of them in chat."""


class FileObject(BaseModel):
    """An uploaded file, in OpenAI's shape."""

    id: str = Field(description="Refer to the file by this id in a chat message's file part.")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int = Field(description="Unix seconds.")
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    expires_at: int | None = None


class FileList(BaseModel):
    """A page of the caller's files."""

    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


def uploaded_files(state: ServerState) -> UploadedFileStore:
    """The server's store of uploaded files (``<home>/files``)."""
    return UploadedFileStore(state.services.library.catalog.engine, state.settings.home / "files")


@router.post("/files", responses=documented(400, 401, 413, 422, openai=True))
async def create_file(
    file: Annotated[UploadFile, File(description="The file.")],
    purpose: Annotated[Purpose, Form(description="What the file is for (any is read in chat).")],
    state: StateDep,
    caller: CallerDep,
) -> FileObject:
    """Upload a file; refer to its id from a chat message's file content part."""
    limit = int(state.settings.server.max_upload_mb * 2**20)
    data = await file.read(limit + 1)
    name = file.filename or "upload"
    if len(data) > limit:
        raise PayloadTooLarge(
            f"{name}: over the {limit / 2**20:g} MB upload limit (server.max_upload_mb)"
        )
    return _shown(uploaded_files(state).add(caller.name, name, purpose, data))


@router.get("/files", responses=documented(400, 401, 404, 422, openai=True))
def list_files(
    state: StateDep,
    caller: CallerDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> FileList:
    """The caller's files, newest first (``order=asc``: oldest); ``after`` pages on."""
    found = uploaded_files(state).list(
        caller.name, purpose=purpose, limit=limit + 1, after=after, order=order
    )
    page = [_shown(f) for f in found[:limit]]
    return FileList(
        data=page,
        first_id=page[0].id if page else None,
        last_id=page[-1].id if page else None,
        has_more=len(found) > limit,
    )


@router.get("/files/{file_id}", responses=documented(401, 404, openai=True))
def get_file(file_id: str, state: StateDep, caller: CallerDep) -> FileObject:
    """One of the caller's files."""
    return _shown(uploaded_files(state).get(caller.name, file_id))


@router.delete("/files/{file_id}", responses=documented(401, 404, openai=True))
def delete_file(file_id: str, state: StateDep, caller: CallerDep) -> FileDeleted:
    """Delete one of the caller's files."""
    uploaded_files(state).delete(caller.name, file_id)
    return FileDeleted(id=file_id)


def _shown(record: UploadedFile) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=int(record.created_at),
        filename=record.filename,
        purpose=record.purpose,
    )
