"""Server-sent event streams, and running a blocking generator (a model's answer) off the loop.

``ThreadedStream`` iterates a blocking generator on its own thread and hands the items
to async code. When the consumer stops early (the client went away) the cancel event is
set, so the model stops generating and frees its slot; the generator still runs to its
end on its thread (a cancelled answer ends quickly), so its clean-up always happens.
Waiting is event-driven: the next item and the client's disconnect are awaited together,
nothing polls.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from starlette.requests import Request

from kbchat.server.errors import Unavailable

T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEP_ALIVE = ": keep-alive\n\n"
_ITEM, _ERROR, _END = "item", "error", "end"


def sse_event(event: str, data: Any) -> str:
    """One SSE message: ``event: <event>`` and its JSON data (a dict or a model)."""
    text = data.model_dump_json() if isinstance(data, BaseModel) else _json(data)
    return f"event: {event}\ndata: {text}\n\n"


def sse_comment(text: str) -> str:
    """One SSE comment line (``: text``): clients that do not read it ignore it."""
    return f": {text}\n\n"


def sse_data(data: Any) -> str:
    """One unnamed SSE message (the OpenAI streaming format); a model gives the fields that
    are set (``server.openai_responses``)."""
    if isinstance(data, BaseModel):
        return f"data: {data.model_dump_json(exclude_unset=True)}\n\n"
    return f"data: {data if isinstance(data, str) else _json(data)}\n\n"


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


async def until_disconnected(request: Request) -> None:
    """Return once the client has gone (its ``http.disconnect`` message).

    Only for a request whose body has been read, and while no response streams (a
    ``StreamingResponse`` listens for the disconnect itself).
    """
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(
    awaitable: Awaitable[T], disconnected: Callable[[], Awaitable[object]]
) -> T:
    """The result of ``awaitable``, unless ``disconnected()`` completes first.

    Raises:
        Unavailable: the client went away first (``awaitable`` is cancelled).
    """
    wanted = asyncio.ensure_future(awaitable)
    gone = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({wanted, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not wanted.done():
            wanted.cancel()
    if wanted.done() and not wanted.cancelled():
        return wanted.result()
    raise Unavailable("the client went away")


class ThreadedStream(Generic[T]):
    """Items of a blocking iterator, produced on a worker thread, consumed asynchronously.

    Args:
        make: Builds the iterator; called on the worker thread.
        cancel: Set when the consumer gives up, and checked by the producer.
        on_end: Called on the worker thread once the iterator is exhausted or failed.
    """

    def __init__(
        self,
        make: Callable[[], Iterator[T]],
        cancel: threading.Event,
        *,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._make = make
        self._cancel = cancel
        self._on_end = on_end
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._produce, name="kbchat-answer")
        self._thread.start()

    async def next(self, disconnected: Callable[[], Awaitable[object]] | None = None) -> T | None:
        """The next item, or None at the end; re-raises the producer's exception.

        Args:
            disconnected: Completes when the client has gone (``until_disconnected``).

        Raises:
            Unavailable: the client went away while waiting (the producer is cancelled).
        """
        try:
            if disconnected is None:
                kind, value = await self._queue.get()
            else:
                kind, value = await unless_disconnected(self._queue.get(), disconnected)
            if kind == _ITEM:
                return value  # type: ignore[no-any-return]
            if kind == _ERROR:
                raise value
            return None
        except BaseException:
            self._cancel.set()
            raise

    async def items(self) -> AsyncIterator[T]:
        """Every remaining item; leaving early cancels the producer."""
        try:
            while (item := await self.next()) is not None:
                yield item
        finally:
            self._cancel.set()

    def close(self) -> None:
        """Stop the producer early (it finishes on its own thread)."""
        self._cancel.set()

    def _produce(self) -> None:
        try:
            for item in self._make():
                self._put(_ITEM, item)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_ERROR, exc)
        finally:
            self._put(_END, None)
            if self._on_end is not None:
                self._on_end()

    def _put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop has closed; nobody is listening any more
            self._cancel.set()
