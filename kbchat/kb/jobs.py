"""Write jobs in the catalog: queued by any server, run by any worker, never lost.

A job is one write a user asked for (add uploaded files, remove a file, sync, rebuild,
attach files to a conversation). It is stored as rows of the catalog's ``jobs`` and
``job_tasks`` tables, so every server and worker sharing the catalog sees it, and a restart
forgets nothing. A job is split into tasks, the unit a worker claims: one per file for adds
and removes, one for the whole knowledge base for sync and rebuild.

``JobQueue`` is the one object servers and workers use: here, submitting, following and
cancelling jobs and what a running task reports into its job; claiming tasks under a lease and
taking them back (per-file order, retries with backoff, leases that run out) in its base,
``kbchat.kb.job_leases.TaskLeases``. The shapes (``Job``, ``Task``, ``ClaimedTask``) are in
``kbchat.kb.job_types`` and importable from here.

Cancelling a job (``JobQueue.cancel``) finishes its queued tasks at once as cancelled and flags
its running ones (``cancel_reason``, in the shared table, so a worker in any process sees it):
their worker stops at its next embedding batch and leaves the file as it was.

Why a table of our own rather than procrastinate or pgqueuer: both are PostgreSQL-only, and
the embedded default is SQLite; the queue needs the catalog's transaction (a task claimed in
the same database as the chunks it writes) and per-file ordering, which neither offers.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import and_, func, insert, select, update

from kbchat.errors import Conflict, NotFound, ServiceUnavailable
from kbchat.kb.job_leases import BATCH, LEASE_S, MAX_ATTEMPTS, TaskLeases, backoff
from kbchat.kb.job_tables import RELEASED, bump, forget_old, load_jobs, settle
from kbchat.kb.job_types import (
    FINISHED,
    UNFINISHED,
    ClaimedTask,
    Job,
    JobStatus,
    Task,
    TaskStatus,
    cancelled_outcome,
    claimed_task,
)
from kbchat.kb.prepare import FileOutcome
from kbchat.store.catalog import Catalog
from kbchat.store.catalog_schema import job_tasks, jobs

__all__ = [
    "BATCH",
    "FINISHED",
    "LEASE_S",
    "MAX_ATTEMPTS",
    "UNFINISHED",
    "ClaimedTask",
    "Job",
    "JobQueue",
    "JobStatus",
    "Task",
    "TaskStatus",
    "backoff",
    "cancelled_outcome",
]

log = logging.getLogger(__name__)


class JobQueue(TaskLeases):
    """The catalog's job tables: submit and follow jobs (servers), claim and finish tasks
    (workers, ``TaskLeases``).

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
        super().__init__(catalog, lease_s=lease_s, max_attempts=max_attempts)
        self.keep = keep
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
        forget_old(self.engine, self.keep)
        self.notify()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """The job with this id, as the catalog holds it now. Tasks whose worker stopped
        renewing their lease are taken back first (``requeue_expired``), so a job whose only
        worker was killed reads queued (or failed, out of attempts), not running forever.

        Raises:
            NotFound: no such job (or it finished long ago and was deleted).
        """
        self.requeue_expired()
        found = load_jobs(self.engine, jobs.c.id == job_id)
        if not found:
            raise NotFound(f"no job with id {job_id!r}")
        return found[0]

    def snapshot(self, job_id: str) -> tuple[dict[str, Any], int, bool]:
        """The job's JSON, version and whether it finished."""
        job = self.get(job_id)
        return job.to_json(), job.version, job.finished

    def list_jobs(self, kb: str | None = None, *, limit: int = 200) -> list[Job]:
        """Recent jobs, newest first, optionally of one knowledge base only; tasks of
        stopped workers are taken back first, as in ``get``."""
        self.requeue_expired()
        return load_jobs(self.engine, None if kb is None else jobs.c.kb == kb, limit=limit)

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
                task = claimed_task(row)
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
                        **RELEASED,
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
            settle(conn, job_id, now)
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
        return load_jobs(self.engine, and_(jobs.c.kb == kb, jobs.c.status.in_(UNFINISHED)))

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

    def close(self) -> None:
        """Accept no more jobs (those queued stay queued for the next worker)."""
        self._closed = True
        self.notify()

    # -- what a running task reports (workers) -----------------------------------------

    def started(self, task_id: int, total: int) -> None:
        """A whole-KB task found ``total`` files to process."""
        with self.engine.begin() as conn:
            conn.execute(update(job_tasks).where(job_tasks.c.id == task_id).values(total=total))
            bump(conn, task_id)
        self.notify()

    def progress(self, task_id: int, done: int, total: int) -> None:
        """``done`` of ``total`` chunks of the files a running task holds are embedded."""
        with self.engine.begin() as conn:
            conn.execute(
                update(job_tasks)
                .where(job_tasks.c.id == task_id, job_tasks.c.status == "running")
                .values(chunks_done=done, chunks_total=total)
            )
            bump(conn, task_id)
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
            bump(conn, task_id)
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
                bump(conn, task_id)
        if started:
            self.notify()
