"""A write job and its tasks as the catalog's ``jobs`` and ``job_tasks`` rows read: ``Job``
(what servers show, with its JSON), ``Task`` (what is submitted) and ``ClaimedTask`` (what a
worker holds)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kbchat.kb.prepare import FileOutcome
from kbchat.types import OutcomeStatus

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
TaskStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: tuple[str, ...] = ("done", "failed", "cancelled")
UNFINISHED: tuple[str, ...] = ("queued", "running")


@dataclass(slots=True)
class Job:
    """One write to one knowledge base and how far it got.

    ``status`` is ``queued`` while no worker holds any of its unfinished tasks (before the
    first claim, and again after a stopping worker handed its tasks back or a task waits to be
    retried, ``error`` then saying why: "retrying: worker w1 stopped while running it");
    ``running`` while a worker holds one; ``done`` when the work finished, even if
    some files failed (see ``files``); ``failed`` when the work itself stopped with
    ``error``; ``cancelled`` when someone stopped it (``error`` says who or why; files
    finished before stay, the others are listed as cancelled and left as they were).
    ``done`` of ``total`` files were processed (indexed, unchanged, skipped, failed, removed;
    cancelled files were not). ``chunks`` is how many chunks the files it indexed were
    written with, so far (a finished add or rebuild: every chunk it embedded and stored).
    ``chunks_done`` of ``chunks_total`` are the chunks embedded so far of the files in hand
    (a big file's progress between ``done`` counts); both None when no file is being
    embedded (queued, between two batches, finished).
    """

    id: str
    kind: str
    kb: str
    status: JobStatus = "queued"
    total: int = 0
    done: int = 0
    files: list[FileOutcome] = field(default_factory=list)
    error: str | None = None
    chunks: int = 0
    chunks_done: int | None = None
    chunks_total: int | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    version: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def counts(self) -> dict[str, int]:
        """How many of its files are in each status (indexed, skipped, cancelled, ...)."""
        counts: dict[str, int] = {}
        for outcome in self.files:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The job's JSON shape (a contract of the REST API)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "kb": self.kb,
            "status": self.status,
            "total": self.total,
            "done": self.done,
            "files": [f.to_json() for f in self.files],
            "error": self.error,
            "chunks": self.chunks,
            "chunks_done": self.chunks_done,
            "chunks_total": self.chunks_total,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True, slots=True)
class Task:
    """A unit of a job, as submitted.

    Attributes:
        op: What the worker does (``kbchat.kb.worker.OPS``): add, remove, sync, rebuild, attach.
        file: The file in the KB it writes; None for the whole knowledge base.
        payload: The op's arguments (JSON-serialisable).
        sha256: Content hash of an uploaded file, if any.
        host: The host that must run it, when it reads files only that host has.
    """

    op: str
    file: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task a worker holds the lease of."""

    id: int
    job_id: str
    kb: str
    op: str
    file: str | None
    payload: dict[str, Any]
    attempts: int
    sha256: str | None = None


def claimed_task(row: Any, *, attempts: int | None = None) -> ClaimedTask:
    return ClaimedTask(
        id=int(row["id"]),
        job_id=row["job_id"],
        kb=row["kb"],
        op=row["op"],
        file=row["file"],
        payload=json.loads(row["payload"]),
        attempts=int(row["attempts"]) if attempts is None else attempts,
        sha256=row["sha256"],
    )


def cancelled_outcome(task: ClaimedTask, reason: str) -> FileOutcome:
    """The outcome of a file whose task was cancelled: left as it was."""
    assert task.file is not None
    return FileOutcome(task.file, str(task.payload.get("path", "")), "cancelled", reason)


def _outcome(raw: dict[str, Any]) -> FileOutcome:
    raw = dict(raw)
    raw["notes"] = tuple(raw.get("notes") or ())
    return FileOutcome(**raw)


def _in_hand(task: Any) -> list[FileOutcome]:
    """A one-file task not yet decided, as a file ``running`` once its worker has reached it
    (``started_at``), else ``pending`` (queued, or claimed in a batch and waiting its turn),
    so a job lists all its files from the start."""
    if task["file"] is None or task["status"] not in ("queued", "running"):
        return []
    path = str(json.loads(task["payload"]).get("path") or "")
    started = task["status"] == "running" and task["started_at"] is not None
    status: OutcomeStatus = "running" if started else "pending"
    return [FileOutcome(task["file"], path, status)]


def job_from_rows(row: Any, tasks: Sequence[Any]) -> Job:
    files = [_outcome(o) for o in json.loads(row["refused"])]
    total = len(files)
    chunks_done = chunks_total = 0
    for task in tasks:
        files += [_outcome(o) for o in json.loads(task["outcomes"])] or _in_hand(task)
        total += int(task["total"])
        if task["status"] == "running":  # a task that stops running forgets its progress
            chunks_done += int(task["chunks_done"] or 0)
            chunks_total += int(task["chunks_total"] or 0)
    # cancelled files were not processed; files still in hand are not done
    done = sum(f.status not in ("cancelled", "pending", "running") for f in files)
    return Job(
        id=row["id"],
        kind=row["kind"],
        kb=row["kb"],
        status=row["status"],
        total=max(total, done),
        done=done,
        files=files,
        error=row["error"],
        chunks=sum(f.chunks for f in files if f.status == "indexed"),
        chunks_done=chunks_done if chunks_total else None,
        chunks_total=chunks_total or None,
        created_at=float(row["created_at"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        version=int(row["version"]),  # bumped by every change to the job or its tasks
    )
