"""The workers' side of the job queue: claim tasks under a lease, renew it, finish them, and
take back the tasks of workers that stopped (queued again with backoff, or failed).

Claiming (``TaskLeases.claim``) follows these rules:

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
- A worker that is stopping hands back the tasks it has not finished (``release``): queued
  again at once, the claim not counted as an attempt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.engine import Connection

from kbchat.kb.job_tables import RELEASED, fail_pending_file, lock_jobs, settle
from kbchat.kb.job_types import UNFINISHED, ClaimedTask, claimed_task
from kbchat.store.catalog import Catalog
from kbchat.store.catalog_schema import job_tasks, jobs

log = logging.getLogger("kbchat.kb.jobs")  # one logger for the queue's lines

LEASE_S = 30.0
"""How long a claimed task stays its worker's without renewal (renewed every third of it)."""
MAX_ATTEMPTS = 3
BACKOFF_S = 2.0
"""Retry ``n`` of a task waits ``BACKOFF_S * 4**(n-1)`` seconds (2 s, 8 s, ...), at most 60."""
BATCH = 8
"""Most add tasks of one job a worker claims at once (embedded and committed together)."""


class TaskLeases:
    """Claim, renew, finish and take back tasks in the catalog's job tables; the base of
    ``kbchat.kb.jobs.JobQueue``, which adds submitting and following jobs.

    Changes made through this object are announced to its observers (``observe``).

    Args:
        catalog: The catalog holding the tables.
        lease_s: Lease length of a claimed task, in seconds.
        max_attempts: Runs of a task (first try plus retries) before it fails.
    """

    def __init__(self, catalog: Catalog, *, lease_s: float, max_attempts: int) -> None:
        if lease_s <= 0 or max_attempts <= 0:
            raise ValueError("lease_s and max_attempts must be > 0")
        self.catalog = catalog
        self.engine = catalog.engine
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._observers: list[Callable[[], None]] = []

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
            return [claimed_task(row, attempts=int(row["attempts"]) + 1) for row in rows]
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
            job_ids = lock_jobs(conn, task_ids)
            conn.execute(
                update(job_tasks)
                .where(job_tasks.c.id.in_(list(task_ids)))
                .values(
                    status=status,
                    error=error,
                    total=job_tasks.c.done,
                    finished_at=now,
                    **RELEASED,
                )
            )
            for job_id in job_ids:
                settle(conn, job_id, now)
        self.notify()

    def retry(self, task_ids: Sequence[int], error: str) -> bool:
        """Queue tasks again after a transient ``error``, with backoff; fail those out of
        attempts. A task whose file was already decided (its outcome recorded before the
        error) is done with that outcome, not run again. Returns whether any will run again."""
        now = time.time()
        with self.engine.begin() as conn:
            job_ids = lock_jobs(conn, task_ids)
            fates = self._requeue(conn, task_ids, error, now)
            for job_id in job_ids:
                settle(conn, job_id, now)
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
                lock_jobs(conn, [row.id for row in rows])
                fates = self._requeue(conn, [row.id for row in rows], error, now, expired=True)
                settle(conn, job_id, now)
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
            job_ids = lock_jobs(conn, task_ids)
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
                    **RELEASED,
                )
            )
            for job_id in job_ids:
                settle(conn, job_id, now)
        self.notify()

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
                update(job_tasks).where(*still).values(**RELEASED, **values)
            ).rowcount
            if won:
                fates[int(row.id)] = str(values["status"])
            if won and values["status"] == "failed" and row.file is not None:
                fail_pending_file(conn, row.kb, row.file, str(values["error"]), now)
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


def _grouped(rows: Sequence[Any]) -> dict[tuple[str, str], list[Any]]:
    """Expired task rows by (job, lease owner)."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.job_id, str(row.lease_owner)), []).append(row)
    return groups


def backoff(attempts: int) -> float:
    """Seconds before retry number ``attempts`` (1-based): 2, 8, 32, then 60."""
    return float(min(60.0, BACKOFF_S * 4 ** max(0, attempts - 1)))
