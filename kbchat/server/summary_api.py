"""Summaries of a knowledge base's files, streamed as server-sent events.

``POST /api/kbs/{kb}/summary`` summarises the named files (default: every indexed file,
then the knowledge base as a whole) under a slot of the model's queue. Kept summaries come back at
once; new ones are stored. Events: ``file`` (a file starts), ``progress`` (the plan with
its expected seconds, then steps), ``delta`` (text), ``summary`` (one file done),
``overview`` (the whole knowledge base), ``done``; or ``error``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from kbchat.chat.summaries import SummaryStore, file_record, summarize_file, summarize_overview
from kbchat.chat.summarize import Progress, Summary, SummaryEvent
from kbchat.errors import BadInput, KbchatError
from kbchat.options import SummaryStrategy, summary_options
from kbchat.server.auth import Principal
from kbchat.server.chat_api import error_event
from kbchat.server.errors import documented
from kbchat.server.generation import stream_generation
from kbchat.server.schemas import KBNameInPath
from kbchat.server.sse import ThreadedStream, sse_event
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.server.streams import SummariesDone, SummaryDelta, SummaryFile, SummaryProgress
from kbchat.shapes.chat import file_summary, summary_info

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
