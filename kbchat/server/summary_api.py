"""Summaries of a knowledge base's files, streamed as server-sent events or as a job.

``POST /api/kbs/{kb}/summary`` summarises the named files (default: every indexed file,
then the knowledge base as a whole) under a slot of the model's queue. Kept summaries come back at
once; new ones are stored. Events: ``file`` (a file starts), ``progress`` (the plan with
its expected seconds, then steps), ``delta`` (text), ``summary`` (one file done),
``overview`` (the whole knowledge base), ``done``; or ``error``.

``POST /api/kbs/{kb}/summary/jobs`` does the same in the background (202 with the job and
its expected seconds before anything runs); ``GET .../jobs/{id}`` follows it file by file and
``DELETE .../jobs/{id}`` stops it at its next model step. Each file waits for a slot of the
model's queue like any answer, so a long job does not hold the model away from questions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from kbchat.chat.summaries import SummaryStore, file_record, summarize_file, summarize_overview
from kbchat.chat.summarize import Summary, SummaryEvent
from kbchat.chat.summary_jobs import Slot
from kbchat.chat.summary_steps import Progress
from kbchat.errors import BadInput, KbchatError
from kbchat.options import SummaryStrategy, summary_options
from kbchat.server.auth import Principal
from kbchat.server.chat_api import error_event
from kbchat.server.errors import Busy, Forbidden, documented
from kbchat.server.generation import caller_key, stream_generation
from kbchat.server.generation_queue import GenerationQueue, Ticket
from kbchat.server.schemas import KBNameInPath
from kbchat.server.sse import ThreadedStream, sse_event
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.server.streams import SummariesDone, SummaryDelta, SummaryFile, SummaryProgress
from kbchat.shapes.chat import SummaryJobInfo, file_summary, summary_info, summary_job_info

router = APIRouter(tags=["summaries"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]
log = logging.getLogger(__name__)
Event = tuple[str, BaseModel]


class SummaryRequest(BaseModel):
    """Which files to summarise, and how."""

    files: list[Annotated[str, Field(min_length=1, max_length=1024)]] | None = Field(
        None, max_length=1000, description="File names (default: every indexed file)."
    )
    strategy: SummaryStrategy = "auto"
    refresh: bool = Field(False, description="Summarise again even if a summary is kept.")
    model: str | None = Field(None, max_length=128)


@router.post(
    "/api/kbs/{name}/summary",
    response_model=None,
    responses={
        200: {
            "description": "SSE events file, progress, delta, summary, overview, done (or error)",
            "content": {"text/event-stream": {}},
        },
        **documented(401, 403, 404, 413, 422, 429, 502, 503),
    },
)
async def summarize_kb(
    name: KBNameInPath, body: SummaryRequest, request: Request, state: StateDep, caller: CallerDep
) -> StreamingResponse:
    """Summaries of files (kept until a file changes) and of the knowledge base, streamed."""
    caller.require(name, "read")
    plan = await run_in_threadpool(_plan, state, name, body)
    return await stream_generation(
        request,
        state,
        plan,
        model=body.model,
        caller=caller,
        render=_events,
        render_error=error_event,
    )


def _plan(state: ServerState, name: str, body: SummaryRequest) -> Any:
    services = state.services
    kb = services.library.get(name)
    model = services.models.get(body.model)
    options = summary_options(state.settings, strategy=body.strategy, model=body.model)
    names = body.files or [r.name for r in kb.files() if r.status == "indexed"]
    if not names:
        raise BadInput(f"knowledge base {name!r} has no indexed file to summarise")
    for file in names:
        file_record(kb, file)  # unknown or unindexed files fail before the stream starts
    store = SummaryStore(services.library.catalog.engine)

    def run(cancel: threading.Event) -> Iterator[Event]:
        for file in names:
            yield "file", SummaryFile(file=file)
            events = summarize_file(
                kb, file, model, store, options=options, refresh=body.refresh, cancel=cancel
            )
            summary = yield from _translate(events, file)
            yield "summary", file_summary(file, summary)
        if body.files is None and len(names) > 1:
            events = summarize_overview(
                kb, model, store, options=options, refresh=body.refresh, cancel=cancel
            )
            whole = yield from _translate(events, None)
            yield "overview", summary_info(whole)
        yield "done", SummariesDone(files=len(names))

    return run


def _translate(events: Iterator[SummaryEvent], file: str | None) -> Generator[Event, None, Summary]:
    """Summary events as SSE (name, data); returns the Summary."""
    for event in events:
        if isinstance(event, Summary):
            return event
        if isinstance(event, Progress):
            yield (
                "progress",
                SummaryProgress(
                    file=file,
                    stage=event.stage,
                    done=event.done,
                    total=event.total,
                    message=event.message,
                    estimated_s=round(event.estimated_s, 1),
                ),
            )
        else:
            yield "delta", SummaryDelta(file=file, text=event)
    raise KbchatError("the summary ended without a result")


async def _events(stream: ThreadedStream[Event], first: Event | None) -> AsyncIterator[str]:
    item = first
    try:
        while item is not None:
            yield sse_event(*item)
            item = await stream.next()
    except Exception as exc:
        yield error_event(exc)
    finally:
        stream.close()


@router.post(
    "/api/kbs/{name}/summary/jobs",
    status_code=202,
    responses=documented(401, 403, 404, 413, 422),
)
async def start_summary_job(
    name: KBNameInPath, body: SummaryRequest, request: Request, state: StateDep, caller: CallerDep
) -> SummaryJobInfo:
    """Summarise files (default: every indexed file, then the whole) in the background.

    The answer comes before any summary is made, with the seconds expected
    (``estimated_s``): a long job can be stopped with ``DELETE`` before it costs much.
    """
    caller.require(name, "read")
    loop = asyncio.get_running_loop()
    queue = state.queues.for_model(body.model)
    key = caller_key(request, caller)

    def start() -> SummaryJobInfo:
        services = state.services
        kb = services.library.get(name)
        model = services.models.get(body.model)
        options = summary_options(state.settings, strategy=body.strategy, model=body.model)
        names = body.files or [r.name for r in kb.files() if r.status == "indexed"]
        holder: list[threading.Event] = []
        job = state.summary_jobs.start(
            kb,
            model,
            names,
            options=options,
            refresh=body.refresh,
            overview=body.files is None,
            slot=_queue_slot(queue, key, loop, holder),
            started_by=caller.name,
        )
        holder.append(job.cancel)
        return summary_job_info(job)

    return await run_in_threadpool(start)


@router.get("/api/kbs/{name}/summary/jobs", responses=documented(401, 404, 422))
def list_summary_jobs(
    name: KBNameInPath, state: StateDep, caller: CallerDep
) -> list[SummaryJobInfo]:
    """The knowledge base's summary jobs in this server process, newest first."""
    caller.require(name, "read")
    state.services.library.catalog.get_kb(name)  # 404 for an unknown knowledge base
    return [summary_job_info(job) for job in state.summary_jobs.list(name)]


