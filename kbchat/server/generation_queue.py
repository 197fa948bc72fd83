"""Generation slots per chat model, and a bounded, fair queue in front of them.

A model serves ``slots`` answers at once (llama.cpp parallel slots, or the concurrency
allowed towards a remote server). Requests beyond that wait in line: first in, first out
for one caller, round-robin across callers, so one client sending 50 questions does not
push everyone else's first question behind them.

Admission is decided at once, from an estimate: ``service_s`` is the measured time a
generation holds its slot (moving average); each running generation is expected to end
``service_s`` after it started, and each waiter to take the first free slot for as long
(``eta_s``; about ``p x service_s / slots`` for the waiter at place ``p`` in a steady
stream). A request is admitted only if its estimated wait fits ``timeout_s`` and fewer
than ``queue_size`` wait; otherwise it is refused with Busy (HTTP 429) and a Retry-After
after which, by the same estimate, it would be admitted. An admitted request is never
failed for waiting: it waits until it is served or its client goes away. A caller's
first waiting request keeps its place; their later ones may be passed by other callers'
first ones (that is the round-robin), so their wait can grow past the estimate they
were given.

All bookkeeping runs on the event loop; a slot may be released from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from kbchat.config import Settings
from kbchat.server.errors import Busy, Unavailable

# The slot holding time assumed before any generation has been measured (a first guess:
# a 512-token answer of the embedded 0.5B model on 2 quiet cores); the moving average of
# measured times replaces it within a few answers.
FIRST_SERVICE_S = 30.0
_SMOOTHING = 0.2  # weight of the newest measurement in the moving average


class Ticket:
    """One request's place: waiting in a queue, then holding a generation slot.

    ``admitted_position`` is the place it was given (0: a slot at once) and
    ``admitted_eta_s`` the wait estimated then. Release it exactly once, from any thread,
    when its generation has ended.
    """

    def __init__(
        self, queue: GenerationQueue, caller: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.queue = queue
        self.caller = caller
        self.enqueued_at = queue.clock()
        self.admitted_position = 0
        self.admitted_eta_s = 0.0
        self.granted_at: float | None = None
        self._granted: asyncio.Future[None] = loop.create_future()
        self._moved = asyncio.Event()
        self._released = False
        self._release_lock = threading.Lock()

    @property
    def granted(self) -> bool:
        return self._granted.done() and not self._granted.cancelled()

    @property
    def waited_s(self) -> float:
        """Seconds spent in the queue (so far, or until the slot came)."""
        end = self.granted_at if self.granted_at is not None else self.queue.clock()
        return end - self.enqueued_at

    def position(self) -> int:
        """Place in the queue, 1 = next to be served; 0 once a slot is held."""
        return self.queue.position(self)

    def eta_s(self) -> float:
        """Estimated seconds until a slot is free for this request."""
        return self.queue.eta_s(self.position())

    async def wait(self, gone: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Wait for the slot; leaving early (cancelled, client gone) gives up the place.

        Args:
            gone: Checked every second while waiting; True means the client went away.

        Raises:
            Unavailable: the client went away while waiting.
        """
        try:
            while not self.granted:
                if gone is not None and await gone():
                    raise Unavailable("the client went away while waiting")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._granted), 1.0)
        except BaseException:
            self.queue.leave(self)
            raise

    async def updates(self, every_s: float = 5.0) -> AsyncGenerator[tuple[int, float], None]:
        """(position, estimated seconds) now, on every move, and every ``every_s`` seconds,
        until the slot is granted; leaving early gives up the place."""
        try:
            while not self.granted:
                self._moved.clear()  # before reporting: a move while reporting is seen next
                yield self.position(), self.eta_s()
                moved: asyncio.Future[object] = asyncio.ensure_future(self._moved.wait())
                either: set[asyncio.Future[Any]] = {moved, self._granted}
                try:
                    await asyncio.wait(either, timeout=every_s, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    moved.cancel()
        except BaseException:
            self.queue.leave(self)
            raise

    def release(self) -> None:
        """Give the held slot back (from any thread); later calls do nothing."""
        with self._release_lock:
            if self._released:
                return
            self._released = True
        self.queue.release(self)

    def grant(self) -> None:
        """Called by its queue: the slot is this request's now."""
        self.granted_at = self.queue.clock()
        self._granted.set_result(None)

    def mark_moved(self) -> None:
        """Called by its queue: the position or estimate may have changed."""
        self._moved.set()


class GenerationQueue:
    """``slots`` generations at once for one model; up to ``queue_size`` more wait fairly.

    Args:
        slots: Generations served at the same time.
        queue_size: Most requests waiting; beyond them a request is refused.
        timeout_s: Longest estimated wait a request is admitted with (seconds).
        service_s: Initial estimate of the seconds a generation holds its slot.
        clock: Seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        slots: int,
        queue_size: int,
        timeout_s: float,
        service_s: float = FIRST_SERVICE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slots <= 0:
            raise ValueError(f"slots must be > 0, got {slots}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        if timeout_s <= 0 or service_s <= 0:
            raise ValueError(f"timeout_s and service_s must be > 0, got {timeout_s}, {service_s}")
        self.slots = slots
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.service_s = service_s
        self.clock = clock
        self._holding: set[Ticket] = set()  # granted, not yet released
        self._lines: dict[str, deque[Ticket]] = {}  # caller -> their waiters, in turn order
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> int:
        return len(self._holding)

    @property
    def waiting(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def eta_s(self, position: int) -> float:
        """Estimated seconds until a slot is free for the waiter at ``position`` (1-based).

        Each running generation is expected to end ``service_s`` after it started (one
        running longer than that: soon, in a tenth of it); each waiter then holds the
        first free slot for ``service_s``. So answers that started together end together,
        and the waiters behind them wait a whole round, not ``service_s / slots``.
        """
        if position <= 0:
            return 0.0
        now = self.clock()
        free_at = [
            max(self.service_s - (now - (t.granted_at or now)), self.service_s / 10)
            for t in self._holding
        ]
        free_at += [0.0] * (self.slots - len(free_at))
        heapq.heapify(free_at)
        for _ in range(position - 1):
            heapq.heappush(free_at, heapq.heappop(free_at) + self.service_s)
        return free_at[0]

    def enqueue(self, caller: str) -> Ticket:
        """A slot at once, or a place in line if the estimated wait fits ``timeout_s``.

        Args:
            caller: Who is asking (an API key's name, or the client's address); the
                queue takes turns between callers.

        Raises:
            Busy: the queue is full or the wait would be too long; ``retry_after`` is the
                estimated number of seconds until a retry would be admitted.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        ticket = Ticket(self, caller, loop)
        if self.running < self.slots and not self._lines:
            self._holding.add(ticket)
            ticket.grant()
            return ticket
        order = self._order(extra=ticket)
        place = order.index(ticket) + 1
        eta_s = self.eta_s(place)
        if len(order) > self.queue_size or eta_s > self.timeout_s:
            retry_after = self._retry_after(place, len(order))
            raise Busy(
                f"the server is busy: {self.running} answer(s) generating and "
                f"{len(order) - 1} waiting for {self.slots} slot(s) at about "
                f"{self.service_s:.0f} s each; the wait (~{eta_s:.0f} s) would exceed "
                f"{self.timeout_s:.0f} s. Try again in {retry_after:.0f} s",
                retry_after=retry_after,
            )
        self._lines.setdefault(caller, deque()).append(ticket)
        ticket.admitted_position = place
        ticket.admitted_eta_s = eta_s
        for moved in order[place:]:
            moved.mark_moved()
        return ticket

    def _retry_after(self, place: int, queued: int) -> float:
        """Seconds until a request refused at ``place``, with ``queued`` waiting (itself
        included), would likely be admitted, if nobody new arrived ahead of it: when its
        wait would fit ``timeout_s``, and enough waiters have had their slots."""
        too_far = self.eta_s(place) - self.timeout_s
        too_many = self.eta_s(queued - self.queue_size)
        return float(max(1, math.ceil(max(too_far, too_many))))

    def position(self, ticket: Ticket) -> int:
        """1-based place of ``ticket`` in the order of service; 0 if it is not waiting."""
        try:
            return self._order().index(ticket) + 1
        except ValueError:
            return 0

    def leave(self, ticket: Ticket) -> None:
        """A request gives up (its client left, it was cancelled): free its place or slot."""
        if ticket.granted:
            ticket.release()
            return
        line = self._lines.get(ticket.caller)
        if line is None or ticket not in line:
            return
        line.remove(ticket)
        if not line:
            del self._lines[ticket.caller]
        self._notify()

    def release(self, ticket: Ticket) -> None:
        """A generation ended (from any thread): measure it and hand its slot on."""
        held = self.clock() - (ticket.granted_at or self.clock())
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: the server has stopped
            loop.call_soon_threadsafe(self._slot_freed, ticket, held)

    def _slot_freed(self, done: Ticket, held_s: float) -> None:
        self.service_s += _SMOOTHING * (held_s - self.service_s)
        self._holding.discard(done)
        while self.running < self.slots and self._lines:
            caller = next(iter(self._lines))
            line = self._lines.pop(caller)
            ticket = line.popleft()
            if line:
                self._lines[caller] = line  # this caller's next request goes to the back
            self._holding.add(ticket)
            ticket.grant()
        self._notify()

    def _order(self, extra: Ticket | None = None) -> list[Ticket]:
        """Waiters in the order they will be served (``extra`` as if it had joined)."""
        lines = [list(line) for line in self._lines.values()]
        if extra is not None:
            own = next((ln for ln in lines if ln[0].caller == extra.caller), None)
            if own is None:
                lines.append([extra])
            else:
                own.append(extra)
        rounds = max((len(line) for line in lines), default=0)
        return [line[i] for i in range(rounds) for line in lines if i < len(line)]

    def _notify(self) -> None:
        for line in self._lines.values():
            for ticket in line:
                ticket.mark_moved()


class GenerationQueues:
    """One GenerationQueue per chat model.

    Slots come from ``models.<name>.parallel`` (1 for a model added without settings);
    the queue's size and admission bound from ``server.queue_size`` and
    ``server.queue_timeout_s``.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._queues = {name: self._build(name) for name in settings.models}

    def for_model(self, name: str | None) -> GenerationQueue:
        """The queue of model ``name`` (default: ``settings.default_model``)."""
        name = name or self._settings.default_model
        if name not in self._queues:
            self._queues[name] = self._build(name)
        return self._queues[name]

    def all(self) -> list[GenerationQueue]:
        """Every model's queue."""
        return list(self._queues.values())

    def _build(self, name: str) -> GenerationQueue:
        model = self._settings.models.get(name)
        server = self._settings.server
        return GenerationQueue(
            model.parallel if model is not None else 1, server.queue_size, server.queue_timeout_s
        )
