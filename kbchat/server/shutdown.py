"""How ``kbchat serve`` stops: the first Ctrl-C says in one line what it waits for (answers
being generated, the files its workers have in hand) and for how long at most; a second
Ctrl-C quits at once.

At the first Ctrl-C the workers stop claiming and start no new file: a file whose chunks are
all embedded commits, any other stops at its next embedding batch, and the files not finished
go back to the queue for the next start. Quitting at once is safe for the knowledge bases
too: a file is written in one catalog transaction, so an ingest task cut short leaves its file
as it was, and the task runs again (its lease expires) at the next start of any worker.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from kbchat.server.state import ServerState


def quit_now(app: FastAPI) -> threading.Event:
    """Set by a second Ctrl-C: shutting down stops waiting for workers (``create_app`` makes it)."""
    event: threading.Event = app.state.quit_now
    return event


WORKER_STOP_WAIT_S = 30.0
"""Longest wait, in seconds, for a worker's file in hand after the first Ctrl-C (said in the
line it prints); a file still unfinished then runs again at the next start."""


def in_flight(state: ServerState) -> tuple[int, list[str]]:
    """(answers being generated or waiting for the model, what each busy worker holds:
    ``the ingest of 'a.txt' in 'docs'``, or ``a write to 'docs'`` between files)."""
    answers = sum(queue.running + queue.waiting for queue in state.queues.all())
    ingests: list[str] = []
    for worker in state.workers:
        held = worker.in_hand()
        if held is None:
            continue
        kb, files = held
        shown = ", ".join(repr(name) for name in files[:3]) + (" ..." if len(files) > 3 else "")
        ingests.append(f"the ingest of {shown} in {kb!r}" if files else f"a write to {kb!r}")
    return answers, ingests


def stopping_message(state: ServerState | None, wait_s: float = WORKER_STOP_WAIT_S) -> str:
    """The one line the first Ctrl-C prints."""
    answers, ingests = in_flight(state) if state is not None else (0, [])
    parts = [f"{answers} running answer{'' if answers == 1 else 's'}"] if answers else []
    if ingests:
        parts.append("; ".join(ingests))
    if not parts:
        return "Stopping; press Ctrl-C again to quit now"
    line = f"Stopping: waiting for {' and '.join(parts)}"
    if ingests:
        line += (
            f" (no new file starts; at most {wait_s:g} s, then what is unfinished runs "
            "again at the next start)"
        )
    return f"{line}; press Ctrl-C again to quit now"


def stop_workers_soon(state: ServerState | None) -> None:
    """The first Ctrl-C: workers claim nothing more and start no new file."""
    for worker in state.workers if state is not None else ():
        worker.stop_soon()


class GracefulServer(uvicorn.Server):
    """uvicorn's server, saying what a first Ctrl-C waits for; a second one quits now (uvicorn
    stops waiting for connections, the app stops waiting for its workers)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, say: Callable[[str], None]) -> None:
        super().__init__(config)
        self.app = app
        self.say = say

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        again = self.should_exit and sig == signal.SIGINT
        told = self.should_exit
        super().handle_exit(sig, frame)
        if again:
            quit_now(self.app).set()
            self.say("Quitting now: an unfinished ingest task runs again at the next start")
        elif not told:
            state: Any = getattr(self.app.state, "kbchat", None)
            self.say(stopping_message(state))
            stop_workers_soon(state)  # now, not after uvicorn has closed the connections