@router.get("/api/kbs/{name}/summary/jobs/{job_id}", responses=documented(401, 404, 422))
def get_summary_job(
    name: KBNameInPath, job_id: str, state: StateDep, caller: CallerDep
) -> SummaryJobInfo:
    """A summary job, file by file."""
    caller.require(name, "read")
    return summary_job_info(state.summary_jobs.get(name, job_id))


@router.delete(
    "/api/kbs/{name}/summary/jobs/{job_id}",
    status_code=202,
    responses=documented(401, 403, 404, 422),
)
def cancel_summary_job(
    name: KBNameInPath, job_id: str, state: StateDep, caller: CallerDep
) -> SummaryJobInfo:
    """Stop a summary job at its next model step (202: it may still be ``running`` for that
    step; summaries finished before are kept). Who started it, or a writer of the
    knowledge base, may stop it."""
    caller.require(name, "read")
    job = state.summary_jobs.get(name, job_id)
    if job.started_by != caller.name and not caller.can(name, "write"):
        raise Forbidden(
            f"summary job {job_id} was started by {job.started_by!r}; only they or a writer "
            f"of knowledge base {name!r} may stop it"
        )
    return summary_job_info(state.summary_jobs.cancel(name, job_id))


def _queue_slot(
    queue: GenerationQueue,
    key: str,
    loop: asyncio.AbstractEventLoop,
    cancelled: list[threading.Event],
) -> Slot:
    """A slot of ``queue`` per file, taken from the job's thread; a full queue is waited out
    (its Retry-After) and a stopped job gives up its place."""

    def stopped() -> bool:
        return bool(cancelled) and cancelled[0].is_set()

    async def admitted() -> Ticket:
        ticket = queue.enqueue(key)

        async def gone() -> bool:
            return stopped()

        await ticket.wait(gone=gone)
        return ticket

    @contextlib.contextmanager
    def slot() -> Iterator[object]:
        while True:
            try:
                ticket = asyncio.run_coroutine_threadsafe(admitted(), loop).result()
                break
            except Busy as exc:
                if cancelled and cancelled[0].wait(exc.retry_after):
                    raise BadInput("the summary was stopped") from None
            except KbchatError:
                if stopped():
                    raise BadInput("the summary was stopped") from None
                raise
        try:
            yield ticket
        finally:
            ticket.release()

    return slot
