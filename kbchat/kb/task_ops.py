"""What a write job's tasks are and what a worker does for each: add, remove, sync, rebuild,
sample (the sample knowledge base's first build) and attach (files to a conversation).

``add_tasks`` and the other constructors build the ``Task`` rows a server submits; ``OPS``
maps each task's ``op`` to the function that runs it, given the services and the claimed
tasks (``Work``).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kbchat.ingest.discover import FoundFile
from kbchat.kb.ingest_listener import IngestListener
from kbchat.kb.job_types import ClaimedTask, Task
from kbchat.kb.originals import (
    STAGING,
    StagedFile,
    drop_unused_blob,
    local_copy,
    remove_upload,
    upload_source,
    uploads_dir,
)
from kbchat.kb.prepare import FileOutcome

if TYPE_CHECKING:
    from kbchat.app import Services

log = logging.getLogger("kbchat.kb.worker")  # one logger for a worker's lines

SAMPLE_EXCLUDE = ["__init__.py", "*.pyc", "__pycache__"]
SAMPLE_KB = "kbchat-docs"
"""The sample knowledge base `kbchat serve` builds on a first start."""


def this_host() -> str:
    """The name tasks bound to this machine carry (``Task.host``)."""
    return socket.gethostname()


# -- what a job's tasks are ---------------------------------------------------------------


def add_tasks(
    found: Sequence[tuple[str, Path, str]],
    *,
    shared: bool,
    force: bool = False,
    staged: dict[str, Path] | None = None,
) -> list[Task]:
    """Tasks adding files (name in the KB, path here, sha256); bound to this host unless the
    bytes are in the catalog (``shared``). ``force`` re-reads files unchanged by their hash.
    ``staged``: where the new bytes of files replacing an existing one wait, by name (they
    are moved to the path only when the file's ingest commits)."""
    staged = staged or {}
    return [
        Task(
            "add",
            file=name,
            payload={
                "path": str(path),
                **({"staged": str(staged[name])} if name in staged else {}),
                **({"force": True} if force else {}),
            },
            sha256=sha or None,
            host=None if shared and sha else this_host(),
        )
        for name, path, sha in found
    ]


def remove_task(name: str, path: str, sha256: str) -> Task:
    return Task("remove", file=name, payload={"path": path}, sha256=sha256 or None)


def sync_task(folder: Path | None, exclude: Sequence[str]) -> Task:
    """Sync with a server folder (None: this host's uploads folder of the KB)."""
    payload = {"folder": None if folder is None else str(folder), "exclude": list(exclude)}
    return Task("sync", payload=payload, host=this_host())


def rebuild_task() -> Task:
    return Task("rebuild")


def sample_task(description: str) -> Task:
    return Task("sample", payload={"description": description})


def attach_task(conversation_id: str, owner: str | None, paths: Sequence[Path]) -> Task:
    payload = {"conversation": conversation_id, "owner": owner, "paths": [str(p) for p in paths]}
    return Task("attach", payload=payload, host=this_host())


# -- running tasks ------------------------------------------------------------------------


@dataclass(slots=True)
class Work:
    """What an op needs: the services, the tasks it runs and where to report.

    ``staged`` collects the files an add reads from staged copies, by name: the worker moves
    each into place when its file commits, or drops it."""

    services: Services
    kb: str
    tasks: list[ClaimedTask]
    listener: IngestListener
    staged: dict[str, StagedFile] = field(default_factory=dict)


Op = Callable[[Work], None]


def _source(work: Work, kb_id: int, task: ClaimedTask) -> FoundFile:
    """Where this machine reads an add task's file (``kbchat.kb.originals.upload_source``)."""
    assert task.file is not None
    library = work.services.library
    return upload_source(
        library.catalog,
        uploads_dir(library.settings, kb_id),
        task.file,
        Path(task.payload["path"]),
        task.payload.get("staged"),
        task.sha256,
    )


def _add(work: Work) -> None:
    library = work.services.library
    kb = library.get(work.kb)
    found: list[FoundFile] = []
    for task in work.tasks:
        source = _source(work, kb.record.id, task)
        if isinstance(source, StagedFile):
            work.staged[source.name] = source
        found.append(source)
    if found:
        force = any(task.payload.get("force") for task in work.tasks)
        kb.add_found(found, listener=work.listener, force=force)


def _remove(work: Work) -> None:
    library = work.services.library
    kb = library.get(work.kb)
    names = [task.file for task in work.tasks if task.file is not None]
    kb.remove(names, listener=work.listener)
    folder = uploads_dir(library.settings, kb.record.id)
    for task in work.tasks:
        if task.payload.get("path"):  # a file refused at upload kept no copy
            remove_upload(folder, Path(task.payload["path"]))
        drop_unused_blob(library.catalog, task.sha256 or "")


def _sync(work: Work) -> None:
    library = work.services.library
    kb = library.get(work.kb)
    payload = work.tasks[0].payload
    folder = (
        Path(payload["folder"])
        if payload.get("folder")
        else uploads_dir(library.settings, kb.record.id)
    )
    folder.mkdir(parents=True, exist_ok=True)
    exclude = [*payload.get("exclude", []), STAGING]  # uploads waiting for their commit
    kb.sync(folder, exclude=exclude, listener=work.listener, follow_symlinks=False)


def _rebuild(work: Work) -> None:
    library = work.services.library
    kb = library.get(work.kb)
    for record in kb.files():  # originals uploaded through another machine come from the catalog
        if record.sha256 and not Path(record.path).exists():
            local_copy(
                library.catalog,
                library.settings,
                kb.record.id,
                record.name,
                record.path,
                record.sha256,
            )
    kb.rebuild(listener=work.listener)


class SampleProgress(IngestListener):
    """Passes a job's progress on and logs it, a line per file (the sample KB's first build)."""

    def __init__(self, job_listener: IngestListener) -> None:
        self.job_listener = job_listener
        self.total = 0
        self.done = 0

    def started(self, total: int) -> None:
        self.total = total
        log.info("indexing the sample knowledge base %r: %d files", SAMPLE_KB, total)
        self.job_listener.started(total)

    def file_done(self, outcome: FileOutcome) -> None:
        self.done += 1
        log.info(
            "indexing the sample knowledge base %d/%d: %s %s",
            self.done,
            self.total,
            outcome.name,
            outcome.status,
        )
        self.job_listener.file_done(outcome)

    def waiting(self, message: str) -> None:
        self.job_listener.waiting(message)


def _sample(work: Work) -> None:
    from kbchat.sample import sample_dir

    kb = work.services.library.ensure(work.kb, description=work.tasks[0].payload["description"])
    kb.sync(sample_dir(), exclude=SAMPLE_EXCLUDE, listener=SampleProgress(work.listener))


def _attach(work: Work) -> None:
    payload = work.tasks[0].payload
    chats = work.services.file_chats()
    paths = [Path(p) for p in payload["paths"]]
    chats.attach(payload["conversation"], payload["owner"], paths, listener=work.listener)


OPS: dict[str, Op] = {
    "add": _add,
    "remove": _remove,
    "sync": _sync,
    "rebuild": _rebuild,
    "sample": _sample,
    "attach": _attach,
}
