"""ThreadedStream: items from a worker thread, and giving up when the client goes away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from kbchat.server.errors import Unavailable
from kbchat.server.sse import ThreadedStream


def test_items_then_the_end() -> None:
    async def consume() -> list[str]:
        stream = ThreadedStream(lambda: iter(["a", "b"]), threading.Event())
        return [item async for item in stream.items()]

    assert asyncio.run(consume()) == ["a", "b"]


def test_a_producer_error_is_raised_to_the_consumer() -> None:
    def failing() -> Iterator[str]:
        yield "a"
        raise RuntimeError("model crashed")

    async def consume() -> None:
        stream = ThreadedStream(failing, threading.Event())
        assert await stream.next() == "a"
        await stream.next()

    with pytest.raises(RuntimeError, match="model crashed"):
        asyncio.run(consume())


def test_a_client_gone_while_waiting_cancels_the_producer() -> None:
    cancel = threading.Event()
    release = threading.Event()
    ended = threading.Event()

    def slow() -> Iterator[str]:
        release.wait()
        yield "late"

    async def consume() -> None:
        gone = asyncio.Event()
        stream = ThreadedStream(slow, cancel, on_end=ended.set)
        asyncio.get_running_loop().call_soon(gone.set)
        await stream.next(gone.wait)

    with pytest.raises(Unavailable, match="went away"):
        asyncio.run(consume())
    assert cancel.is_set()
    release.set()
    assert ended.wait(5)


def test_an_item_that_is_ready_wins_over_a_disconnect_still_pending() -> None:
    async def consume() -> str | None:
        stream = ThreadedStream(lambda: iter(["a"]), threading.Event())
        never = asyncio.Event()
        return await stream.next(never.wait)

    assert asyncio.run(consume()) == "a"
