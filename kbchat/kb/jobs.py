"""Background write jobs: one worker thread per knowledge base, per-file progress, never blocking.

A job is a unit of writing to one knowledge base (add uploaded files, sync, remove,
rebuild). Jobs of the same knowledge base run one after another in submission order, so
writes to a KB are serialised; jobs of different KBs run side by side. A worker thread
exists only while its KB has jobs. Jobs live in memory: a restarted server forgets them
(the catalog keeps every file's last outcome).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kbchat.errors import KbchatError, NotFound, ServiceUnavailable
from kbchat.kb.knowledge_base import FileOutcome, IngestListener

JobStatus = Literal["queued", "running", "done", "failed"]
JobWork = Callable[[IngestListener], list[FileOutcome]]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    """One write to one knowledge base and how far it got.

    ``status`` is ``done`` when the work finished, even if some files failed (see
    ``files``); ``failed`` when the work itself stopped with ``error``.
    """

    id: str
    kind: str
    kb: str
    status: JobStatus = "queued"
    total: int = 0
    done: int = 0
    files: list[FileOutcome] = field(default_factory=list)
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    version: int = 0

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def to_json(self) -> dict[str, Any]:
        """The job's JSON shape (a contract of the REST API)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "kb": self.kb,
            "status": self.status,
            "total": self.total,
            "done": self.done,
            "files": [asdict(f) for f in self.files],
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class _JobListener(IngestListener):
    """Feeds a running job's progress back to its manager."""

    def __init__(self, manager: JobManager, job: Job) -> None:
        self.manager = manager
        self.job = job

    def started(self, total: int) -> None:
        self.manager._update(self.job, total=self.job.done + total)

    def file_done(self, outcome: FileOutcome) -> None:
        self.manager._record(self.job, outcome)

    def waiting(self, message: str) -> None:
        log.info("job %s: %s", self.job.id, message)


@dataclass(slots=True)
class _Pending:
    job: Job
    work: JobWork


class JobManager:
    """Queues write jobs per knowledge base and runs them on one worker thread per KB.

    Args:
        keep: Finished jobs remembered (the oldest are forgotten first).
    """

    def __init__(self, *, keep: int = 500) -> None:
        if keep <= 0:
            raise ValueError(f"keep must be > 0, got {keep}")
        self.keep = keep
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, deque[_Pending]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._closed = False
        self._counter = itertools.count(1)
        self._observers: list[Callable[[], None]] = []

    def submit(
        self, kb: str, kind: str, work: JobWork, *, outcomes: Sequence[FileOutcome] = ()
    ) -> Job:
        """Queue ``work`` for knowledge base ``kb``; returns the queued job at once.

        Args:
            kb: The knowledge base written to; its jobs run one at a time, in order.
            kind: What the job does (add, sync, remove, rebuild), for display.
            work: Called on the KB's worker thread with a listener that records progress.
            outcomes: Files already decided before the work runs (e.g. refused uploads).

        Raises:
            ServiceUnavailable: the manager is closed.
        """
        job = Job(
            id=f"{next(self._counter)}-{secrets.token_hex(4)}",
            kind=kind,
            kb=kb,
            total=len(outcomes),
            done=len(outcomes),
            files=list(outcomes),
        )
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the server is shutting down; no new jobs are accepted")
            self._jobs[job.id] = job
            self._queues.setdefault(kb, deque()).append(_Pending(job, work))
            if kb not in self._workers:
                worker = threading.Thread(
                    target=self._drain, args=(kb,), name=f"kbchat-job-{kb}"[:60]
                )
                self._workers[kb] = worker
                worker.start()
            self._forget_old()
        return job

    def get(self, job_id: str) -> Job:
        """The job with this id.

        Raises:
            NotFound: no such job (or it finished long ago and was forgotten).
        """
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job

    def snapshot(self, job_id: str) -> tuple[dict[str, Any], int, bool]:
        """The job's JSON, version and whether it finished, read consistently."""
        job = self.get(job_id)
        with self._lock:
            return job.to_json(), job.version, job.finished

    def list_jobs(self, kb: str | None = None) -> list[Job]:
        """Known jobs, newest first, optionally of one knowledge base only."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if kb is None or j.kb == kb]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def active(self, kb: str) -> list[Job]:
        """Jobs of ``kb`` that are queued or running."""
        return [job for job in self.list_jobs(kb) if not job.finished]

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job finishes (or ``timeout`` seconds pass); returns it."""
        job = self.get(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not job.finished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining)
        return job

    def observe(self, observer: Callable[[], None]) -> Callable[[], None]:
        """Call ``observer()`` after every change to any job (from the thread that made it,
        holding the manager's lock: it must only hand the news on, e.g. set an event).

        Returns:
            A function that stops the calls.
        """
        with self._lock:
            self._observers.append(observer)

        def stop() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._observers.remove(observer)

        return stop

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting jobs, drop queued ones, and wait for running ones to finish."""
        with self._lock:
            self._closed = True
            for queue in self._queues.values():
                while len(queue) > 1:
                    dropped = queue.pop().job
                    self._finish(dropped, "failed", "the server shut down before the job ran")
            workers = list(self._workers.values())
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    # -- worker side -----------------------------------------------------------------

    def _drain(self, kb: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(kb)
                if not queue:
                    self._queues.pop(kb, None)
                    self._workers.pop(kb, None)
                    return
                pending = queue[0]
                pending.job.status = "running"
                pending.job.started_at = time.time()
                pending.job.version += 1
                self._notify()
            self._run(pending)
            with self._lock:
                queue.popleft()

    def _run(self, pending: _Pending) -> None:
        job = pending.job
        try:
            pending.work(_JobListener(self, job))
        except KbchatError as exc:
            with self._lock:
                self._finish(job, "failed", str(exc))
            return
        except Exception as exc:  # a bug must fail the job, not kill the KB's worker
            log.exception("job %s (%s on %s) crashed", job.id, job.kind, job.kb)
            with self._lock:
                self._finish(job, "failed", f"internal error: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            self._finish(job, "done", None)

    def _update(self, job: Job, *, total: int) -> None:
        with self._lock:
            job.total = total
            job.version += 1
            self._notify()

    def _record(self, job: Job, outcome: FileOutcome) -> None:
        with self._lock:
            job.files.append(outcome)
            job.done += 1
            job.total = max(job.total, job.done)
            job.version += 1
            self._notify()

    def _finish(self, job: Job, status: JobStatus, error: str | None) -> None:
        """Mark ``job`` finished; the caller holds the lock."""
        job.status = status
        job.error = error
        job.finished_at = time.time()
        job.version += 1
        self._notify()

    def _notify(self) -> None:
        """Wake waiters and observers; the caller holds the lock."""
        self._changed.notify_all()
        for observer in self._observers:
            observer()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished]
        excess = len(finished) - self.keep
        if excess > 0:
            for job in sorted(finished, key=lambda j: j.finished_at or 0.0)[:excess]:
                del self._jobs[job.id]
