"""Files attached to a conversation: upload (ingested in a background job), list, remove.

The files go into the conversation's temporary knowledge base (``chat.files``); an answer
in that conversation (``/api/chat`` with its ``conversation_id``) searches them too.
Attaching files to a conversation id that does not exist yet starts that conversation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Response, UploadFile

from kbchat.chat.files import answer_sources
from kbchat.chat.overview import overview_answer, overview_source
from kbchat.chat.rag import ChatEvent, ChatOptions, stream_answer
from kbchat.errors import BadInput, NotFound
from kbchat.kb.knowledge_base import FileOutcome
from kbchat.kb.worker import attach_task
from kbchat.options import summary_options
from kbchat.server.auth import Principal
from kbchat.server.errors import PayloadTooLarge, documented
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.server.uploads import accept_upload
from kbchat.shapes.kb import AttachAccepted, AttachedFiles, JobInfo, file_info, job_info
from kbchat.store.conversations import ConversationStore
from kbchat.types import Message

router = APIRouter(tags=["conversations"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]
_DATA_URL = re.compile(r"^data:([\w.+\-/]*)(;[\w\-]+=[^;,]*)*;base64,", re.ASCII)


@router.post(
    "/api/conversations/{conversation_id}/files",
    status_code=202,
    responses=documented(401, 404, 413, 422, 503),
)
def attach_files(
    conversation_id: str,
    files: Annotated[list[UploadFile], File(description="Files to attach.")],
    state: StateDep,
    caller: CallerDep,
) -> AttachAccepted:
    """Attach files to a conversation; they are ingested in a background job (202).

    Follow the job's progress (per file) with ``GET /api/conversations/{id}/files``.
    """
    _check_conversation_id(conversation_id)
    limits = state.settings.server
    if len(files) > limits.max_upload_files:
        raise PayloadTooLarge(
            f"{len(files)} files in one upload; the limit is "
            f"{limits.max_upload_files} (server.max_upload_files)"
        )
    max_bytes = int(limits.max_upload_mb * 2**20)
    uploads = [(upload.filename or "upload", upload.file) for upload in files]
    job = _ingest(state, conversation_id, caller.name, uploads, max_bytes)
    return AttachAccepted(conversation_id=conversation_id, job=job)


@router.get("/api/conversations/{conversation_id}/files", responses=documented(401, 404))
def list_attached(conversation_id: str, state: StateDep, caller: CallerDep) -> AttachedFiles:
    """The conversation's files (status, error, chunks) and its attach jobs, newest first."""
    chats = state.services.file_chats()
    kb = chats.find(conversation_id, caller.name)
    if kb is None:
        return AttachedFiles(conversation_id=conversation_id, files=[], jobs=[])
    return AttachedFiles(
        conversation_id=conversation_id,
        files=[file_info(record) for record in kb.files()],
        jobs=[job_info(job) for job in state.jobs.list_jobs(kb.name)],
    )


@router.delete(
    "/api/conversations/{conversation_id}/files",
    status_code=204,
    responses=documented(401, 404, 422),
)
def remove_attached(conversation_id: str, state: StateDep, caller: CallerDep) -> Response:
    """Remove every file of a conversation (404 if it has none)."""
    chats = state.services.file_chats()
    kb = chats.find(conversation_id, caller.name)
    if kb is None:
        raise NotFound(f"conversation {conversation_id!r} has no attached files")
    _refuse_while_running(state, kb.name)
    chats.delete(conversation_id, caller.name)
    return Response(status_code=204)


def delete_conversation_files(state: ServerState, conversation_id: str, owner: str | None) -> None:
    """Drop a deleted conversation's files (nothing if it had none)."""
    chats = state.services.file_chats()
    kb = chats.find(conversation_id, owner)
    if kb is not None:
        _refuse_while_running(state, kb.name)
        chats.delete(conversation_id, owner)


def _refuse_while_running(state: ServerState, kb_name: str) -> None:
    if active := state.jobs.active(kb_name):
        raise BadInput(
            f"files are still being attached (job {', '.join(j.id for j in active)}); "
            "try again when the job is done"
        )


def _check_conversation_id(conversation_id: str) -> None:
    if not 1 <= len(conversation_id) <= 64:
        raise BadInput(f"conversation id must be 1-64 characters, got {len(conversation_id)}")


def _ingest(
    state: ServerState,
    conversation_id: str,
    owner: str | None,
    uploads: list[tuple[str, Any]],
    max_bytes: int,
) -> JobInfo:
    """Save ``uploads`` (name, stream) and queue their ingestion; returns the job."""
    chats = state.services.file_chats()
    chats.expire()
    kb = chats.open(conversation_id, owner)
    _start_conversation(state.conversations, conversation_id, owner, uploads, state)
    folder = chats.folder(conversation_id, owner)
    saved: dict[str, Path] = {}
    refused: list[FileOutcome] = []
    for raw, stream in uploads:
        target, problem = accept_upload(raw, stream, folder, saved, max_bytes)
        if problem is not None:
            refused.append(problem)
        elif target is not None:
            saved[target.name] = target
    paths = list(saved.values())

    tasks = [attach_task(conversation_id, owner, paths)] if paths else []
    return job_info(state.jobs.submit(kb.name, "attach", tasks, outcomes=refused))


def _start_conversation(
    store: ConversationStore,
    conversation_id: str,
    owner: str | None,
    uploads: list[tuple[str, Any]],
    state: ServerState,
) -> None:
    try:
        store.get(conversation_id, owner)
    except NotFound:
        title = ", ".join(name for name, _ in uploads)
        store.append(
            conversation_id, owner, [], kbs=[], model=state.settings.default_model, title=title
        )


