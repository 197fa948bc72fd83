"""Uploaded originals: the copy on this machine's disk, and (on a shared catalog) the bytes
in the catalog's ``blobs`` table, so a worker or server on another machine can read them.

A file uploaded through one server is saved under ``<home>/uploads/<kb id>/`` there; when
``catalog.uploads_in_database`` is on (the default for a catalog that is not SQLite) its bytes
also go into ``blobs``, keyed by content hash. A machine that lacks the file writes it from
the blob into its own uploads folder before reading it (``local_copy``). A blob is deleted once
no file row and no unfinished task names its hash.

An upload that replaces a file the knowledge base already has (other bytes under the same
name) is not put in place at once: it waits as a staged copy under
``<uploads>/.staging/<token>/<name>`` (the same name, so the same loader reads it), and its
worker moves it over the old copy only when the file's ingest commits (``place_staged``). A
cancelled or failed replacement drops the staged copy (``drop_staged``): the previous bytes
and the knowledge base stay exactly as they were. A worker that must fetch the bytes from a
blob stages them the same way (``staged_blob``), never writing over the local copy first.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.exc import IntegrityError

from kbchat.config import Settings
from kbchat.errors import KbchatError
from kbchat.ingest.discover import FoundFile, readable
from kbchat.kb.prepare import file_sha256
from kbchat.store.catalog import Catalog
from kbchat.store.catalog_schema import blobs, files, job_tasks


def uploads_dir(settings: Settings, kb_id: int) -> Path:
    """The folder holding a knowledge base's uploaded files on this machine."""
    return settings.home / "uploads" / str(kb_id)


def save_blob(catalog: Catalog, path: Path, sha256: str) -> None:
    """Keep the bytes of ``path`` (content hash ``sha256``) in the catalog, once per hash."""
    with catalog.engine.connect() as conn:
        if conn.execute(select(blobs.c.sha256).where(blobs.c.sha256 == sha256)).first():
            return
    data = path.read_bytes()
    try:
        with catalog.engine.begin() as conn:
            conn.execute(
                insert(blobs).values(
                    sha256=sha256, size=len(data), data=data, created_at=time.time()
                )
            )
    except IntegrityError:  # the same bytes saved meanwhile by another upload
        pass


def local_copy(
    catalog: Catalog, settings: Settings, kb_id: int, name: str, path: str, sha256: str | None
) -> Path | None:
    """A readable copy of an uploaded file on this machine, or None if there is none.

    Args:
        name: The file's name in the knowledge base (its place below the uploads folder).
        path: Where the machine that received it saved it.
        sha256: Its content hash, if known: a local file with other bytes is not it.
    """
    given = Path(path)
    if given.is_file() and (not sha256 or file_sha256(given) == sha256):
        return given
    if not sha256:
        return None
    with catalog.engine.connect() as conn:
        data = conn.execute(select(blobs.c.data).where(blobs.c.sha256 == sha256)).scalar()
    if data is None:
        return None
    folder = uploads_dir(settings, kb_id)
    target = folder / name
    if not target.resolve().is_relative_to(folder.resolve()):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".blob-{secrets.token_hex(6)}.part")
    staging.write_bytes(data)
    os.replace(staging, target)
    return target


STAGING = ".staging"
"""The folder, inside a KB's uploads folder, of uploads waiting for their ingest to commit
(hidden: the default ``ingest.exclude`` leaves it out of a sync, and uploaded names never
start with a dot)."""


def staging_path(folder: Path, name: str) -> Path:
    """A fresh place for a staged copy of file ``name`` of the KB whose uploads are in
    ``folder``; it keeps the name (and so the extension).

    Raises:
        ValueError: ``name`` would leave the staging folder.
    """
    root = folder / STAGING
    path = root / secrets.token_hex(8) / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{name}: not a file name inside the uploads folder")
    return path


