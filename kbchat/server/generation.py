"""Running one generation (an answer, a completion, a summary) under its model's queue.

The request takes a place in the model's ``GenerationQueue`` first; a refusal there is an
HTTP 429 with Retry-After before anything else happens. Then:

- With a slot at once, the generation starts and its first item is awaited before the
  response begins, so a request that fails early (prompt too long, model server down)
  gets a real error status.
- Streaming and waiting: the response starts at once and, while the request waits, sends
  SSE comment lines ``: queued position=<n> eta_s=<seconds>`` (ignored by SSE clients
  that do not look for them), and ``position=0`` when its turn has come; a failure after
  the wait becomes the stream's error event.
- Not streaming and waiting: the response comes when the answer is done.

Every response carries ``X-Queue-Position`` (0: served at once) and ``X-Queue-ETA`` (the
estimated wait in seconds) as admitted; a non-streamed one also ``X-Queue-Wait``, the
seconds it actually waited.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from functools import partial
from typing import TypeVar

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from kbchat.server.auth import Principal
from kbchat.server.generation_queue import Ticket
from kbchat.server.sse import SSE_HEADERS, ThreadedStream, sse_comment, until_disconnected
from kbchat.server.state import ServerState

T = TypeVar("T")
Make = Callable[[threading.Event], Iterator[T]]
Render = Callable[[ThreadedStream[T], T | None], AsyncIterator[str]]
RenderError = Callable[[Exception], str]


def caller_key(request: Request, caller: Principal) -> str:
    """Whom the queue takes turns between: the API key's name, else the client's address."""
    if caller.name is not None:
        return f"key:{caller.name}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


def queue_headers(ticket: Ticket, *, waited: bool = False) -> dict[str, str]:
    """The queue place and estimate a request was admitted with (and how long it waited)."""
    headers = {
        "X-Queue-Position": str(ticket.admitted_position),
        "X-Queue-ETA": f"{ticket.admitted_eta_s:.0f}",
    }
    if waited:
        headers["X-Queue-Wait"] = f"{ticket.waited_s:.1f}"
    return headers


def take_place(
    request: Request, state: ServerState, model: str | None, caller: Principal
) -> Ticket:
    """A place in ``model``'s queue (a slot at once, or a place in line).

    Raises:
        Busy: refused (HTTP 429 with Retry-After).
    """
    return state.queues.for_model(model).enqueue(caller_key(request, caller))


async def start_generation(
    request: Request,
    state: ServerState,
    make: Make[T],
    *,
    model: str | None,
    caller: Principal,
    response: Response | None = None,
) -> tuple[ThreadedStream[T], T | None]:
    """Wait for a slot of ``model``, start ``make`` on a thread and wait for its first item.

    The slot is released when the generation ends, even if the client left earlier.

    Args:
        response: Gets the queue headers (``X-Queue-Position``, ``-ETA``, ``-Wait``).

    Raises:
        Busy: refused by the queue (429 with Retry-After).
        Unavailable: the client went away while waiting.
        KbchatError: the generation failed before its first item.
    """
    ticket = take_place(request, state, model, caller)
    await ticket.wait(gone=request.is_disconnected)
    if response is not None:
        response.headers.update(queue_headers(ticket, waited=True))
    return await _begin(request, ticket, make)


async def stream_generation(
    request: Request,
    state: ServerState,
    make: Make[T],
    *,
    model: str | None,
    caller: Principal,
    render: Render[T],
    render_error: RenderError,
) -> StreamingResponse:
    """An SSE response of ``render(stream, first)``, with queue comments while it waits.

    Args:
        render: The endpoint's event stream from the generation and its first item.
        render_error: The endpoint's error event, for a failure after a wait.

    Raises:
        Busy: refused by the queue (429 with Retry-After).
        KbchatError: with a slot at once, the generation failed before its first item.
    """
    ticket = take_place(request, state, model, caller)
    headers = {**SSE_HEADERS, **queue_headers(ticket)}
    if ticket.granted:
        stream, first = await _begin(request, ticket, make)
        body = render(stream, first)
    else:
        body = _wait_then(request, ticket, make, render, render_error)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


async def _wait_then(
    request: Request, ticket: Ticket, make: Make[T], render: Render[T], render_error: RenderError
) -> AsyncIterator[str]:
    async with aclosing(ticket.updates()) as updates:  # leaving early gives up the place
        async for position, eta_s in updates:
            yield sse_comment(f"queued position={position} eta_s={eta_s:.0f}")
    yield sse_comment("queued position=0 eta_s=0")  # its turn: the generation starts
    try:
        stream, first = await _begin(request, ticket, make)
    except Exception as exc:  # the endpoint renders it (KbchatError) or logs it (a bug)
        yield render_error(exc)
        return
    async for part in render(stream, first):
        yield part


async def _begin(
    request: Request, ticket: Ticket, make: Make[T]
) -> tuple[ThreadedStream[T], T | None]:
    cancel = threading.Event()
    try:
        stream = ThreadedStream(lambda: make(cancel), cancel, on_end=ticket.release)
    except BaseException:
        ticket.release()
        raise
    first = await stream.next(partial(until_disconnected, request))
    return stream, first
