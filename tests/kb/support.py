"""Helpers of the job queue and worker tests: file outcomes, workers running scripted ops, and
services over a catalog with an upload waiting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kbchat.app import Services, build
from kbchat.config import load_settings
from kbchat.kb.jobs import JobQueue
from kbchat.kb.prepare import FileOutcome
from kbchat.kb.worker import Work, Worker

Op = Callable[[Work], None]


def outcome(name: str, status: str = "indexed") -> FileOutcome:
    return FileOutcome(name, f"/x/{name}", status, None, 1)  # type: ignore[arg-type]


def worker(queue: JobQueue, ops: dict[str, Op], **options: Any) -> Worker:
    """A worker with no services, running ``ops`` (scripted in the test) by task op."""
    return Worker(None, queue, ops=ops, poll_s=0.02, **options)  # type: ignore[arg-type]


def run_until_idle(*workers: Worker) -> None:
    while any(w.run_once() for w in workers):
        pass


def services(home: Path, catalog_url: str) -> Services:
    return build(
        load_settings(
            home=home,
            embedder={"backend": "hash"},
            catalog={"url": catalog_url},
        )
    )


def with_upload(
    tmp_path: Path,
    name: str = "kettle.txt",
    data: bytes = b"The K3 kettle warranty lasts two years.",
) -> tuple[Services, int, Path]:
    """Services over a catalog in ``tmp_path``, knowledge base "docs", and one file saved in
    its uploads folder as a server saves an upload: (services, KB id, the file)."""
    here = services(tmp_path / "a", f"sqlite:///{tmp_path / 'catalog.db'}")
    record = here.library.create("docs")
    upload = here.settings.home / "uploads" / str(record.id) / name
    upload.parent.mkdir(parents=True)
    upload.write_bytes(data)
    return here, record.id, upload


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def staged_replacement(here: Services, record_id: int, name: str, data: bytes) -> Path:
    """Stage ``data`` as the replacement of ``name``, as an upload with overwrite does."""
    from kbchat.kb.originals import staging_path, uploads_dir

    staged = staging_path(uploads_dir(here.settings, record_id), name)
    staged.parent.mkdir(parents=True)
    staged.write_bytes(data)
    return staged
