"""GenerationQueue: slots, a fair bounded queue, admission by estimated wait, Retry-After."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from kbchat.server.errors import Busy, Unavailable
from kbchat.server.generation_queue import GenerationQueue, Ticket


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


async def settled() -> None:
    """Return once every callback already scheduled on the loop has run."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(done.set_result, None)
    await done


class Waiters:
    """Tickets waiting for a slot, each awaited by its own task, as a request would."""

    def __init__(self, tickets: list[Ticket]) -> None:
        self.tasks = {asyncio.ensure_future(t.wait()): t for t in tickets}

    def __len__(self) -> int:
        return len(self.tasks)

    async def next_served(self) -> Ticket:
        """The one ticket that got the freed slot."""
        done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1
        return self.tasks.pop(done.pop())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_callers_requests_in_order_and_callers_take_turns() -> None:
    async def scenario() -> None:
        queue = GenerationQueue(slots=1, queue_size=10, timeout_s=1000, service_s=1)
        running = queue.enqueue("a")
        assert running.granted and running.admitted_position == 0
        a1, a2, a3 = (queue.enqueue("a") for _ in range(3))
        b1 = queue.enqueue("b")
        c1 = queue.enqueue("c")
        waiting = [a1, a2, a3, b1, c1]
        assert [t.admitted_position for t in waiting] == [1, 2, 3, 2, 3]
        assert [t.position() for t in waiting] == [1, 4, 5, 2, 3]
        served = []
        waiters = Waiters(waiting)
        while waiters:
            running.release()
            running = await waiters.next_served()
            served.append(running)
            assert queue.running == 1 and queue.waiting == len(waiters)
        assert served == [a1, b1, c1, a2, a3]
        running.release()
        await settled()
        assert queue.running == 0

    run(scenario)


def test_slots_are_freed_from_other_threads_exactly_once() -> None:
    async def scenario() -> None:
        queue = GenerationQueue(slots=2, queue_size=5, timeout_s=1000, service_s=1)
        first, second = queue.enqueue("a"), queue.enqueue("a")
        third = queue.enqueue("a")
        assert first.granted and second.granted and not third.granted
        releaser = threading.Thread(target=first.release)
        releaser.start()
        await third.wait()
        releaser.join()
        for ticket in (first, second, second, third, third):  # twice frees one slot only
            ticket.release()
        await settled()
        assert queue.running == 0 and queue.waiting == 0

    run(scenario)


def test_answers_that_started_together_end_together_and_the_wait_counts_rounds() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue = GenerationQueue(slots=2, queue_size=100, timeout_s=30, service_s=10, clock=clock)
        queue.enqueue("a"), queue.enqueue("a")
        waiting = [queue.enqueue("a") for _ in range(5)]
        assert [t.admitted_eta_s for t in waiting] == [10, 10, 20, 20, 30]
        clock.now += 4  # the running answers are 4 s in: 6 s to go
        assert [t.eta_s() for t in waiting] == [6, 6, 16, 16, 26]

    run(scenario)


def test_a_wait_estimated_beyond_the_timeout_is_refused_with_an_honest_retry_after() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue = GenerationQueue(slots=2, queue_size=100, timeout_s=30, service_s=10, clock=clock)
        running = [queue.enqueue("a"), queue.enqueue("a")]
        waiting = [queue.enqueue("a") for _ in range(6)]  # rounds at 10, 20 and 30 s
        with pytest.raises(Busy) as refused:
            queue.enqueue("a")  # its slot would come at 40 s
        assert refused.value.retry_after == 10
        assert "would exceed 30 s" in str(refused.value)
        clock.now += 10  # Retry-After later: the first round ends as estimated
        waiters = Waiters(waiting)
        for ticket in running:
            ticket.release()
            await waiters.next_served()
        assert queue.enqueue("a").admitted_eta_s == 30  # ... and the retry is admitted

    run(scenario)


def test_another_callers_first_request_is_admitted_ahead_of_a_long_line() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue = GenerationQueue(slots=1, queue_size=100, timeout_s=30, service_s=10, clock=clock)
        queue.enqueue("heavy")
        line = [queue.enqueue("heavy") for _ in range(3)]
        with pytest.raises(Busy):
            queue.enqueue("heavy")
        light = queue.enqueue("light")
        assert light.admitted_position == 2 and light.admitted_eta_s == 20
        assert [t.position() for t in line] == [1, 3, 4]

    run(scenario)


def test_a_full_queue_refuses_until_enough_waiters_have_had_their_slots() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue = GenerationQueue(slots=1, queue_size=2, timeout_s=1000, service_s=8, clock=clock)
        queue.enqueue("a")
        queue.enqueue("b")
        queue.enqueue("c")
        with pytest.raises(Busy) as refused:
            queue.enqueue("d")
        assert refused.value.retry_after == 8  # when "b" gets the slot, a place is free
        no_queue = GenerationQueue(slots=1, queue_size=0, timeout_s=1000, service_s=8, clock=clock)
        no_queue.enqueue("a")
        clock.now += 3
        with pytest.raises(Busy) as refused:
            no_queue.enqueue("b")
        assert refused.value.retry_after == 5  # when the running answer is expected to end

    run(scenario)


def test_service_time_is_measured_from_finished_generations() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue = GenerationQueue(slots=1, queue_size=4, timeout_s=100, service_s=10, clock=clock)
        ticket = queue.enqueue("a")
        clock.now += 60
        ticket.release()
        await settled()
        assert queue.service_s == pytest.approx(10 + 0.2 * (60 - 10))
        queue.enqueue("a")
        assert queue.enqueue("a").admitted_eta_s == pytest.approx(20)  # just started: a round

    run(scenario)


def test_leaving_the_queue_frees_the_place() -> None:
    async def scenario() -> None:
        queue = GenerationQueue(slots=1, queue_size=4, timeout_s=1000, service_s=1)
        running = queue.enqueue("a")

        async def gone() -> bool:
            return True

        with pytest.raises(Unavailable, match="went away"):
            await queue.enqueue("b").wait(gone=gone)
        assert queue.waiting == 0
        left = asyncio.ensure_future(queue.enqueue("c").wait())
        stays = queue.enqueue("d")
        assert stays.position() == 2
        await settled()
        left.cancel()
        await asyncio.gather(left, return_exceptions=True)
        assert queue.waiting == 1 and stays.position() == 1
        running.release()
        await stays.wait()
        stays.release()
        await settled()
        assert queue.running == 0 and queue.waiting == 0

    run(scenario)


def test_updates_report_each_new_position_until_served() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue = GenerationQueue(slots=1, queue_size=4, timeout_s=1000, service_s=6, clock=clock)
        running = queue.enqueue("a")
        ahead = queue.enqueue("a")
        watched = queue.enqueue("a")
        seen: list[tuple[int, float]] = []
        async for position, eta_s in watched.updates():
            if not seen or seen[-1] != (position, eta_s):
                seen.append((position, eta_s))
            if position == 2 and running.granted_at is not None and not ahead.granted:
                running.release()
            elif position == 1 and ahead.granted:
                ahead.release()
        assert watched.granted
        assert [p for p, _ in seen] == [2, 1]
        assert seen[0][1] == 12

    run(scenario)