def staged_blob(catalog: Catalog, folder: Path, name: str, sha256: str) -> Path | None:
    """Stage the bytes the catalog keeps for ``sha256`` as file ``name``; None if it keeps none."""
    with catalog.engine.connect() as conn:
        data = conn.execute(select(blobs.c.data).where(blobs.c.sha256 == sha256)).scalar()
    if data is None:
        return None
    try:
        path = staging_path(folder, name)
    except ValueError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def place_staged(staged: Path, target: Path, folder: Path) -> None:
    """Move a staged upload over its target, once its ingest has committed.

    Raises:
        OSError: it could not be moved (a folder in the way, the disk); it stays staged.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    _prune(staged.parent, folder)


def drop_staged(staged: Path, folder: Path) -> None:
    """Delete a staged upload that will not be placed (cancelled, failed, superseded)."""
    staged.unlink(missing_ok=True)
    _prune(staged.parent, folder)


def _prune(start: Path, folder: Path) -> None:
    """Remove the empty staging folders from ``start`` up to (and with) ``folder/.staging``."""
    root = (folder / STAGING).resolve()
    here = start.resolve()
    if not here.is_relative_to(root):
        return
    for parent in [here, *here.parents]:
        try:
            parent.rmdir()
        except FileNotFoundError:  # gone already: look further up
            pass
        except OSError:  # not empty: leave it and what holds it
            break
        if parent == root:
            break


ORPHAN_AGE_S = 600.0
"""A staged copy no unfinished task names is deleted by ``sweep_staged`` once it is this old
(seconds): younger ones may belong to an upload being accepted right now."""


def sweep_staged(catalog: Catalog, settings: Settings, *, min_age_s: float = ORPHAN_AGE_S) -> int:
    """Delete this machine's staged copies that no queued or running task names (their task
    ended while no worker could tidy up: its worker was killed and it was then cancelled or
    ran out of attempts). Returns how many were deleted."""
    root = settings.home / "uploads"
    staged = [p for p in root.glob(f"*/{STAGING}/*/**/*") if p.is_file()]
    if not staged:
        return 0
    with catalog.engine.connect() as conn:
        payloads = conn.execute(
            select(job_tasks.c.payload).where(
                job_tasks.c.op == "add", job_tasks.c.status.in_(("queued", "running"))
            )
        ).scalars()
        named = {json.loads(payload).get("staged") for payload in payloads}
    now = time.time()
    gone = 0
    for path in staged:
        try:
            old = now - path.stat().st_mtime >= min_age_s
        except FileNotFoundError:
            continue
        if old and str(path) not in named:
            folder = path.relative_to(root).parts[0]
            drop_staged(path, root / folder)
            gone += 1
    return gone


@dataclass(frozen=True, slots=True)
class StagedFile(FoundFile):
    """An upload read from its staged copy (``path``) and recorded under the place it moves
    to when its ingest commits (``target``)."""

    target: Path = Path()
    folder: Path = Path()
    """The KB's uploads folder (the staging folder is inside it)."""

    @property
    def location(self) -> str:
        return readable(str(self.target))


def _holds(path: Path, sha256: str | None) -> bool:
    """Whether ``path`` is a file with the bytes of ``sha256`` (any bytes if it is unknown)."""
    try:
        return path.is_file() and (not sha256 or file_sha256(path) == sha256)
    except (OSError, KbchatError):
        return False


def upload_source(
    catalog: Catalog,
    folder: Path,
    name: str,
    target: Path,
    staged: str | None,
    sha256: str | None,
) -> FoundFile:
    """Where this machine reads an uploaded file: its staged copy (a replacement), the upload
    in place, or the catalog's bytes staged here; else the path given (the load then fails
    and says why, as ``kb add`` does).

    Args:
        folder: This machine's uploads folder of the knowledge base.
        name: The file's name in the knowledge base.
        target: Where the receiving machine put (or will put) it.
        staged: Its staged copy there, for a replacement.
        sha256: Its content hash, if known: a file with other bytes is not it.
    """
    if staged and _holds(Path(staged), sha256):
        return StagedFile(name=name, path=Path(staged), target=target, folder=folder)
    if _holds(target, sha256) and (sha256 or not staged):
        return FoundFile(name=name, path=target)
    if sha256 and (copy := staged_blob(catalog, folder, name, sha256)):
        # this machine's place for it (the path given is the receiving machine's)
        return StagedFile(name=name, path=copy, target=folder / name, folder=folder)
    return FoundFile(name=name, path=Path(staged) if staged else target)


def drop_unused_blob(catalog: Catalog, sha256: str) -> None:
    """Delete the blob of ``sha256`` unless a file or an unfinished add still names it."""
    if not sha256:
        return
    used_by_file = exists().where(files.c.sha256 == sha256)
    used_by_task = exists().where(
        job_tasks.c.sha256 == sha256,
        job_tasks.c.op == "add",
        job_tasks.c.status.in_(("queued", "running")),
    )
    with catalog.engine.begin() as conn:
        conn.execute(delete(blobs).where(blobs.c.sha256 == sha256, ~used_by_file, ~used_by_task))


def remove_upload(folder: Path, copy: Path) -> None:
    """Delete an uploaded copy and the folders it leaves empty (nothing outside ``folder``).

    ``copy`` must name a file: an empty path would resolve against the working directory,
    which a test (or a caller) may have removed (FileNotFoundError)."""
    if not str(copy) or str(copy) == ".":
        return
    root = folder.resolve()
    copy = copy.resolve()
    if not copy.is_relative_to(root) or copy == root:
        return
    copy.unlink(missing_ok=True)
    for parent in copy.parents:
        if parent == root:
            break
        try:
            parent.rmdir()
        except OSError:  # not empty (or gone): leave it
            break
