"""Cancelling a write job: the queue stops its tasks (``JobQueue.cancel``), and the knowledge
base forgets what the stopped tasks had only announced.

A file an add task never indexed loses its ``pending`` row (a later start of ``kbchat serve``
would otherwise queue it again) and its uploaded copy, unless another unfinished task still
writes it. A file with an indexed version keeps it untouched, with its uploaded copy: the
bytes of a cancelled replacement waited in a staged copy (``kbchat.kb.originals``), which is
dropped, as are the catalog's copies of bytes nothing names any more. Running tasks are
stopped by their worker (``kbchat.kb.worker``), which calls ``forget_files`` for the files it
abandoned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kbchat.errors import NotFound
from kbchat.kb.job_types import ClaimedTask, Job
from kbchat.kb.jobs import JobQueue
from kbchat.kb.originals import drop_staged, drop_unused_blob, remove_upload, uploads_dir

if TYPE_CHECKING:
    from kbchat.kb.library import Library


def cancel_job(library: Library, queue: JobQueue, job_id: str, reason: str) -> Job:
    """Cancel job ``job_id`` for ``reason`` (who asked, shown with each cancelled file).

    Returns:
        The job as it is now: ``cancelled`` if none of its tasks was running, else still
        ``running`` until its worker stops at its next embedding batch.

    Raises:
        NotFound: no such job.
        Conflict: the job has already finished.
    """
    stopped = queue.cancel(job_id, reason)
    by_kb: dict[str, list[ClaimedTask]] = {}
    for task in stopped:
        by_kb.setdefault(task.kb, []).append(task)
    for kb, tasks in by_kb.items():
        forget_files(library, queue, kb, tasks)
    return queue.get(job_id)


def forget_files(library: Library, queue: JobQueue, kb: str, tasks: Sequence[ClaimedTask]) -> None:
    """Forget the files of cancelled add ``tasks`` that were never indexed: their pending
    rows, and their uploaded copies unless another unfinished task still writes them; and
    the staged copies of cancelled replacements."""
    adds = [task for task in tasks if task.op == "add" and task.file is not None]
    if not adds:
        return
    catalog = library.catalog
    try:
        record = catalog.get_kb(kb)
    except NotFound:  # dropped meanwhile, with its uploads
        return
    names = [task.file for task in adds if task.file is not None]
    catalog.forget_pending(record.id, names)
    still_written = queue.unfinished_files(kb, names)
    folder = uploads_dir(library.settings, record.id)
    for task in adds:
        assert task.file is not None
        if staged := task.payload.get("staged"):  # a replacement: the previous copy stays
            drop_staged(Path(staged), folder)
        elif task.file not in still_written and catalog.get_file(record.id, task.file) is None:
            remove_upload(folder, Path(task.payload["path"]))
        drop_unused_blob(catalog, task.sha256 or "")
