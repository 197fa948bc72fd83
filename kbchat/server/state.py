"""What the running server shares between requests, and the generation slots it hands out."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from kbchat.app import Services
from kbchat.config import Settings
from kbchat.errors import NotFound
from kbchat.kb.jobs import JobManager
from kbchat.server.access_log import CALLER_KEY
from kbchat.server.auth import Authenticator, Principal, Role, kb_not_found
from kbchat.server.errors import Busy, Unavailable
from kbchat.store.catalog_schema import KBRecord
from kbchat.store.conversations import ConversationStore


@dataclass(slots=True)
class ServerState:
    """Services plus the server's own parts, built once in the app's lifespan."""

    settings: Settings
    services: Services
    jobs: JobManager
    conversations: ConversationStore
    limiter: GenerationLimiter
    auth: Authenticator


def get_state(request: Request) -> ServerState:
    """FastAPI dependency: the running server's state."""
    state: ServerState = request.app.state.kbchat
    return state


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, from the Authorization header (401 if keys are needed).

    The caller's name is left in the request state for the access log.
    """
    principal = get_state(request).auth.authenticate(request.headers.get("authorization"))
    setattr(request.state, CALLER_KEY, principal.name)
    return principal


def find_kb(state: ServerState, caller: Principal, name: str, role: Role) -> KBRecord:
    """The knowledge base ``name``, if ``caller`` has ``role`` on it.

    Raises:
        NotFound: it does not exist or the caller may not read it (one error for both).
        Forbidden: the caller may read it but lacks ``role``.
    """
    if not caller.can(name, "read"):
        raise kb_not_found(name)
    try:
        record = state.services.library.catalog.get_kb(name)
    except NotFound:
        raise kb_not_found(name) from None
    caller.require(name, role)
    return record


class Slot:
    """A held generation slot; release it exactly once, from any thread."""

    def __init__(self, limiter: GenerationLimiter, loop: asyncio.AbstractEventLoop) -> None:
        self._limiter = limiter
        self._loop = loop
        self._started = time.monotonic()
        self._released = threading.Event()

    def release(self) -> None:
        if self._released.is_set():
            return
        self._released.set()
        self._limiter.observe(time.monotonic() - self._started)
        with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone
            self._loop.call_soon_threadsafe(self._limiter._hand_on)


class GenerationLimiter:
    """At most ``slots`` answers generate at once; up to ``queue_size`` more wait in order.

    A request beyond that is refused at once with Busy (429); one that waited
    ``timeout_s`` without a slot gets Unavailable (503); both carry a Retry-After estimate.
    All bookkeeping happens on the event loop; slots may be released from worker threads.
    """

    def __init__(self, slots: int, queue_size: int, timeout_s: float) -> None:
        if slots <= 0:
            raise ValueError(f"slots must be > 0, got {slots}")
        self.slots = slots
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._typical_s = 10.0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def retry_after(self) -> float:
        """Seconds until a slot is likely free for a new request."""
        ahead = self.waiting + 1
        return min(120.0, max(1.0, self._typical_s * ahead / self.slots))

    def observe(self, seconds: float) -> None:
        self._typical_s = 0.8 * self._typical_s + 0.2 * seconds

    async def acquire(self, gone: Callable[[], Awaitable[bool]] | None = None) -> Slot:
        """Wait for a slot.

        Args:
            gone: Checked while waiting; when it returns True the wait is abandoned.

        Raises:
            Busy: the queue is full.
            Unavailable: no slot came within ``timeout_s``, or the client went away.
        """
        loop = asyncio.get_running_loop()
        if self.running < self.slots and not self._waiters:
            self.running += 1
            return Slot(self, loop)
        if len(self._waiters) >= self.queue_size:
            raise Busy(
                f"the server is busy ({self.running} answer(s) generating, "
                f"{self.waiting} waiting); try again shortly",
                retry_after=self.retry_after(),
            )
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append(future)
        try:
            await self._wait(future, loop, gone)
        except BaseException:
            if future.done() and not future.cancelled():
                self._hand_on()  # a slot reached us as we gave up: pass it on
            else:
                future.cancel()
                self._discard(future)
            raise
        return Slot(self, loop)

    async def _wait(
        self,
        future: asyncio.Future[None],
        loop: asyncio.AbstractEventLoop,
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> None:
        deadline = loop.time() + self.timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(
                    f"no generation slot became free within {self.timeout_s:.0f} s; "
                    "try again later",
                    retry_after=self.retry_after(),
                )
            try:
                await asyncio.wait_for(asyncio.shield(future), min(0.5, remaining))
                return
            except TimeoutError:
                if gone is not None and await gone():
                    raise Unavailable("the client went away while waiting") from None

    def _hand_on(self) -> None:
        """A slot was freed: give it to the first live waiter, or count it free."""
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.running -= 1

    def _discard(self, future: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(future)
