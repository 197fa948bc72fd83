"""Uploaded files: safe names, content that matches the extension, saved per knowledge base.

Uploads land in ``<home>/uploads/<kb id>/`` under a sanitised relative path: the folders
of a folder upload are kept (``北京分公司/考勤 制度.txt``), but never ``..``, an absolute
path, hidden or device names. A file is written to a staging file and hashed first, then
linked into place only if nothing different is there, so a reader never sees half a file,
one KB can never overwrite another's, and two uploads racing for one name cannot silently
replace each other. A file replacing a different one (the caller asked to) stays staged
(``kbchat.kb.originals``) until its ingest commits, so a cancelled or failed replacement
leaves the previous bytes in place. A file whose bytes contradict its
extension (an executable named ``.pdf``) is refused with a reason instead of being handed
to a parser.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from fastapi import UploadFile

from kbchat.errors import BadInput, Conflict
from kbchat.ingest.loaders import is_supported, supported_extensions
from kbchat.kb.knowledge_base import FileOutcome, file_sha256
from kbchat.kb.originals import drop_staged, staging_path
from kbchat.kb.originals import remove_upload as remove_upload  # re-exported
from kbchat.kb.originals import uploads_dir as uploads_dir  # re-exported
from kbchat.server.errors import PayloadTooLarge
from kbchat.store.catalog_schema import FileRecord

MAX_NAME_BYTES = 180
MAX_DEPTH = 16
_DRIVE = re.compile(r"^[A-Za-z]:")
SNIFF_BYTES = 8192
_FORBIDDEN_CHARS = set('<>:"/\\|?*')
_DEVICE_NAMES = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}
_EXECUTABLES = [
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "a Linux executable"),
    (b"\xcf\xfa\xed\xfe", "a macOS executable"),
    (b"\xce\xfa\xed\xfe", "a macOS executable"),
    (b"\xca\xfe\xba\xbe", "a macOS or Java binary"),
    (b"\x00asm", "a WebAssembly module"),
]
_ZIP = (b"PK\x03\x04",)
_MAGIC: dict[str, tuple[bytes, ...]] = {
    ".pdf": (b"%PDF-",),
    ".docx": _ZIP,
    ".xlsx": _ZIP,
    ".xlsm": _ZIP,
    ".pptx": _ZIP,
    ".epub": _ZIP,
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".bmp": (b"BM",),
    ".webp": (b"RIFF",),
}
_TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def safe_path(raw: str) -> str:
    """The path (below the uploads folder) for a file the client called ``raw``.

    A relative path keeps its folders (browsers send ``webkitRelativePath`` for folder
    uploads); an absolute one (``/home/me/a.txt``, ``C:\\Users\\me\\a.txt``, sent by
    old browsers) keeps only its file name. In every part, control and reserved characters
    become ``_``, leading dots and spaces go (no hidden files), device names get a ``_``,
    and long names are shortened keeping the extension.

    Returns:
        Parts joined by ``/``, at most ``MAX_DEPTH`` of them.

    Raises:
        BadInput: the path climbs out with ``..``, is too deep, or a part has no usable
            characters left.
    """
    path = unicodedata.normalize("NFC", raw).replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path):
        path = path.rsplit("/", 1)[-1]
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BadInput(f"uploaded file name {raw!r} climbs out of its folder with '..'; refused")
    if len(parts) > MAX_DEPTH:
        raise BadInput(f"uploaded file name {raw!r} is more than {MAX_DEPTH} folders deep")
    safe = [_safe_part(part, raw) for part in parts]
    if not safe:
        raise BadInput(f"uploaded file name {raw!r} has no usable characters")
    return "/".join(safe)


def _safe_part(part: str, raw: str) -> str:
    name = "".join("_" if ch in _FORBIDDEN_CHARS or not ch.isprintable() else ch for ch in part)
    name = name.strip().lstrip(".").strip().rstrip(". ")
    if not name:
        raise BadInput(f"uploaded file name {raw!r} has a part with no usable characters")
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    if stem.lower() in _DEVICE_NAMES:
        stem = "_" + stem
    extension = _shorten(extension, 16)
    stem = _shorten(stem, MAX_NAME_BYTES - len(extension.encode()) - 1) or "upload"
    return f"{stem}.{extension}" if extension else stem


def _shorten(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max(0, max_bytes)].decode("utf-8", errors="ignore")


def content_problem(name: str, head: bytes) -> str | None:
    """Why the first bytes of a file contradict its name's extension (None if they agree)."""
    for magic, what in _EXECUTABLES:
        # every real executable header holds NUL bytes; text that starts "MZ" does not
        if head.startswith(magic) and b"\x00" in head[len(magic) : 64]:
            return f"{name}: the content is {what}, not a {_kind(name)} file; refused"
    extension = Path(name).suffix.lower()
    expected = _MAGIC.get(extension)
    if expected is not None:
        window = head[:1024] if extension == ".pdf" else head
        if not any(window.startswith(m) or (extension == ".pdf" and m in window) for m in expected):
            return f"{name}: the content does not look like a {_kind(name)} file; refused"
        if extension == ".webp" and head[8:12] != b"WEBP":
            return f"{name}: the content does not look like a webp file; refused"
        return None
    if b"\x00" in head and not head.startswith(_TEXT_BOMS):
        return f"{name}: binary content in a {_kind(name)} file; refused"
    return None


