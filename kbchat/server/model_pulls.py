"""Model downloads started from the page: each runs on its own thread, reporting its bytes.

A pull downloads a GGUF from Hugging Face or ModelScope (``kbchat.llm.pull``), checks it,
adds it to kbchat.toml and to the running server's models. The server keeps the pulls it
started in memory (a restart forgets them; a pull started again resumes its ``.part`` file).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from kbchat.errors import Conflict, KbchatError, NotFound
from kbchat.llm.pull import Source

log = logging.getLogger(__name__)

PullStatus = Literal["running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class Pull:
    """One download: its progress in bytes (``total_bytes`` once the hub has said)."""

    id: str
    reference: str
    source: Source
    status: PullStatus = "running"
    done_bytes: int = 0
    total_bytes: int | None = None
    model: str | None = None
    error: str | None = None
    started_at: float = field(default_factory=time.time)


Work = Callable[[Callable[[int, int], None]], str]
"""Downloads, checks and adds the model, telling its progress; returns the model's name."""


class ModelPulls:
    """The pulls this server started, by id."""

    def __init__(self) -> None:
        self._pulls: dict[str, Pull] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def start(self, reference: str, source: Source, work: Work) -> Pull:
        """Run ``work`` on a new thread as the pull of ``reference`` from ``source``.

        Raises:
            Conflict: the same file is being pulled already.
        """
        with self._lock:
            for running in self._pulls.values():
                if running.status == "running" and (running.reference, running.source) == (
                    reference,
                    source,
                ):
                    raise Conflict(
                        f"{reference} is being pulled from {source} already (pull {running.id})"
                    )
            pull = Pull(f"pull-{next(self._ids)}", reference, source)
            self._pulls[pull.id] = pull
        threading.Thread(target=self._run, args=(pull.id, work), daemon=True).start()
        return pull

    def get(self, pull_id: str) -> Pull:
        """Raises NotFound for an unknown id."""
        with self._lock:
            if pull_id not in self._pulls:
                raise NotFound(f"no model pull {pull_id!r}")
            return self._pulls[pull_id]

    def all(self) -> list[Pull]:
        """Every pull, newest first."""
        with self._lock:
            return sorted(self._pulls.values(), key=lambda p: p.started_at, reverse=True)

    def _update(self, pull_id: str, **changes: object) -> None:
        with self._lock:
            self._pulls[pull_id] = replace(self._pulls[pull_id], **changes)  # type: ignore[arg-type]

    def _run(self, pull_id: str, work: Work) -> None:
        def progress(done: int, total: int) -> None:
            self._update(pull_id, done_bytes=done, total_bytes=total)

        try:
            name = work(progress)
        except KbchatError as exc:
            self._update(pull_id, status="failed", error=str(exc))
        except Exception as exc:  # a thread's crash must reach the page, not vanish
            log.exception("model pull %s failed", pull_id)
            self._update(pull_id, status="failed", error=f"internal error: {type(exc).__name__}")
        else:
            self._update(pull_id, status="done", model=name)


def pulled_name(path: Path, given: str | None) -> str:
    """The name a pulled model gets: the one given, or the file's stem in lower case."""
    return given or path.stem.lower()