# -- OpenAI file content parts -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file sent inside a chat message: its name and its bytes."""

    filename: str
    data: bytes


def take_file_parts(
    contents: list[Any],
    max_bytes: int,
    uploaded: Callable[[str], FilePart] | None = None,
) -> list[FilePart]:
    """Remove OpenAI ``{"type": "file", "file": {"filename", "file_data"}}`` parts.

    ``contents`` are the messages' contents (str or list of parts); file parts are taken
    out of the lists in place, so what remains is text. ``file_data`` is a base64 data
    URL (``data:application/pdf;base64,...``) or plain base64; a ``file_id`` (a file
    uploaded to ``/v1/files``) is read with ``uploaded``.

    Raises:
        BadInput: a file part without filename or data, a ``file_id`` where there are
            no uploaded files, or data that is not base64.
        NotFound: an unknown ``file_id``.
        PayloadTooLarge: a file over ``max_bytes`` once decoded.
    """
    found: list[FilePart] = []
    for content in contents:
        if not isinstance(content, list):
            continue
        kept = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "file":
                found.append(_file_part(part.get("file"), max_bytes, uploaded))
            else:
                kept.append(part)
        content[:] = kept
    return found


def _file_part(value: Any, max_bytes: int, uploaded: Callable[[str], FilePart] | None) -> FilePart:
    if not isinstance(value, dict):
        raise BadInput(
            "a file message part needs a 'file' object with filename and file_data, or file_id"
        )
    file_id = value.get("file_id")
    if file_id is not None and not value.get("file_data"):
        if not isinstance(file_id, str) or not file_id:
            raise BadInput("file.file_id must be the id of an uploaded file (file-...)")
        if uploaded is None:
            raise BadInput("file parts by file_id are not accepted here; send file_data")
        return uploaded(file_id)
    filename, data = value.get("filename"), value.get("file_data")
    if not isinstance(filename, str) or not filename.strip():
        raise BadInput("a file message part needs file.filename")
    if not isinstance(data, str) or not data:
        raise BadInput(f"{filename}: the file part has no file_data")
    encoded = data[match.end() :] if (match := _DATA_URL.match(data)) else data
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(
            f"{filename}: over the {max_bytes / 2**20:g} MB upload limit (server.max_upload_mb)"
        )
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"{filename}: file_data is not base64 (or a base64 data URL)") from None
    return FilePart(filename, raw)


def attach_file_parts(
    state: ServerState, parts: list[FilePart], owner: str | None
) -> tuple[str, list[FileOutcome]]:
    """Ingest file parts into a temporary knowledge base and wait for them.

    The same files (names and bytes) from the same caller reuse one knowledge base, so a
    client that resends them with every turn pays for ingesting them once.

    Returns:
        The conversation key of the files, and the outcome of each file.

    Raises:
        BadInput: a file could not be read (the message names each file and why).
    """
    digest = hashlib.blake2b(digest_size=12)
    for part in sorted(parts, key=lambda p: p.filename):
        digest.update(part.filename.encode() + b"\0" + hashlib.sha256(part.data).digest())
    key = f"openai-{digest.hexdigest()}"
    max_bytes = int(state.settings.server.max_upload_mb * 2**20)
    chats = state.services.file_chats()
    chats.expire()
    folder = chats.folder(key, owner)
    saved: dict[str, Path] = {}
    outcomes: list[FileOutcome] = []
    for part in parts:
        target, problem = accept_upload(
            part.filename, io.BytesIO(part.data), folder, saved, max_bytes
        )
        if problem is not None:
            outcomes.append(problem)
        elif target is not None:
            saved[target.name] = target
    if saved:
        outcomes += chats.attach(key, owner, list(saved.values()))
    failed = [o for o in outcomes if o.status in ("failed", "skipped")]
    if failed:
        raise BadInput("; ".join(o.error or f"{o.name}: {o.status}" for o in failed))
    return key, outcomes


def file_answer(
    state: ServerState,
    caller: Principal,
    parts: list[FilePart],
    *,
    model_name: str,
    kb_names: list[str],
    messages: list[Message],
    options: ChatOptions,
) -> Callable[[threading.Event], Iterator[ChatEvent]]:
    """Attach ``parts`` and return the answer to the last user message, from them (and KBs).

    Raises:
        BadInput: a file could not be read, or the last message is not the user's.
        NotFound, Forbidden: an unknown model or knowledge base, or one the caller may not read.
    """
    if messages[-1].role != "user":
        raise BadInput("the last message must be the user's question")
    for name in kb_names:
        caller.require(name, "read")
    services = state.services
    model = services.models.get(model_name)
    kbs = [services.library.get(name) for name in kb_names]
    key, _ = attach_file_parts(state, parts, caller.name)
    files_kb = services.file_chats().find(key, caller.name)
    sources, options = answer_sources(
        kbs, files_kb, model, options, whole_tokens=state.settings.files.whole_file_tokens
    )
    history = [m for m in messages[:-1] if m.role in ("user", "assistant")]
    reranker = services.reranker()

    question = messages[-1].content
    summarised = overview_source(sources, question)
    summary = summary_options(state.settings, model=model_name)

    def run(cancel: threading.Event) -> Iterator[ChatEvent]:
        if summarised is not None:
            return overview_answer(model, summarised, question, options=summary, cancel=cancel)
        return stream_answer(
            model,
            sources,
            messages[-1].content,
            history=history,
            options=options,
            reranker=reranker,
            cancel=cancel,
        )

    return run
