"""Summarising a whole knowledge base in the background: a job per request, file by file.

A job knows before it starts what it will cost (``estimated_s``: the files' expected
seconds from ``estimate_seconds``, 0 for kept summaries), reports per-file progress (stage,
steps done of total) while it runs, and stops at the next model step once cancelled.
Jobs live in the process that runs them (the server); the summaries they make are kept
in the catalog, so a job started again after a restart only makes the missing ones.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal

from kbchat.chat.summaries import (
    SummaryStore,
    file_chunks,
    file_record,
    summarize_file,
    summarize_overview,
)
from kbchat.chat.summarize import (
    Summary,
    SummaryEvent,
    SummaryOptions,
    choose_strategy,
    estimate_seconds,
)
from kbchat.chat.summary_steps import Progress
from kbchat.errors import BadInput, KbchatError, NotFound
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.llm.base import ChatModel

log = logging.getLogger(__name__)

JobStatus = Literal["running", "done", "failed", "cancelled"]
FileStatus = Literal["pending", "running", "done", "failed", "cancelled"]
KEEP_FINISHED = 50
"""Finished jobs remembered per knowledge base (the oldest are forgotten)."""
Slot = Callable[[], AbstractContextManager[object]]
"""Held while one file is summarised (the server's generation queue; nothing in the CLI)."""


@dataclass(slots=True)
class FileProgress:
    """One file of a summary job; ``done``/``total`` are the steps of its current stage."""

    file: str
    estimated_s: float
    status: FileStatus = "pending"
    stage: str = ""
    done: int = 0
    total: int = 0
    strategy: str | None = None
    cached: bool = False
    seconds: float = 0.0
    error: str | None = None


@dataclass(slots=True)
class SummaryJob:
    """A knowledge base's files summarised one after another (then its overview)."""

    id: str
    kb: str
    files: list[FileProgress]
    overview: bool
    estimated_s: float
    started_by: str | None = None
    """Who started it (an API key's name; None without keys)."""
    """Seconds expected when the job was planned (its files' estimates, 0 for kept ones)."""
    status: JobStatus = "running"
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    error: str | None = None
    overview_text: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    """Set once the job has ended, whichever way."""


def expected_seconds(
    kb: KnowledgeBase,
    name: str,
    model: ChatModel,
    options: SummaryOptions,
    store: SummaryStore,
    *,
    refresh: bool = False,
) -> float:
    """Expected seconds to summarise the file ``name`` of ``kb`` (0 when a summary is kept).

    Raises:
        NotFound, BadInput: the file is unknown or not indexed (see ``file_record``).
    """
    record = file_record(kb, name)
    stored = None if refresh else store.get(kb.record.id, record)
    if stored is not None and options.strategy in ("auto", stored.strategy):
        return 0.0
    texts = [t for t in file_chunks(kb, name) if t.strip()]
    if not texts:
        return 0.0
    strategy = choose_strategy(model, texts, options, has_embedder=True)
    return estimate_seconds(model, texts, strategy, options)


class SummaryJobs:
    """The summary jobs of one process, each on its own thread."""

    def __init__(self) -> None:
        self._jobs: dict[str, SummaryJob] = {}
        self._lock = threading.Lock()

    def start(
        self,
        kb: KnowledgeBase,
        model: ChatModel,
        names: Sequence[str],
        *,
        options: SummaryOptions,
        refresh: bool = False,
        overview: bool = True,
        slot: Slot | None = None,
        started_by: str | None = None,
    ) -> SummaryJob:
        """Plan (estimates per file) and start a job over ``names`` of ``kb``.

        Raises:
            NotFound, BadInput: a file is unknown or not indexed, or there is none.
        """
        if not names:
            raise BadInput(f"knowledge base {kb.name!r} has no indexed file to summarise")
        store = SummaryStore(kb.catalog.engine)
        files = [
            FileProgress(
                file=name,
                estimated_s=round(
                    expected_seconds(kb, name, model, options, store, refresh=refresh), 1
                ),
            )
            for name in names
        ]
        job = SummaryJob(
            id=secrets.token_hex(6),
            kb=kb.name,
            files=files,
            overview=overview,
            estimated_s=round(sum(f.estimated_s for f in files), 1),
            started_by=started_by,
        )
        with self._lock:
            self._forget_old(kb.name)
            self._jobs[job.id] = job
        run = _Run(job, kb, model, store, options, refresh, slot or contextlib.nullcontext)
        threading.Thread(target=run, name=f"kbchat-summary-{job.id}", daemon=True).start()
        return job

    def get(self, kb: str, job_id: str) -> SummaryJob:
        """Raises: NotFound: no such job of ``kb``."""
        job = self._jobs.get(job_id)
        if job is None or job.kb != kb:
            raise NotFound(f"no summary job {job_id!r} in knowledge base {kb!r}")
        return job

    def list(self, kb: str) -> list[SummaryJob]:
        """``kb``'s jobs, newest first."""
        with self._lock:
            found = [job for job in self._jobs.values() if job.kb == kb]
        return sorted(found, key=lambda job: job.created_at, reverse=True)

    def cancel(self, kb: str, job_id: str) -> SummaryJob:
        """Ask a job to stop at its next model step (a finished job stays as it ended).

        Raises: NotFound: no such job of ``kb``.
        """
        job = self.get(kb, job_id)
        job.cancel.set()
        return job

    def cancel_all(self) -> None:
        """Stop every running job (the server is shutting down)."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()

    def _forget_old(self, kb: str) -> None:
        finished = [j for j in self._jobs.values() if j.kb == kb and j.status != "running"]
        finished.sort(key=lambda job: job.created_at)
        for job in finished[: max(0, len(finished) - KEEP_FINISHED + 1)]:
            del self._jobs[job.id]


class _Run:
    """The body of one job's thread."""

    def __init__(
        self,
        job: SummaryJob,
        kb: KnowledgeBase,
        model: ChatModel,
        store: SummaryStore,
        options: SummaryOptions,
        refresh: bool,
        slot: Slot,
    ) -> None:
        self.job, self.kb, self.model, self.store = job, kb, model, store
        self.options, self.refresh, self.slot = options, refresh, slot

    def __call__(self) -> None:
        job = self.job
        try:
            for progress in job.files:
                if job.cancel.is_set():
                    break
                self._file(progress)
            if job.overview and not job.cancel.is_set() and len(job.files) > 1:
                with self.slot():
                    summary = _last(
                        summarize_overview(
                            self.kb,
                            self.model,
                            self.store,
                            options=self.options,
                            refresh=self.refresh,
                            cancel=job.cancel,
                        )
                    )
                job.overview_text = summary.text
        except KbchatError as exc:
            job.error = str(exc)
        except Exception as exc:  # a bug: the job fails with its kind, the log has the trace
            log.exception("summary job %s failed", job.id)
            job.error = f"internal error: {type(exc).__name__}"
        for progress in job.files:
            if progress.status in ("pending", "running"):
                progress.status = "cancelled"
        job.finished_at = time.time()
        failed = [f for f in job.files if f.status == "failed"]
        if job.cancel.is_set():
            job.status = "cancelled"
        elif job.error is not None or (failed and len(failed) == len(job.files)):
            job.status = "failed"
        else:
            job.status = "done"
        job.finished.set()

    def _file(self, progress: FileProgress) -> None:
        job = self.job
        progress.status = "running"
        started = time.perf_counter()
        try:
            with self.slot():
                events = summarize_file(
                    self.kb,
                    progress.file,
                    self.model,
                    self.store,
                    options=self.options,
                    refresh=self.refresh,
                    cancel=job.cancel,
                )
                summary = _last(events, progress)
        except KbchatError as exc:
            progress.status = "cancelled" if job.cancel.is_set() else "failed"
            progress.error = None if job.cancel.is_set() else str(exc)
            return
        progress.seconds = round(time.perf_counter() - started, 2)
        progress.strategy, progress.cached = summary.strategy, summary.cached
        stopped = summary.finish_reason == "cancelled" or job.cancel.is_set()
        progress.status = "cancelled" if stopped else "done"


def _last(events: Iterator[SummaryEvent], progress: FileProgress | None = None) -> Summary:
    """Run a summary's events to its end, noting its progress; returns the Summary."""
    for event in events:
        if isinstance(event, Summary):
            return event
        if isinstance(event, Progress) and progress is not None:
            progress.stage, progress.done, progress.total = event.stage, event.done, event.total
    raise KbchatError("the summary ended without a result")
