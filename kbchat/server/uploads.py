"""Uploaded files: safe names, content that matches the extension, saved per knowledge base.

Uploads land in ``<home>/uploads/<kb id>/`` under a sanitised name (no folders, no
traversal, no hidden or device names), written to a temporary file and renamed into
place, so a reader never sees half a file and one KB can never overwrite another's.
A file whose bytes contradict its extension (an executable named ``.pdf``) is refused
with a reason instead of being handed to a parser.
"""

from __future__ import annotations

import os
import secrets
import shutil
import unicodedata
from collections.abc import Container
from pathlib import Path
from typing import BinaryIO

from kbchat.config import Settings
from kbchat.errors import BadInput
from kbchat.ingest.loaders import is_supported
from kbchat.kb import FileOutcome
from kbchat.server.errors import PayloadTooLarge

MAX_NAME_BYTES = 180
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


def uploads_dir(settings: Settings, kb_id: int) -> Path:
    """The folder holding a knowledge base's uploaded files."""
    return settings.home / "uploads" / str(kb_id)


def safe_name(raw: str) -> str:
    """A file name safe to create in the uploads folder, derived from the client's name.

    Only the last path component is kept; control and reserved characters become ``_``;
    leading dots and spaces go (no hidden files, no ``..``); long names are shortened
    keeping the extension.

    Raises:
        BadInput: nothing usable is left of the name.
    """
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if ch in _FORBIDDEN_CHARS or not ch.isprintable() else ch for ch in name)
    name = name.strip().lstrip(".").strip().rstrip(". ")
    if not name:
        raise BadInput(f"uploaded file name {raw!r} has no usable characters")
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


def save_upload(source: BinaryIO, folder: Path, name: str, max_bytes: int) -> Path:
    """Copy an uploaded stream to ``folder/name`` atomically; returns the saved path.

    Raises:
        PayloadTooLarge: the stream holds more than ``max_bytes``.
        BadInput: the name would leave the folder (never happens for ``safe_name`` output).
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.resolve().parent != folder.resolve():
        raise BadInput(f"{name}: not a plain file name")
    staging = folder / f".upload-{secrets.token_hex(8)}.part"
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
                handle.write(block)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def accept_upload(
    raw: str, source: BinaryIO, folder: Path, taken: Container[str], max_bytes: int
) -> tuple[Path | None, FileOutcome | None]:
    """Save one uploaded file (client name ``raw``) into ``folder``, or say why not.

    Returns the saved path, or the outcome of a refused file: a name with nothing usable,
    an unsupported type, a name already in ``taken``, an empty file, or content that
    contradicts its extension.

    Raises:
        PayloadTooLarge: the stream holds more than ``max_bytes``.
    """
    try:
        name = safe_name(raw)
    except BadInput as exc:
        return None, FileOutcome(raw, "", "failed", str(exc))
    if reason := unsupported_reason(name):
        return None, FileOutcome(name, "", "skipped", reason)
    if name in taken:
        return None, FileOutcome(name, "", "failed", f"{name}: uploaded twice in one request")
    head = source.read(SNIFF_BYTES)
    source.seek(0)
    if not head:
        return None, FileOutcome(name, "", "failed", f"{name}: the file is empty")
    if reason := content_problem(name, head):
        return None, FileOutcome(name, "", "failed", reason)
    return save_upload(source, folder, name, max_bytes), None


def remove_uploads(folder: Path) -> None:
    """Delete a knowledge base's uploads folder and everything in it."""
    shutil.rmtree(folder, ignore_errors=True)
