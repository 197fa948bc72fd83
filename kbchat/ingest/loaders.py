"""File -> Documents: picks the loader by extension and refuses bad input with a clear reason.

Every check that needs no parsing happens here, before a parser sees the file: the path
exists and is readable, its size is within limits, it is not empty, and a zip-based
format (docx/xlsx/pptx/epub) does not declare more unpacked bytes than allowed.
"""

from __future__ import annotations

import importlib
import re
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

from kbchat.errors import BadInput
from kbchat.ingest.ocr import OcrReader
from kbchat.types import Document

Loader = Callable[..., list[Document]]

_LOADERS: dict[str, str] = {
    ".txt": "kbchat.ingest.text:load_txt",
    ".text": "kbchat.ingest.text:load_txt",
    ".log": "kbchat.ingest.text:load_txt",
    ".md": "kbchat.ingest.markup:load_markdown",
    ".markdown": "kbchat.ingest.markup:load_markdown",
    ".csv": "kbchat.ingest.text:load_csv",
    ".tsv": "kbchat.ingest.text:load_csv",
    ".json": "kbchat.ingest.text:load_json",
    ".jsonl": "kbchat.ingest.text:load_jsonl",
    ".html": "kbchat.ingest.markup:load_html",
    ".htm": "kbchat.ingest.markup:load_html",
    ".eml": "kbchat.ingest.markup:load_eml",
    ".epub": "kbchat.ingest.markup:load_epub",
    ".pdf": "kbchat.ingest.pdf:load_pdf",
    ".docx": "kbchat.ingest.office:load_docx",
    ".xlsx": "kbchat.ingest.sheets:load_xlsx",
    ".xlsm": "kbchat.ingest.sheets:load_xlsx",
    ".pptx": "kbchat.ingest.office:load_pptx",
    ".png": "kbchat.ingest.ocr:load_image",
    ".jpg": "kbchat.ingest.ocr:load_image",
    ".jpeg": "kbchat.ingest.ocr:load_image",
    ".bmp": "kbchat.ingest.ocr:load_image",
    ".webp": "kbchat.ingest.ocr:load_image",
}
_ZIP_BASED = frozenset({".docx", ".xlsx", ".xlsm", ".pptx", ".epub"})
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """What a loader accepts.

    Attributes:
        max_file_bytes: files larger than this are refused.
        max_unpacked_bytes: zip-based formats whose members declare more unpacked bytes
            than this are refused before parsing (decompression-bomb guard).
        ocr: Reads images and pdf pages without a text layer; None switches OCR off.
            Default: a reader of its own (a library passes the one it shares).
    """

    max_file_bytes: int = 100 * 2**20
    max_unpacked_bytes: int = 500 * 2**20
    ocr: OcrReader | None = field(default_factory=OcrReader)

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0:
            raise ValueError(f"max_file_bytes must be > 0, got {self.max_file_bytes}")
        if self.max_unpacked_bytes <= 0:
            raise ValueError(f"max_unpacked_bytes must be > 0, got {self.max_unpacked_bytes}")


def supported_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) that ``load_file`` reads."""
    return frozenset(_LOADERS)


def is_supported(path: Path) -> bool:
    """Whether ``path``'s extension has a loader (the file itself is not opened)."""
    return path.suffix.lower() in _LOADERS


def load_file(
    path: Path, *, source: str | None = None, limits: LoadLimits | None = None
) -> list[Document]:
    """Read one file into Documents.

    Args:
        path: the file to read.
        source: label written into every ``Document.source`` (default: ``path.name``);
            error messages name the file by it too.
        limits: size limits and whether to OCR.

    Returns:
        Non-empty Documents, each text stripped of trailing whitespace.

    Raises:
        BadInput: missing or unreadable path, unsupported extension, too large, empty,
            binary, corrupt, encrypted, a decompression bomb, or no text found.
        MissingDependency: the file needs OCR and rapidocr-onnxruntime is not installed.
        BackendError: the OCR engine failed.
    """
    path = Path(path)
    label = source or path.name
    extension = path.suffix.lower() or PurePath(label).suffix.lower()
    limits = limits if limits is not None else LoadLimits()
    _check_file(path, label, limits)
    loader = _loader_for(extension, label)
    if extension in _ZIP_BASED:
        check_zip(path, label, limits.max_unpacked_bytes)
    documents = _tidy(loader(path, label, ocr=limits.ocr))
    if not documents:
        raise BadInput(f"{label}: no text found in the file")
    return documents


def _loader_for(extension: str, label: str) -> Loader:
    target = _LOADERS.get(extension)
    if target is None:
        known = ", ".join(sorted(_LOADERS))
        shown = extension or "no extension"
        raise BadInput(f"{label}: unsupported file type ({shown}); supported: {known}")
    module_name, _, attr = target.partition(":")
    loader: Loader = getattr(importlib.import_module(module_name), attr)
    return loader


def _check_file(path: Path, label: str, limits: LoadLimits) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BadInput(f"{label}: no such file ({path})") from None
    except PermissionError:
        raise BadInput(f"{label}: permission denied ({path})") from None
    except OSError as exc:
        raise BadInput(f"{label}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{label}: is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{label}: is not a regular file")
    if info.st_size > limits.max_file_bytes:
        raise BadInput(
            f"{label}: file is {_mb(info.st_size)}, over the limit of {_mb(limits.max_file_bytes)}"
        )
    if info.st_size == 0:
        raise BadInput(f"{label}: file is empty (0 bytes)")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except PermissionError:
        raise BadInput(f"{label}: permission denied ({path})") from None
    except OSError as exc:
        raise BadInput(f"{label}: cannot read ({exc.strerror or exc})") from None


def check_zip(path: Path, label: str, max_unpacked_bytes: int) -> None:
    """Refuse a zip whose members declare more unpacked bytes than allowed.

    The stdlib zipfile never inflates a member beyond its declared size, so checking
    the declarations is enough to bound what the parsers will unpack.

    Raises:
        BadInput: not a zip (corrupt or truncated), or over ``max_unpacked_bytes``.
    """
    kind = path.suffix.lower().lstrip(".") or "zip"
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, NotImplementedError) as exc:
        raise BadInput(f"{label}: corrupt or truncated {kind} file ({exc})") from None
    declared = sum(member.file_size for member in members)
    if declared > max_unpacked_bytes:
        raise BadInput(
            f"{label}: unpacks to {_mb(declared)}, over the limit of {_mb(max_unpacked_bytes)} "
            "(possible zip bomb)"
        )


def _tidy(documents: list[Document]) -> list[Document]:
    """Strip trailing whitespace per line, squeeze blank runs, drop empty Documents."""
    tidy = []
    for doc in documents:
        text = "\n".join(line.rstrip() for line in doc.text.split("\n"))
        text = _BLANK_RUNS.sub("\n\n", text).strip("\n").rstrip()
        if text.strip():
            tidy.append(doc if text == doc.text else replace(doc, text=text))
    return tidy


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"
