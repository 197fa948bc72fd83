"""Workers: claim tasks from the catalog's job queue and run them (``kbchat worker``, and the
in-process workers of ``kbchat serve``).

A worker claims a task (or a batch of one job's adds), renews its lease on a thread of its own
while the work runs, records each file's outcome as it finishes, and marks the task done,
retried (a transient error) or failed. A worker killed mid-task leaves its lease to expire:
the next claim anywhere queues the task again, and re-running it is safe because a file's
chunks are replaced in one catalog transaction and the vector stores follow the catalog.

A cancelled job's running tasks carry a flag in the task table; the worker reads it before
each file, each commit and after each embedding batch (``TaskListener.cancelled``), abandons
the files not yet committed (the catalog and stores are as before for them: nothing of a file
is written before its commit) and finishes the tasks as cancelled. A worker told to stop
(``stop_soon``) starts no new file, lets a fully embedded file commit, and hands its other
tasks back to the queue unchanged.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from kbchat.errors import BackendError, KbchatError, ServiceUnavailable
from kbchat.kb.cancel import forget_files
from kbchat.kb.ingest_listener import IngestListener
from kbchat.kb.job_leases import BATCH
from kbchat.kb.job_types import ClaimedTask, cancelled_outcome
from kbchat.kb.jobs import JobQueue
from kbchat.kb.originals import StagedFile, drop_staged, drop_unused_blob
from kbchat.kb.task_listener import STOPPING, TaskListener
from kbchat.kb.task_ops import (
    OPS,
    SAMPLE_KB,
    Op,
    Work,
    add_tasks,
    attach_task,
    rebuild_task,
    remove_task,
    sample_task,
    sync_task,
    this_host,
)

if TYPE_CHECKING:
    from kbchat.app import Services

__all__ = [  # the tasks a worker runs are importable from here (kbchat.kb.task_ops)
    "OPS",
    "SAMPLE_KB",
    "TRANSIENT",
    "Op",
    "Work",
    "Worker",
    "add_tasks",
    "attach_task",
    "rebuild_task",
    "remove_task",
    "sample_task",
    "sync_task",
    "this_host",
]

log = logging.getLogger(__name__)


TRANSIENT: tuple[type[BaseException], ...] = (BackendError, ServiceUnavailable, DBAPIError, OSError)
"""Errors worth another attempt: a backend, the database or the disk failed for now."""


_QUIET = IngestListener()

_CLAIMING = threading.Lock()
"""Held while a worker of this process claims and marks its knowledge base busy, so that two
workers sharing a ``busy`` set never claim tasks of one knowledge base at once."""


class Worker:
    """Claims and runs tasks until stopped.

    Args:
        services: Library, file chats and settings the ops use.
        queue: The job queue in the catalog.
        poll_s: Seconds between claims when the queue is empty.
        busy: Knowledge bases that this process's other workers are writing; a worker leaves
            their tasks to them (shared between the workers of one process).
    """

    def __init__(
        self,
        services: Services,
        queue: JobQueue,
        *,
        poll_s: float = 1.0,
        batch: int = BATCH,
        busy: set[str] | None = None,
        ops: dict[str, Op] | None = None,
    ) -> None:
        self.services = services
        self.queue = queue
        self.poll_s = poll_s
        self.batch = batch
        self.host = this_host()
        self.owner = f"{self.host}:{os.getpid()}:{secrets.token_hex(3)}"
        self.ops = OPS if ops is None else ops
        self._busy = busy if busy is not None else set()
        self._busy_lock = _CLAIMING  # one per process, as ``busy`` is shared in it
        self._held: list[int] = []
        self._reporter: TaskListener | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run on a daemon thread of its own."""
        self._thread = threading.Thread(
            target=self.run, name=f"kbchat-worker-{self.owner}", daemon=True
        )
        self._thread.start()

    @property
    def busy(self) -> bool:
        """Whether it holds a task now."""
        return bool(self._held)

    def in_hand(self) -> tuple[str, list[str]] | None:
        """(knowledge base, files being read or embedded) of the task it holds, or None."""
        reporter = self._reporter
        if reporter is None or not self._held:
            return None
        return reporter.kb, list(reporter.in_hand)

    def stop_soon(self) -> None:
        """Claim nothing more and start no new file; the file in hand commits if its chunks
        are all embedded, else it stops at its next embedding batch. Tasks not finished go
        back to the queue at once (to run at the next start of any worker)."""
        self._stop.set()

    def stop(self, timeout: float = 30.0, abandon: threading.Event | None = None) -> bool:
        """``stop_soon``, then wait up to ``timeout`` seconds (or until ``abandon`` is set)
        for the task in hand to end. Returns whether it did: a task left running is queued
        again once its lease expires, and its unfinished file was not written."""
        self._stop.set()
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and not (abandon is not None and abandon.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._thread.join(min(left, 0.2))
        return not self._thread.is_alive()

    def run(self) -> None:
        """Claim and run tasks until ``stop``; the lease renewer runs beside."""
        renewer = threading.Thread(
            target=self._renew, name=f"kbchat-lease-{self.owner}", daemon=True
        )
        renewer.start()
        log.info("worker %s started", self.owner)
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # the database away: wait and try again
                log.exception("worker %s: claiming failed", self.owner)
                worked = False
            if not worked:
                self._stop.wait(self.poll_s)
        log.info("worker %s stopped", self.owner)

    def run_once(self) -> bool:
        """Claim one batch of tasks and run it; returns False when nothing could be claimed."""
        with self._busy_lock:
            tasks = self.queue.claim(
                self.owner, self.host, batch=self.batch, skip_kbs=set(self._busy)
            )
            if not tasks:
                return False
            kb = tasks[0].kb
            self._busy.add(kb)
        ids = [task.id for task in tasks]
        self._held = ids
        try:
            self._run(kb, tasks, ids)
        finally:
            self._held = []
            with self._busy_lock:
                self._busy.discard(kb)
        return True

    def _run(self, kb: str, tasks: list[ClaimedTask], ids: list[int]) -> None:
        op = self.ops.get(tasks[0].op)
        if op is None:
            self.queue.finish(
                ids, error=f"unknown task {tasks[0].op!r} (a newer kbchat queued it?)"
            )
            return
        files = [task.file for task in tasks if task.file is not None]
        log.info(
            "task %s: %s on %r%s",
            ",".join(map(str, ids)),
            tasks[0].op,
            kb,
            f" ({len(files)} file(s))" if files else "",
            extra={"fields": {"worker": self.owner, "attempt": tasks[0].attempts}},
        )
        work = Work(self.services, kb, tasks, _QUIET)
        reporter = TaskListener(self.queue, tasks, staged=work.staged, stopping=self._stop)
        work.listener = self._reporter = reporter
        if reporter.cancelled() == STOPPING:  # stopping as it was claimed: not started
            self.queue.release(ids)
            log.info("task %s: handed back to the queue (%s)", ",".join(map(str, ids)), STOPPING)
            return
        if reporter.reason is not None:  # cancelled as it was claimed
            self._abandon(kb, tasks, reporter, [])
            return
        again = False
        try:
            op(work)
        except TRANSIENT as exc:
            log.warning("task %s (%s on %s) failed, will retry: %s", ids, tasks[0].op, kb, exc)
            error = str(exc) or type(exc).__name__
            again = self.queue.retry(ids, error)
            if not again:
                undecided = [t for t in tasks if t.id not in reporter.decided]
                gave_up = f"{error} (gave up after {tasks[0].attempts} attempts)"
                self._give_up(kb, undecided, gave_up)
            return
        except KbchatError as exc:
            self._fail(kb, tasks, reporter, str(exc))
            return
        except Exception as exc:  # a bug must fail the task, not kill the worker
            log.exception("task %s (%s on %s) crashed", ids, tasks[0].op, kb)
            self._fail(kb, tasks, reporter, f"internal error: {type(exc).__name__}: {exc}")
            return
        else:
            if reporter.handed_back:
                self._hand_back(tasks, reporter)
            elif reporter.stopped:
                finished = [t for t in tasks if t.id not in reporter.stopped]
                self._abandon(kb, tasks, reporter, finished)
            else:
                self.queue.finish(ids)
        finally:  # the tasks are settled: tidy what they leave
            self._reporter = None
            again = again or bool(reporter.handed_back)
            self._tidy_staged(tasks, work.staged, again=again)
            if not again:
                self._drop_blobs(tasks)

    def _fail(
        self, kb: str, tasks: Sequence[ClaimedTask], reporter: TaskListener, error: str
    ) -> None:
        """The work stopped with ``error``: tasks whose files were decided before are done,
        the others fail with it (their files say why in the catalog)."""
        undecided = [t for t in tasks if t.id not in reporter.decided]
        self.queue.finish([t.id for t in tasks if t.id in reporter.decided])
        self.queue.finish([t.id for t in undecided], error=error)
        self._give_up(kb, undecided, error)

    def _hand_back(self, tasks: Sequence[ClaimedTask], reporter: TaskListener) -> None:
        """The worker is stopping: tasks whose files finished are done, the others go back
        to the queue unchanged (their files were left as they were)."""
        back = [task.id for task in tasks if task.id in reporter.handed_back]
        self.queue.finish([task.id for task in tasks if task.id not in reporter.handed_back])
        self.queue.release(back)
        log.info("task %s: handed back to the queue (%s)", ",".join(map(str, back)), STOPPING)

    def _drop_blobs(self, tasks: Sequence[ClaimedTask]) -> None:
        """Delete the catalog's copies of uploads no file and no unfinished task names any
        more (a replacement that failed; called once its tasks have finished)."""
        shas = {t.sha256 for t in tasks if t.op == "add" and t.sha256}
        if not shas or self.services is None:
            return
        try:
            for sha in shas:
                drop_unused_blob(self.services.library.catalog, sha)
        except Exception as exc:  # the database away: the blob stays until the next clean-up
            log.warning("could not drop unused uploads from the catalog: %s", exc)

    @staticmethod
    def _tidy_staged(
        tasks: Sequence[ClaimedTask], staged: dict[str, StagedFile], *, again: bool
    ) -> None:
        """Drop the staged copies no file outcome settled: all of them when the tasks will
        not run again; else those made here from a blob (the next run makes its own), so
        that only the staged copy a task names stays for it."""
        named = {t.payload.get("staged") for t in tasks if again}
        for copy in staged.values():
            if str(copy.path) not in named:
                drop_staged(copy.path, copy.folder)
        staged.clear()

    def _abandon(
        self,
        kb: str,
        tasks: Sequence[ClaimedTask],
        reporter: TaskListener,
        finished: Sequence[ClaimedTask],
    ) -> None:
        """A cancelled job: ``finished`` tasks are done, the others cancelled; files the
        cancelled ones never indexed are forgotten (pending rows, uploaded copies)."""
        reason = reporter.reason or "cancelled"
        stopped = [task for task in tasks if task not in finished]
        for task in stopped:
            if task.file is not None and task.id not in reporter.stopped:
                reporter.file_done(cancelled_outcome(task, reason))
        log.info("task %s: cancelled (%s)", ",".join(str(t.id) for t in stopped), reason)
        self.queue.finish([task.id for task in finished])
        self.queue.finish([task.id for task in stopped], error=reason, cancelled=True)
        try:
            forget_files(self.services.library, self.queue, kb, stopped)
        except Exception as exc:  # the database away: the rows stay pending, said in the log
            log.warning("could not forget the cancelled files of %s: %s", kb, exc)

    def _give_up(self, kb: str, tasks: Sequence[ClaimedTask], error: str) -> None:
        """Files of failed add tasks say why in the catalog (an indexed version is kept)."""
        adds = [task for task in tasks if task.op == "add" and task.file is not None]
        if not adds:
            return
        try:
            catalog = self.services.library.catalog
            record = catalog.get_kb(kb)
            for task in adds:
                assert task.file is not None
                known = catalog.get_file(record.id, task.file)  # its pending row's size stays
                catalog.set_file_status(
                    record.id,
                    task.file,
                    path=task.payload["path"],
                    status="failed",
                    error=error,
                    sha256=task.sha256 or "",
                    size=known.size if known is not None else 0,
                )
        except Exception as exc:  # the KB dropped meanwhile, or the database away
            log.warning(
                "could not record the failure of %s in %s: %s", kb, [t.file for t in adds], exc
            )

    def _renew(self) -> None:
        while not self._stop.wait(self.queue.lease_s / 3):
            held = list(self._held)
            if not held:
                continue
            try:
                if self.queue.renew(held, self.owner) < len(held):
                    log.warning("worker %s lost the lease of task(s) %s", self.owner, held)
            except Exception as exc:  # the database away for a moment: the next round retries
                log.warning("worker %s could not renew its lease: %s", self.owner, exc)
