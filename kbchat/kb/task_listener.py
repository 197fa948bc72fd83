"""What a worker's write reports, and where: each file's outcome on the task that wrote it,
a file ``running`` once the write reaches it, chunk progress, and whether the write must stop
(its job was cancelled, or its worker is stopping). A staged upload goes into place when its
file commits and is dropped when it will not."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from kbchat.errors import KbchatError
from kbchat.kb.ingest_listener import IngestListener
from kbchat.kb.job_types import ClaimedTask
from kbchat.kb.jobs import JobQueue
from kbchat.kb.originals import StagedFile, drop_staged, place_staged
from kbchat.kb.prepare import FileOutcome

log = logging.getLogger("kbchat.kb.worker")  # one logger for a worker's lines

PROGRESS_EVERY_S = 1.0
"""Least seconds between two writes of a running task's chunk progress to the catalog."""


STOPPING = "the worker is stopping"
"""Why a stopping worker's write ends early: its files not finished are handed back to the
queue (not cancelled) and run again at the next start of any worker."""


class TaskListener(IngestListener):
    """Records each file's outcome on the task that wrote it, marks a file running when the
    write reaches it, and moves a staged upload into place when its file commits."""

    def __init__(
        self,
        queue: JobQueue,
        tasks: Sequence[ClaimedTask],
        *,
        staged: dict[str, StagedFile] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.queue = queue
        self.kb = tasks[0].kb
        self.ids = [task.id for task in tasks]
        self.by_file = {task.file: task.id for task in tasks if task.file is not None}
        self.retried = {t.file: t for t in tasks if t.file is not None and t.attempts > 1}
        self.whole = next((task.id for task in tasks if task.file is None), None)
        self.first = tasks[0].id
        self.staged = staged if staged is not None else {}
        self.stopping = stopping
        self._shown = 0.0  # when chunk progress was last written
        self._embedded = False  # every chunk of the files in hand is embedded
        self.reason: str | None = None
        """Why the job was cancelled (or the worker stopped), once a check found it."""
        self.stopped: set[int] = set()
        """Tasks with a file reported cancelled."""
        self.decided: set[int] = set()
        """One-file tasks whose file has its outcome (indexed, failed, ...)."""
        self.handed_back: set[int] = set()
        """Tasks left unfinished because the worker is stopping (to be queued again)."""
        self.in_hand: list[str] = []
        """Files started and not finished, in the order they started."""

    def cancelled(self) -> str | None:
        # One indexed read per file, per commit and per embedding batch. A stopping worker
        # lets files whose chunks are all embedded commit, and stops before anything else.
        if self.reason is None:
            self.reason = self.queue.cancel_reason(self.ids)
        stopping = self.stopping is not None and self.stopping.is_set()
        if self.reason is None and stopping and not self._embedded:
            self.reason = STOPPING
        return self.reason

    def hands_back(self) -> bool:
        return self.reason == STOPPING  # a cancel found first wins: it forgets the files

    def chunks_embedded(self, done: int, total: int) -> None:
        self._embedded = done >= total  # the files in hand are ready to commit
        # At most one write a second (and the last one), on the task the batch started with.
        now = time.monotonic()
        if done < total and now - self._shown < PROGRESS_EVERY_S:
            return
        self._shown = now
        self.queue.progress(self.whole if self.whole is not None else self.first, done, total)

    def started(self, total: int) -> None:
        if self.whole is not None:
            self.queue.started(self.whole, total)

    def file_started(self, name: str) -> None:
        self.in_hand.append(name)
        if (task_id := self.by_file.get(name)) is not None:
            self.queue.file_started(task_id)

    def file_done(self, outcome: FileOutcome) -> None:
        self._embedded = False
        with contextlib.suppress(ValueError):
            self.in_hand.remove(outcome.name)
        task_id = self.by_file.get(
            outcome.name, self.whole if self.whole is not None else self.first
        )
        if outcome.status == "unchanged" and outcome.name in self.retried:
            outcome = self._committed_before(self.retried[outcome.name], outcome)
        self._settle_staged(outcome)
        if outcome.status == "cancelled" and outcome.error == STOPPING:
            self.handed_back.add(task_id)  # not an outcome: it runs again
            return
        log.info(
            "%s: %s%s",
            outcome.name,
            outcome.status,
            f": {outcome.error}"
            if outcome.error
            else f" ({outcome.chunks} chunk{'' if outcome.chunks == 1 else 's'})",
            extra={"fields": {"task": self.first, "status": outcome.status}},
        )
        if outcome.status == "cancelled":
            self.stopped.add(task_id)
        elif task_id != self.whole:
            self.decided.add(task_id)
        self.queue.record(task_id, outcome)

    def _committed_before(self, task: ClaimedTask, outcome: FileOutcome) -> FileOutcome:
        """A retried task finding its file unchanged: if an earlier attempt of this job
        committed it (its worker stopped before saying so), it was indexed by this job."""
        try:
            catalog = self.queue.catalog
            record = catalog.get_file(catalog.get_kb(task.kb).id, outcome.name)
            created = self.queue.get(task.job_id).created_at
        except KbchatError:  # the KB or the job gone meanwhile: keep what was found
            return outcome
        if record is None or record.sha256 != task.sha256 or record.updated_at < created:
            return outcome
        return replace(outcome, status="indexed", chunks=record.chunks, new_chunks=record.chunks)

    def _settle_staged(self, outcome: FileOutcome) -> None:
        """A staged upload goes into place when its file committed (indexed, or found
        unchanged: committed by an earlier attempt); else it is dropped, unless it will be
        read again (handed back, its staged copy named by the task)."""
        staged = self.staged.pop(outcome.name, None)
        if staged is None:
            return
        if outcome.status in ("indexed", "unchanged"):
            try:
                place_staged(staged.path, staged.target, staged.folder)
            except OSError as exc:  # the catalog has the new version; the old copy stays
                log.error("%s: could not move the new upload into place: %s", outcome.name, exc)
        elif not (outcome.status == "cancelled" and outcome.error == STOPPING):
            drop_staged(staged.path, staged.folder)
        else:
            self.staged[outcome.name] = staged  # kept for the next run, or tidied up after
