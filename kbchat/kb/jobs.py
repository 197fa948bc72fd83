"""Write jobs in the catalog: queued by any server, run by any worker, never lost.

A job is one write a user asked for (add uploaded files, remove a file, sync, rebuild,
attach files to a conversation). It is stored as rows of the catalog's ``jobs`` and
``job_tasks`` tables, so every server and worker sharing the catalog sees it, and a restart
forgets nothing. A job is split into tasks, the unit a worker claims: one per file for adds
and removes, one for the whole knowledge base for sync and rebuild.

Claiming (``JobQueue.claim``) follows these rules:

- A task waits for every earlier unfinished task of its knowledge base that writes the same
  file or the whole KB, so writes to one file happen in the order they were asked for, and
  different files are written side by side by different workers. The same file uploaded twice
  at once is therefore indexed once: the second task finds it unchanged by its hash.
- On PostgreSQL the candidate rows are locked with ``SELECT ... FOR UPDATE SKIP LOCKED``; on
  both databases the claim itself is a conditional ``UPDATE`` (``status = 'queued'``), so two
  workers can never both win one task.
- A claimed task carries a lease (``lease_expires``) that its worker renews while it runs. A
  task whose lease ran out (its worker was killed or lost the network) is queued again, with
  exponential backoff, by whichever worker claims next; after ``max_attempts`` it fails.
- A task whose work raised a transient error (a backend or the database unreachable, an OS
  error) is retried the same way; any other error fails it at once with the reason.
- Cancelling a job (``JobQueue.cancel``) finishes its queued tasks at once as cancelled and
  flags its running ones (``cancel_reason``, in the shared table, so a worker in any process
  sees it): their worker stops at its next embedding batch and leaves the file as it was.

Why a table of our own rather than procrastinate or pgqueuer: both are PostgreSQL-only, and
the embedded default is SQLite; the queue needs the catalog's transaction (a task claimed in
the same database as the chunks it writes) and per-file ordering, which neither offers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from kbchat.errors import Conflict, NotFound, ServiceUnavailable
from kbchat.kb.knowledge_base import FileOutcome, OutcomeStatus
from kbchat.store.catalog import Catalog
from kbchat.store.catalog_schema import files, job_tasks, jobs, kbs

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
TaskStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: tuple[str, ...] = ("done", "failed", "cancelled")
UNFINISHED: tuple[str, ...] = ("queued", "running")

log = logging.getLogger(__name__)

LEASE_S = 30.0
"""How long a claimed task stays its worker's without renewal (renewed every third of it)."""
MAX_ATTEMPTS = 3
BACKOFF_S = 2.0
"""Retry ``n`` of a task waits ``BACKOFF_S * 4**(n-1)`` seconds (2 s, 8 s, ...), at most 60."""
BATCH = 8
"""Most add tasks of one job a worker claims at once (embedded and committed together)."""


_RELEASED: dict[str, Any] = {
    "lease_owner": None,
    "lease_expires": None,
    "chunks_done": None,
    "chunks_total": None,
}
"""What a task that stops running gives up: its worker's lease and its chunk progress."""