def _kind(name: str) -> str:
    return Path(name).suffix.lower().lstrip(".") or "text"


def unsupported_reason(name: str) -> str | None:
    """Why a file of this name cannot be ingested (None when a loader reads it)."""
    if is_supported(Path(name)):
        return None
    return f"{name}: unsupported file type {Path(name).suffix or '(no extension)'}"


def supported_types() -> str:
    """The file extensions a loader reads, for messages: ``.csv, .docx, ...``."""
    return ", ".join(sorted(supported_extensions()))


@dataclass(frozen=True, slots=True)
class StagedUpload:
    """An uploaded file written to a staging file, not yet in place."""

    name: str
    target: Path
    staging: Path
    sha256: str
    size: int


def stage_upload(source: BinaryIO, folder: Path, name: str, max_bytes: int) -> StagedUpload:
    """Copy an uploaded stream to a staging file in ``folder``, hashing it on the way.

    Args:
        source: The uploaded bytes.
        folder: The knowledge base's uploads folder.
        name: Where it goes below ``folder`` (``safe_path`` output).
        max_bytes: The most bytes accepted.

    Raises:
        PayloadTooLarge: the stream holds more than ``max_bytes``.
        BadInput: the name would leave the folder (never happens for ``safe_path`` output).
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not target.resolve().is_relative_to(folder.resolve()) or target == folder:
        raise BadInput(f"{name}: not a path inside the uploads folder")
    staging = folder / f".upload-{secrets.token_hex(8)}.part"
    digest = hashlib.sha256()
    written = 0
    try:
        with staging.open("xb") as handle:
            while block := source.read(1 << 20):
                written += len(block)
                if written > max_bytes:
                    raise PayloadTooLarge(
                        f"{name}: larger than the {max_bytes / 2**20:.0f} MB upload limit "
                        "(server.max_upload_mb)"
                    )
                digest.update(block)
                handle.write(block)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return StagedUpload(name, target, staging, digest.hexdigest(), written)


def place_upload(staged: StagedUpload, *, replace: bool) -> bool:
    """Move a staged upload to its target; returns False if a different file is in the way.

    Without ``replace`` the move never overwrites: the staging file is hard-linked to the
    target, which fails atomically when the name is taken (by this upload's twin or a
    racing request). The same bytes already there count as placed.

    Raises:
        Conflict: a file stands where the upload needs a folder, or a folder where it
            needs a file.
    """
    try:
        staged.target.parent.mkdir(parents=True, exist_ok=True)
        if replace:
            os.replace(staged.staging, staged.target)
            return True
        try:
            os.link(staged.staging, staged.target)
        except FileExistsError:
            return staged.target.is_file() and file_sha256(staged.target) == staged.sha256
        return True
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise Conflict(
            f"{staged.name}: a file or folder of the same name is in the way ({exc.strerror})"
        ) from None
    finally:
        staged.staging.unlink(missing_ok=True)


def discard_uploads(staged: Iterable[StagedUpload]) -> None:
    """Delete staging files that will not be placed."""
    for upload in staged:
        upload.staging.unlink(missing_ok=True)


def stage_uploads(
    uploads: Sequence[UploadFile], folder: Path, max_bytes: int, exclude: Sequence[str] = ()
) -> tuple[list[StagedUpload], list[FileOutcome]]:
    """Stage every acceptable upload; the others become outcomes saying why not.

    Args:
        uploads: The uploaded files; a name may carry folders.
        folder: The knowledge base's uploads folder.
        max_bytes: The largest file accepted.
        exclude: Globs (setting ingest.exclude) skipping a folder upload's files, as when
            adding a folder: ``.git/config.md`` is skipped, not renamed to ``git/config.md``.

    Raises:
        PayloadTooLarge: a file is over ``max_bytes`` (nothing stays staged).
    """
    staged: list[StagedUpload] = []
    refused: list[FileOutcome] = []
    try:
        for upload in uploads:
            raw = upload.filename or "upload"
            size = _size(upload)
            if pattern := _excluded(raw, exclude):
                reason = f"{raw}: skipped by the exclude pattern {pattern!r} (ingest.exclude)"
                refused.append(FileOutcome(raw, "", "skipped", reason, size=size))
                continue
            try:
                name = safe_path(raw)
            except BadInput as exc:
                refused.append(FileOutcome(raw, "", "failed", str(exc), size=size))
                continue
            if problem := _refusal(upload.file, name, {s.name for s in staged}):
                refused.append(FileOutcome(name, "", *problem, size=size))
                continue
            staged.append(stage_upload(upload.file, folder, name, max_bytes))
    except BaseException:
        discard_uploads(staged)
        raise
    return staged, refused


def _size(upload: UploadFile) -> int:
    """The uploaded file's size in bytes (measured when the client did not say)."""
    if upload.size is not None:
        return upload.size
    position = upload.file.tell()
    size = upload.file.seek(0, os.SEEK_END)
    upload.file.seek(position)
    return size


