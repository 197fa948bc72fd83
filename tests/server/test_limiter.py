"""GenerationLimiter: slots, an ordered bounded queue, timeouts and hand-over."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kbchat.server.errors import Busy, Unavailable
from kbchat.server.state import GenerationLimiter


def test_slots_then_queue_then_refusal() -> None:
    async def scenario() -> None:
        limiter = GenerationLimiter(slots=2, queue_size=1, timeout_s=5)
        first, second = await limiter.acquire(), await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        assert limiter.running == 2 and limiter.waiting == 1
        with pytest.raises(Busy) as busy:
            await limiter.acquire()
        assert busy.value.retry_after >= 1
        first.release()
        third = await asyncio.wait_for(waiter, 2)
        assert limiter.running == 2 and limiter.waiting == 0
        second.release()
        third.release()
        third.release()  # releasing twice frees one slot only
        await asyncio.sleep(0.01)
        assert limiter.running == 0

    asyncio.run(scenario())


def test_waiters_are_served_in_order_and_slots_freed_from_threads() -> None:
    async def scenario() -> list[int]:
        limiter = GenerationLimiter(slots=1, queue_size=5, timeout_s=5)
        held = await limiter.acquire()
        served: list[int] = []

        async def wait(i: int) -> None:
            slot = await limiter.acquire()
            served.append(i)
            threading.Thread(target=slot.release).start()

        tasks = [asyncio.create_task(wait(i)) for i in range(4)]
        await asyncio.sleep(0.01)
        threading.Thread(target=held.release).start()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        await asyncio.sleep(0.01)
        assert limiter.running == 0
        return served

    assert asyncio.run(scenario()) == [0, 1, 2, 3]


def test_timeout_and_leaving_the_queue() -> None:
    async def scenario() -> None:
        limiter = GenerationLimiter(slots=1, queue_size=2, timeout_s=0.2)
        held = await limiter.acquire()
        with pytest.raises(Unavailable, match="within"):
            await limiter.acquire()

        async def gone() -> bool:
            return True

        with pytest.raises(Unavailable, match="went away"):
            await limiter.acquire(gone=gone)
        assert limiter.waiting == 0
        cancelled = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        cancelled.cancel()
        await asyncio.sleep(0.01)
        held.release()
        await asyncio.sleep(0.01)
        assert limiter.running == 0 and limiter.waiting == 0

    asyncio.run(scenario())
