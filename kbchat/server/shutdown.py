"""How ``kbchat serve`` stops: the first Ctrl-C says in one line what it waits for (answers
being generated, ingest tasks in a worker's hands); a second Ctrl-C quits at once.

Quitting at once is safe for the knowledge bases: a file is written in one catalog
transaction, so an ingest task cut short leaves its file as it was, and the task runs again
(its lease expires) at the next start of any worker.
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


def in_flight(state: ServerState) -> tuple[int, int]:
    """(answers being generated or waiting for the model, ingest tasks workers hold)."""
    answers = sum(queue.running + queue.waiting for queue in state.queues.all())
    tasks = sum(worker.busy for worker in state.workers)
    return answers, tasks


def stopping_message(state: ServerState | None) -> str:
    """The one line the first Ctrl-C prints."""
    answers, tasks = in_flight(state) if state is not None else (0, 0)
    parts = [
        f"{n} {what}{'' if n == 1 else 's'}"
        for n, what in ((answers, "running answer"), (tasks, "ingest task"))
        if n
    ]
    if not parts:
        return "Stopping; press Ctrl-C again to quit now"
    return f"Stopping: waiting for {' and '.join(parts)}; press Ctrl-C again to quit now"


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