def _excluded(raw: str, patterns: Sequence[str]) -> str | None:
    """The pattern that excludes a folder upload's file (single files are never excluded)."""
    path = raw.replace("\\", "/")
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    if len(parts) < 2 or path.startswith("/") or _DRIVE.match(path):
        return None
    relative = "/".join(parts)
    for pattern in patterns:
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, pattern) for p in parts):
            return pattern
    return None


def _refusal(
    source: BinaryIO, name: str, taken: Container[str]
) -> tuple[Literal["skipped", "failed"], str] | None:
    if reason := unsupported_reason(name):
        return "skipped", reason
    if name in taken:
        return "failed", f"{name}: uploaded twice in one request"
    head = source.read(SNIFF_BYTES)
    source.seek(0)
    if not head:
        return "failed", f"{name}: the file is empty"
    if reason := content_problem(name, head):
        return "failed", reason
    return None


def place_uploads(
    staged: Sequence[StagedUpload],
    known: Callable[[str], FileRecord | None],
    *,
    kb: str,
    replace: bool,
) -> dict[str, Path]:
    """Put staged uploads in place, all or none, never over a different file unless ``replace``.

    An upload that replaces different bytes (on disk, or indexed under its name) is not put
    in place: it moves to a staged copy that its ingest puts in place when it commits.

    Args:
        staged: The uploads, staged.
        known: The catalog's record of a file name in the knowledge base, if any.
        kb: The knowledge base's name, for messages.
        replace: Replace different files of the same names (the caller asked).

    Returns:
        The staged copies of the replacing uploads, by name.

    Raises:
        Conflict: without ``replace``, a different file has one of the names, or a file
            stands where a folder must go, or a folder where a file must go (nothing is
            placed; the message names the files).
    """
    created: list[StagedUpload] = []
    waiting: dict[str, Path] = {}
    try:
        replacing = [s for s in staged if _replaces(s, known(s.name))]
        if not replace:
            _refuse_replacing(replacing, kb)
        for upload in staged:
            if upload in replacing:
                waiting[upload.name] = _stage_replacement(upload)
                continue
            existed = upload.target.exists()
            if not place_upload(upload, replace=False):  # lost a race for the name
                _refuse_replacing([upload], kb)
            if not existed:
                created.append(upload)
    except BaseException:
        for upload in created:  # all or none: take back what this request created
            upload.target.unlink(missing_ok=True)
        for upload in staged:
            if upload.name in waiting:
                drop_staged(waiting[upload.name], upload.staging.parent)
        raise
    finally:
        discard_uploads(staged)
    return waiting


def _stage_replacement(upload: StagedUpload) -> Path:
    """Move the staging file of an upload that replaces another to its staged copy."""
    if upload.target.exists() and not upload.target.is_file():
        raise Conflict(f"{upload.name}: a folder of the same name is in the way")
    folder = upload.staging.parent
    path = staging_path(folder, upload.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(upload.staging, path)
    return path


def _replaces(staged: StagedUpload, record: FileRecord | None) -> bool:
    """Whether placing ``staged`` would replace different content (indexed or on disk)."""
    if record is not None and record.sha256 and record.sha256 != staged.sha256:
        return True
    if staged.target.is_file():
        return file_sha256(staged.target) != staged.sha256
    return staged.target.exists()


def _refuse_replacing(names: Sequence[StagedUpload], kb: str) -> None:
    if not names:
        return
    listed = ", ".join(repr(s.name) for s in names[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    raise Conflict(
        f"knowledge base {kb!r} already has a different file named {listed}{more}; nothing "
        "was saved. Upload again with overwrite=true to replace, or rename the file"
    )


def accept_upload(
    raw: str, source: BinaryIO, folder: Path, taken: Container[str], max_bytes: int
) -> tuple[Path | None, FileOutcome | None]:
    """Save one file attached to a conversation (client name ``raw``) into ``folder``.

    Returns the saved path, or the outcome of a refused file: a name with nothing usable,
    an unsupported type, a name already in ``taken``, an empty file, content that
    contradicts its extension, or a different file of the same name already attached
    (never replaced).

    Raises:
        PayloadTooLarge: the stream holds more than ``max_bytes``.
    """
    try:
        name = safe_path(raw)
    except BadInput as exc:
        return None, FileOutcome(raw, "", "failed", str(exc))
    if problem := _refusal(source, name, taken):
        return None, FileOutcome(name, "", *problem)
    staged = stage_upload(source, folder, name, max_bytes)
    if not place_upload(staged, replace=False):
        reason = f"{name}: a different file of this name is already attached"
        return None, FileOutcome(name, "", "failed", reason)
    return staged.target, None