@dataclass(slots=True)
class Job:
    """One write to one knowledge base and how far it got.

    ``status`` is ``queued`` while no worker holds any of its unfinished tasks (before the
    first claim, and again after a stopping worker handed its tasks back or a task waits to be
    retried); ``running`` while a worker holds one; ``done`` when the work finished, even if some files failed (see
    ``files``); ``failed`` when the work itself stopped with ``error``; ``cancelled`` when
    someone stopped it (``error`` says who or why; files finished before stay, the others
    are listed as cancelled and left as they were). ``done`` of ``total`` files were
    processed (indexed, unchanged, skipped, failed, removed; cancelled files were not).
    ``chunks`` is how many chunks the files it indexed were written with, so far (a finished
    add or rebuild: every chunk it embedded and stored). ``chunks_done`` of ``chunks_total``
    are the chunks embedded so far of the files in hand (a big file's progress between
    ``done`` counts); both None when no file is being embedded (queued, between two
    batches, finished).
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


class JobQueue:
    """The catalog's job tables: submit and follow jobs (servers), claim and finish tasks
    (workers).

    Args:
        catalog: The catalog holding the tables.
        lease_s: Lease length of a claimed task, in seconds.
        max_attempts: Runs of a task (first try plus retries) before it fails.
        keep: Finished jobs kept; older ones are deleted as new ones are submitted.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        lease_s: float = LEASE_S,
        max_attempts: int = MAX_ATTEMPTS,
        keep: int = 500,
    ) -> None:
        if keep <= 0 or lease_s <= 0 or max_attempts <= 0:
            raise ValueError("keep, lease_s and max_attempts must be > 0")
        self.catalog = catalog
        self.engine = catalog.engine
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.keep = keep
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._observers: list[Callable[[], None]] = []
        self._closed = False

    # -- submitting and following (servers) --------------------------------------------

    def submit(
        self,
        kb: str,
        kind: str,
        tasks: Sequence[Task],
        *,
        outcomes: Sequence[FileOutcome] = (),
    ) -> Job:
        """Queue a job of ``tasks`` writing to knowledge base ``kb``; returns it at once.

        Args:
            kb: The knowledge base written to.
            kind: What the job does (add, sync, remove, rebuild, attach, resume), for display.
            tasks: Its tasks; none (every file refused) makes a job that is done at once.
            outcomes: Files already decided before any task runs (e.g. refused uploads).

        Raises:
            ServiceUnavailable: the queue is closed (the server is shutting down).
        """
        if self._closed:
            raise ServiceUnavailable("the server is shutting down; no new jobs are accepted")
        now = time.time()
        job_id = f"{int(now * 1000):x}-{secrets.token_hex(4)}"
        finished = not tasks
        with self.engine.begin() as conn:
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    kb=kb,
                    kind=kind,
                    status="done" if finished else "queued",
                    refused=json.dumps([asdict(o) for o in outcomes]),
                    version=0,
                    created_at=now,
                    started_at=now if finished else None,
                    finished_at=now if finished else None,
                )
            )
            if tasks:
                conn.execute(
                    insert(job_tasks),
                    [
                        {
                            "job_id": job_id,
                            "kb": kb,
                            "file": task.file,
                            "op": task.op,
                            "payload": json.dumps(task.payload),
                            "sha256": task.sha256,
                            "host": task.host,
                            "status": "queued",
                            "attempts": 0,
                            "run_after": now,
                            "total": 0 if task.file is None else 1,
                            "done": 0,
                            "outcomes": "[]",
                        }
                        for task in tasks
                    ],
                )
        self._forget_old()
        self.notify()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """The job with this id, as the catalog holds it now.

        Raises:
            NotFound: no such job (or it finished long ago and was deleted).
        """
        found = self._load(jobs.c.id == job_id)
        if not found:
            raise NotFound(f"no job with id {job_id!r}")
        return found[0]

    def snapshot(self, job_id: str) -> tuple[dict[str, Any], int, bool]:
        """The job's JSON, version and whether it finished."""
        job = self.get(job_id)
        return job.to_json(), job.version, job.finished

    def list_jobs(self, kb: str | None = None, *, limit: int = 200) -> list[Job]:
        """Recent jobs, newest first, optionally of one knowledge base only."""
        return self._load(None if kb is None else jobs.c.kb == kb, limit=limit)

    def cancel_kb(self, kb: str, reason: str) -> int:
        """Fail every unfinished task of knowledge base ``kb`` with ``reason`` (it was dropped:
        a knowledge base made later under the name must not get its files). Returns how many."""
        with self.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(job_tasks.c.id).where(
                        job_tasks.c.kb == kb, job_tasks.c.status.in_(UNFINISHED)
                    )
                ).scalars()
            )
        if ids:
            self.finish(ids, error=reason)
        return len(ids)

    def cancel(self, job_id: str, reason: str) -> list[ClaimedTask]:
        """Stop job ``job_id``: its queued tasks finish at once as cancelled, with a
        ``cancelled`` outcome for each one's file; its running tasks are flagged with
        ``reason``, and their worker (in any process) stops them at its next embedding batch.
        Cancelling a job that is still stopping flags again, harmlessly.

        Returns:
            The tasks stopped before they ran (their files' pending rows are the caller's to
            forget: ``kbchat.kb.cancel``).

        Raises:
            NotFound: no such job.
            Conflict: the job has already finished.
        """
        job = self.get(job_id)
        if job.finished:
            raise Conflict(f"job {job_id} has already finished ({job.status}); nothing to cancel")
        now = time.time()
        stopped: list[ClaimedTask] = []
        with self.engine.begin() as conn:
            query = select(job_tasks).where(
                job_tasks.c.job_id == job_id, job_tasks.c.status == "queued"
            )
            if conn.dialect.name == "postgresql":  # tasks being claimed now are flagged below
                query = query.with_for_update(skip_locked=True)
            for row in conn.execute(query.order_by(job_tasks.c.id)).mappings().all():
                task = _claimed(row)
                outcomes = [] if task.file is None else [asdict(cancelled_outcome(task, reason))]
                won = conn.execute(
                    update(job_tasks)
                    .where(job_tasks.c.id == task.id, job_tasks.c.status == "queued")
                    .values(
                        status="cancelled",
                        error=reason,
                        cancel_reason=reason,
                        outcomes=json.dumps(outcomes),
                        done=len(outcomes),
                        total=len(outcomes),
                        finished_at=now,
                        **_RELEASED,
                    )
                ).rowcount
                if won:
                    stopped.append(task)
            conn.execute(  # running ones, and any a worker is claiming at this moment
                update(job_tasks)
                .where(
                    job_tasks.c.job_id == job_id,
                    job_tasks.c.status.in_(UNFINISHED),
                    job_tasks.c.cancel_reason.is_(None),  # the first reason stays
                )
                .values(cancel_reason=reason)
            )
            conn.execute(select(jobs.c.id).where(jobs.c.id == job_id).with_for_update()).all()
            self._settle(conn, job_id, now)
            claimed = conn.execute(  # held by a worker that has not reached their files
                select(func.count()).where(
                    job_tasks.c.job_id == job_id,
                    job_tasks.c.status == "running",
                    job_tasks.c.started_at.is_(None),
                )
            ).scalar_one()
        log.info(
            "job %s cancelled (%s): %d task(s) had not started",
            job_id,
            reason,
            len(stopped) + int(claimed),
        )
        self.notify()
        return stopped

    def cancel_reason(self, task_ids: Sequence[int]) -> str | None:
        """Why the job of these running tasks was cancelled, or None if it was not."""
        if not task_ids:
            return None
        with self.engine.connect() as conn:
            return conn.execute(
                select(job_tasks.c.cancel_reason)
                .where(job_tasks.c.id.in_(list(task_ids)), job_tasks.c.cancel_reason.is_not(None))
                .limit(1)
            ).scalar()

    def unfinished_files(self, kb: str, names: Sequence[str]) -> set[str]:
        """Those of ``names`` that a queued or running task of ``kb`` writes."""
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(job_tasks.c.file).where(
                        job_tasks.c.kb == kb,
                        job_tasks.c.file.in_(list(names)),
                        job_tasks.c.status.in_(UNFINISHED),
                    )
                ).scalars()
            )

    def active(self, kb: str) -> list[Job]:
        """Jobs of ``kb`` that are queued or running."""
        return self._load(and_(jobs.c.kb == kb, jobs.c.status.in_(UNFINISHED)))

    def unfinished(self) -> int:
        """How many jobs are queued or running, over every knowledge base."""
        with self.engine.connect() as conn:
            query = select(func.count()).where(jobs.c.status.in_(UNFINISHED))
            return int(conn.execute(query).scalar_one())

    def wait(self, job_id: str, timeout: float | None = None, *, poll_s: float = 0.5) -> Job:
        """Block until the job finishes (or ``timeout`` seconds pass); returns it.

        Woken at once by changes made in this process, and checks every ``poll_s`` for
        changes made by workers elsewhere.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            remaining = None if deadline is None else deadline - time.monotonic()
            if job.finished or (remaining is not None and remaining <= 0):
                return job
            with self._changed:
                self._changed.wait(poll_s if remaining is None else min(poll_s, remaining))

    def observe(self, observer: Callable[[], None]) -> Callable[[], None]:
        """Call ``observer()`` after every change made through this queue object (from the
        thread that made it: it must only hand the news on, e.g. set an event). Changes made
        by other processes are not announced: followers also poll.

        Returns:
            A function that stops the calls.
        """
        with self._lock:
            self._observers.append(observer)

        def stop() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._observers.remove(observer)

        return stop

    def notify(self) -> None:
        """Wake this process's waiters and observers (a job changed)."""
        with self._lock:
            self._changed.notify_all()
            observers = list(self._observers)
        for observer in observers:
            observer()

    def close(self) -> None:
        """Accept no more jobs (those queued stay queued for the next worker)."""
        self._closed = True
        self.notify()

    # -- claiming and finishing (workers) ----------------------------------------------

    def claim(
        self, owner: str, host: str, *, batch: int = BATCH, skip_kbs: Collection[str] = ()
    ) -> list[ClaimedTask]:
        """Lease the next runnable task (plus up to ``batch - 1`` more adds of its job).

        Args:
            owner: The worker's id, written as the lease holder.
            host: The worker's host: tasks bound to another host are left alone.
            skip_kbs: Knowledge bases to leave alone (written by this process's other workers).

        Returns:
            The claimed tasks; empty when nothing can run now.
        """
        self.requeue_expired()
        now = time.time()
        for _ in range(5):  # lost races (SQLite has no SKIP LOCKED) are tried again
            with self.engine.begin() as conn:
                first = self._candidates(conn, now, host, limit=1, skip_kbs=skip_kbs)
                if not first:
                    return []
                chosen = first[0]
                rows = [chosen]
                if chosen["op"] == "add" and batch > 1:
                    more = self._candidates(
                        conn, now, host, limit=batch, job_id=chosen["job_id"], op="add"
                    )
                    rows += [row for row in more if row["id"] != chosen["id"]][: batch - 1]
                ids = [int(row["id"]) for row in rows]
                won = conn.execute(
                    update(job_tasks)
                    .where(job_tasks.c.id.in_(ids), job_tasks.c.status == "queued")
                    .values(
                        status="running",
                        lease_owner=owner,
                        lease_expires=now + self.lease_s,
                        attempts=job_tasks.c.attempts + 1,
                        # an add's file starts when its worker reaches it (``file_started``)
                        started_at=None if chosen["op"] == "add" else now,
                    )
                ).rowcount
                if won != len(ids):
                    conn.rollback()
                    continue
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == chosen["job_id"])
                    .values(
                        status="running",
                        started_at=func.coalesce(jobs.c.started_at, now),
                        version=jobs.c.version + 1,
                    )
                )
            self.notify()
            return [_claimed(row, attempts=int(row["attempts"]) + 1) for row in rows]
        return []

    def renew(self, task_ids: Sequence[int], owner: str) -> int:
        """Extend the leases ``owner`` holds on ``task_ids``; returns how many it still holds."""
        if not task_ids:
            return 0
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    update(job_tasks)
                    .where(
                        job_tasks.c.id.in_(list(task_ids)),
                        job_tasks.c.lease_owner == owner,
                        job_tasks.c.status == "running",
                    )
                    .values(lease_expires=time.time() + self.lease_s)
                ).rowcount
            )

    def started(self, task_id: int, total: int) -> None:
        """A whole-KB task found ``total`` files to process."""
        with self.engine.begin() as conn:
            conn.execute(update(job_tasks).where(job_tasks.c.id == task_id).values(total=total))
            self._bump(conn, task_id)
        self.notify()

    def progress(self, task_id: int, done: int, total: int) -> None:
        """``done`` of ``total`` chunks of the files a running task holds are embedded."""
        with self.engine.begin() as conn:
            conn.execute(
                update(job_tasks)
                .where(job_tasks.c.id == task_id, job_tasks.c.status == "running")
                .values(chunks_done=done, chunks_total=total)
            )
            self._bump(conn, task_id)
        self.notify()

    def record(self, task_id: int, outcome: FileOutcome) -> None:
        """One file of a task finished."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(job_tasks.c.outcomes, job_tasks.c.done, job_tasks.c.total).where(
                    job_tasks.c.id == task_id, job_tasks.c.status == "running"
                )
            ).first()
            if row is None:  # taken back meanwhile (its lease ran out): not this worker's
                return
            outcomes = [*json.loads(row.outcomes), asdict(outcome)]
            conn.execute(
                update(job_tasks)
                .where(job_tasks.c.id == task_id)
                .values(
                    outcomes=json.dumps(outcomes),
                    done=row.done + 1,
                    total=max(row.total, row.done + 1),
                )
            )
            self._bump(conn, task_id)
        self.notify()

    def finish(
        self, task_ids: Sequence[int], *, error: str | None = None, cancelled: bool = False
    ) -> None:
        """Mark tasks done (or failed with ``error``, or ``cancelled`` with ``error`` saying
        why) and their job finished if it is."""
        if not task_ids:
            return
        now = time.time()
        status = "cancelled" if cancelled else "failed" if error else "done"
        with self.engine.begin() as conn:
            job_ids = self._lock_jobs(conn, task_ids)
            conn.execute(
                update(job_tasks)
                .where(job_tasks.c.id.in_(list(task_ids)))
                .values(
                    status=status,
                    error=error,
                    total=job_tasks.c.done,
                    finished_at=now,
                    **_RELEASED,
                )
            )
            for job_id in job_ids:
                self._settle(conn, job_id, now)
        self.notify()

    def retry(self, task_ids: Sequence[int], error: str) -> bool:
        """Queue tasks again after a transient ``error``, with backoff; fail those out of
        attempts. A task whose file was already decided (its outcome recorded before the
        error) is done with that outcome, not run again. Returns whether any will run again."""
        now = time.time()
        with self.engine.begin() as conn:
            job_ids = self._lock_jobs(conn, task_ids)
            fates = self._requeue(conn, task_ids, error, now)
            for job_id in job_ids:
                self._settle(conn, job_id, now)
        self.notify()
        return "queued" in fates.values()

    def requeue_expired(self) -> int:
        """Queue again (or fail, out of attempts) tasks whose worker stopped renewing; one
        warning per job. Workers racing to do it requeue each task once, and only one of them
        warns about it. Returns how many tasks this call took back."""
        now = time.time()
        with self.engine.connect() as conn:
            expired = conn.execute(
                select(job_tasks.c.id, job_tasks.c.job_id, job_tasks.c.lease_owner).where(
                    job_tasks.c.status == "running", job_tasks.c.lease_expires < now
                )
            ).all()
        taken = 0
        for (job_id, owner), rows in _grouped(expired).items():
            error = f"worker {owner} stopped while running it"
            with self.engine.begin() as conn:
                self._lock_jobs(conn, [row.id for row in rows])
                fates = self._requeue(conn, [row.id for row in rows], error, now, expired=True)
                self._settle(conn, job_id, now)
            if not fates:  # another worker took them back first
                continue
            taken += len(fates)
            counts = ", ".join(
                f"{n} {fate}"
                for fate in ("queued", "done", "failed", "cancelled")
                if (n := sum(f == fate for f in fates.values()))
            )
            log.warning(
                "job %s: worker %s stopped renewing its lease; its %d task(s) taken back (%s)",
                job_id,
                owner,
                len(fates),
                counts,
            )
        if taken:
            self.notify()
        return taken

    def release(self, task_ids: Sequence[int]) -> None:
        """Hand back tasks whose worker is stopping before it started their files: queued
        again at once, the claim not counted as an attempt."""
        if not task_ids:
            return
        now = time.time()
        with self.engine.begin() as conn:
            job_ids = self._lock_jobs(conn, task_ids)
            conn.execute(
                update(job_tasks)
                .where(job_tasks.c.id.in_(list(task_ids)), job_tasks.c.status == "running")
                .values(
                    status="queued",
                    attempts=job_tasks.c.attempts - 1,  # claiming counted one
                    run_after=now,
                    done=0,
                    outcomes="[]",
                    started_at=None,
                    **_RELEASED,
                )
            )
            for job_id in job_ids:
                self._settle(conn, job_id, now)
        self.notify()

    def file_started(self, task_id: int) -> None:
        """The worker holding task ``task_id`` has reached its file: listed ``running`` from
        now (a task claimed in a batch is ``pending`` until then)."""
        with self.engine.begin() as conn:
            started = conn.execute(
                update(job_tasks)
                .where(
                    job_tasks.c.id == task_id,
                    job_tasks.c.status == "running",
                    job_tasks.c.started_at.is_(None),
                )
                .values(started_at=time.time())
            ).rowcount
            if started:
                self._bump(conn, task_id)
        if started:
            self.notify()

    # -- internals ---------------------------------------------------------------------

    def _requeue(
        self,
        conn: Connection,
        task_ids: Sequence[int],
        error: str,
        now: float,
        *,
        expired: bool = False,
    ) -> dict[int, str]:
        """Take running tasks back after ``error``: a file already decided is done, a
        cancelled job's task cancelled, one out of attempts failed, the others queued again
        with backoff. Each change is conditional on the task still running (and, with
        ``expired``, on its lease having run out), so of two workers doing it one wins. A
        failed task's file, listed pending in its knowledge base, is listed failed with the
        error (it was never indexed; a file indexed before keeps its indexed version).
        Returns each task taken back and what it became."""
        rows = conn.execute(
            select(
                job_tasks.c.id,
                job_tasks.c.kb,
                job_tasks.c.file,
                job_tasks.c.attempts,
                job_tasks.c.cancel_reason,
                job_tasks.c.outcomes,
            ).where(job_tasks.c.id.in_(list(task_ids)))
        ).all()
        fates: dict[int, str] = {}
        for row in rows:
            decided = json.loads(row.outcomes) if row.file is not None else []
            if decided:  # its file finished before the error: keep what happened to it
                values: dict[str, Any] = {"status": "done", "error": None, "finished_at": now}
                if decided[-1].get("status") == "cancelled":
                    values.update(status="cancelled", error=decided[-1].get("error"))
            elif row.cancel_reason is not None:  # its job was cancelled meanwhile
                values = {"status": "cancelled", "error": row.cancel_reason, "finished_at": now}
            elif row.attempts >= self.max_attempts:
                values = {
                    "status": "failed",
                    "error": f"{error} (gave up after {row.attempts} attempts)",
                    "finished_at": now,
                }
            else:
                values = {
                    "status": "queued",
                    "error": f"retrying: {error}",
                    "run_after": now + backoff(row.attempts),
                    "done": 0,
                    "outcomes": "[]",
                    "started_at": None,
                }
            still = [job_tasks.c.id == row.id, job_tasks.c.status == "running"]
            if expired:
                still.append(job_tasks.c.lease_expires < now)
            won = conn.execute(
                update(job_tasks).where(*still).values(**_RELEASED, **values)
            ).rowcount
            if won:
                fates[int(row.id)] = str(values["status"])
            if won and values["status"] == "failed" and row.file is not None:
                _fail_pending_file(conn, row.kb, row.file, str(values["error"]), now)
        return fates

    def _candidates(
        self,
        conn: Connection,
        now: float,
        host: str,
        *,
        limit: int,
        job_id: str | None = None,
        op: str | None = None,
        skip_kbs: Collection[str] = (),
    ) -> list[Any]:
        earlier = job_tasks.alias("earlier")
        blocked = exists().where(
            earlier.c.kb == job_tasks.c.kb,
            earlier.c.id < job_tasks.c.id,
            earlier.c.status.in_(UNFINISHED),
            or_(
                earlier.c.file.is_(None),
                job_tasks.c.file.is_(None),
                earlier.c.file == job_tasks.c.file,
            ),
        )
        query = select(job_tasks).where(
            job_tasks.c.status == "queued",
            job_tasks.c.run_after <= now,
            or_(job_tasks.c.host.is_(None), job_tasks.c.host == host),
            ~blocked,
        )
        if skip_kbs:
            query = query.where(job_tasks.c.kb.not_in(list(skip_kbs)))
        if job_id is not None:
            query = query.where(job_tasks.c.job_id == job_id)
        if op is not None:
            query = query.where(job_tasks.c.op == op)
        query = query.order_by(job_tasks.c.id).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=job_tasks)
        return list(conn.execute(query).mappings().all())

    @staticmethod
    def _lock_jobs(conn: Connection, task_ids: Sequence[int]) -> list[str]:
        """The jobs of ``task_ids``, their rows locked until the transaction ends, so that
        workers finishing a job's last tasks at once settle its status one after the other
        (each then sees the others' tasks finished). SQLite serialises writers anyway."""
        job_ids = sorted(
            conn.execute(
                select(job_tasks.c.job_id).where(job_tasks.c.id.in_(list(task_ids))).distinct()
            ).scalars()
        )
        if job_ids:
            conn.execute(
                select(jobs.c.id)
                .where(jobs.c.id.in_(job_ids))
                .order_by(jobs.c.id)
                .with_for_update()
            ).all()
        return job_ids

    @staticmethod
    def _bump(conn: Connection, task_id: int) -> None:
        job_id = select(job_tasks.c.job_id).where(job_tasks.c.id == task_id).scalar_subquery()
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(version=jobs.c.version + 1))

    @staticmethod
    def _settle(conn: Connection, job_id: str, now: float) -> None:
        """Set a job's status from its tasks': running while a worker holds one of them,
        queued when the unfinished ones all wait for a worker (handed back by a stopping
        worker, or taken back to be retried), else finished."""
        states: dict[str, int] = dict(
            conn.execute(
                select(job_tasks.c.status, func.count())
                .where(job_tasks.c.job_id == job_id)
                .group_by(job_tasks.c.status)
            ).all()
        )
        values: dict[str, Any] = {"version": jobs.c.version + 1}
        if states.get("running"):
            values.update(status="running")
        elif states.get("queued"):
            values.update(status="queued")
        elif states.get("cancelled"):
            reason = conn.execute(
                select(job_tasks.c.error)
                .where(job_tasks.c.job_id == job_id, job_tasks.c.status == "cancelled")
                .order_by(job_tasks.c.id)
                .limit(1)
            ).scalar()
            values.update(status="cancelled", error=reason, finished_at=now)
        else:
            failed = conn.execute(
                select(job_tasks.c.error)
                .where(job_tasks.c.job_id == job_id, job_tasks.c.status == "failed")
                .order_by(job_tasks.c.id)
            ).scalars()
            errors = list(dict.fromkeys(e for e in failed if e))
            values.update(
                status="failed" if errors else "done",
                error="; ".join(errors) or None,
                finished_at=now,
            )
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

    def _load(self, where: Any, *, limit: int | None = None) -> list[Job]:
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        if where is not None:
            query = query.where(where)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            if not rows:
                return []
            tasks = (
                conn.execute(
                    select(job_tasks)
                    .where(job_tasks.c.job_id.in_([row["id"] for row in rows]))
                    .order_by(job_tasks.c.id)
                )
                .mappings()
                .all()
            )
        by_job: dict[str, list[Any]] = {}
        for task in tasks:
            by_job.setdefault(task["job_id"], []).append(task)
        return [_job(row, by_job.get(row["id"], [])) for row in rows]

    def _forget_old(self) -> None:
        with self.engine.begin() as conn:
            keep = (
                select(jobs.c.id)
                .where(jobs.c.status.in_(FINISHED))
                .order_by(jobs.c.finished_at.desc())
                .limit(self.keep)
            )
            old = list(
                conn.execute(
                    select(jobs.c.id).where(jobs.c.status.in_(FINISHED), jobs.c.id.not_in(keep))
                ).scalars()
            )
            if old:
                conn.execute(delete(job_tasks).where(job_tasks.c.job_id.in_(old)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(old)))


def _grouped(rows: Sequence[Any]) -> dict[tuple[str, str], list[Any]]:
    """Expired task rows by (job, lease owner)."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.job_id, str(row.lease_owner)), []).append(row)
    return groups


def _fail_pending_file(conn: Connection, kb: str, name: str, error: str, now: float) -> None:
    """List file ``name`` of knowledge base ``kb`` as failed with ``error`` if it is still
    pending (queued and never indexed)."""
    kb_id = select(kbs.c.id).where(kbs.c.name == kb).scalar_subquery()
    conn.execute(
        update(files)
        .where(files.c.kb_id == kb_id, files.c.name == name, files.c.status == "pending")
        .values(status="failed", error=f"{name}: {error}", updated_at=now)
    )


def backoff(attempts: int) -> float:
    """Seconds before retry number ``attempts`` (1-based): 2, 8, 32, then 60."""
    return float(min(60.0, BACKOFF_S * 4 ** max(0, attempts - 1)))


def _claimed(row: Any, *, attempts: int | None = None) -> ClaimedTask:
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


def _job(row: Any, tasks: Sequence[Any]) -> Job:
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
