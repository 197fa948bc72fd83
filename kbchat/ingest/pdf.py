"""PDF: the text layer page by page (pypdf); OCR of embedded images for pages without one."""

from __future__ import annotations

import logging
import re
import struct
import zlib
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

from kbchat.errors import BadInput, MissingDependency
from kbchat.types import Document

if TYPE_CHECKING:
    from kbchat.ingest.ocr import OcrReader

log = logging.getLogger(__name__)
# What damaged pdf structures make pypdf raise besides its own PyPdfError.
_PDF_ERRORS: tuple[type[Exception], ...] = (
    PyPdfError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    EOFError,
    AttributeError,
    NotImplementedError,
    RecursionError,
    OSError,
    zlib.error,
    struct.error,
)
_SPACE_RUNS = re.compile(r"[ \t\u00a0]{2,}")


def load_pdf(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """One Document per page with ``page`` = 1-based page number.

    Pages without a text layer are OCR'd from their embedded images when ``ocr`` is on.
    If rapidocr is missing such pages are skipped; only when no page has text at all
    does the MissingDependency reach the caller.

    Raises:
        BadInput: corrupt, truncated, password-protected or 0-page pdf, or no text found.
        MissingDependency: OCR was needed for every page and rapidocr is missing.
    """
    reader = _open(path, source)
    try:
        pages = list(reader.pages)
    except _PDF_ERRORS as exc:
        raise BadInput(f"{source}: corrupt or truncated pdf: {exc}") from None
    if not pages:
        raise BadInput(f"{source}: the pdf has 0 pages")
    title = PurePath(source).stem
    documents: list[Document] = []
    missing: MissingDependency | None = None
    without_text = 0
    for number, page in enumerate(pages, 1):
        text = _page_text(page, source, number)
        if not text.strip():
            without_text += 1
            if ocr is not None and missing is None:
                try:
                    text = _ocr_page(ocr, page, source, number)
                except MissingDependency as exc:
                    missing = exc
        documents.append(Document(text=text, source=source, page=number, title=title))
    if not any(doc.text.strip() for doc in documents):
        if missing is not None:
            raise missing
        how = "OCR found no text in their images" if ocr is not None else "OCR is switched off"
        raise BadInput(
            f"{source}: no text found: {without_text} page(s) without a text layer; {how}"
        )
    if missing is not None:
        log.warning("%s: skipped %d page(s) without text layer: %s", source, without_text, missing)
    return documents


def _open(path: Path, source: str) -> Any:
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise BadInput(f"{source}: the pdf is encrypted and needs a password")
    except DependencyError:
        raise BadInput(
            f"{source}: the pdf is AES-encrypted; reading it needs the 'cryptography' package"
        ) from None
    except FileNotDecryptedError:
        raise BadInput(f"{source}: the pdf is encrypted and needs a password") from None
    except _PDF_ERRORS as exc:
        raise BadInput(f"{source}: corrupt or truncated pdf: {exc}") from None
    return reader


def _page_text(page: Any, source: str, number: int) -> str:
    try:
        text = page.extract_text() or ""
    except _PDF_ERRORS as exc:
        log.warning("%s: page %d: cannot read its text layer: %s", source, number, exc)
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return _SPACE_RUNS.sub(" ", text)


def _ocr_page(reader: OcrReader, page: Any, source: str, number: int) -> str:
    texts = []
    try:
        images = list(page.images)
    except _PDF_ERRORS as exc:
        log.warning("%s: page %d: cannot list its images: %s", source, number, exc)
        return ""
    for index, image_file in enumerate(images):
        try:
            image = image_file.image
        except _PDF_ERRORS as exc:
            log.warning("%s: page %d: cannot decode image %d: %s", source, number, index, exc)
            continue
        if image is None:
            continue
        texts.append(reader.read(image))
    return "\n".join(text for text in texts if text)
