"""Office Open XML: docx (heading sections) and pptx (per slide); xlsx is in ``sheets.py``.

The loaders in ``loaders.py`` have already checked the zip's declared sizes before
any of these parsers opens the file.
"""

from __future__ import annotations

import logging
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from kbchat.errors import BadInput, MissingDependency
from kbchat.ingest.structure import SectionBuilder, table_lines
from kbchat.types import Document

if TYPE_CHECKING:
    from kbchat.ingest.ocr import OcrReader

log = logging.getLogger(__name__)

_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
# What a damaged zip or XML part makes the parsers raise (zlib/OSError from bad deflate data).
_STRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    NotImplementedError,
    KeyError,
    ValueError,
    IndexError,
    EOFError,
    AttributeError,
)


def corrupt(source: str, kind: str, exc: Exception) -> BadInput:
    return BadInput(f"{source}: corrupt or truncated {kind} file: {exc or type(exc).__name__}")


def parse_errors() -> tuple[type[Exception], ...]:
    from docx.exceptions import PythonDocxError
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError
    from openpyxl.utils.exceptions import InvalidFileException
    from pptx.exc import PythonPptxError

    return (
        *_STRUCTURE_ERRORS,
        PythonDocxError,
        OpcError,
        LxmlError,
        InvalidFileException,
        PythonPptxError,
    )


class _ImageText:
    """OCR for pictures embedded in a document; remembers if the OCR engine is missing."""

    def __init__(self, reader: OcrReader | None, source: str) -> None:
        self.reader = reader
        self.source = source
        self.missing: MissingDependency | None = None

    def __call__(self, blob: bytes) -> str:
        if self.reader is None or self.missing is not None:
            return ""
        from kbchat.ingest.ocr import open_image

        try:
            image = open_image(blob, self.source)
        except BadInput as exc:
            log.warning("skipped an embedded image: %s", exc)
            return ""
        try:
            return self.reader.read(image)
        except MissingDependency as exc:
            self.missing = exc
            return ""

    def finish(self, documents: list[Document]) -> list[Document]:
        """Raise the missing-OCR error if the document's only content was images."""
        if not any(doc.text.strip() for doc in documents) and self.missing is not None:
            raise self.missing
        return documents


def load_docx(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """Body paragraphs and tables in order; heading styles start sections.

    Raises:
        BadInput: the file is not a readable docx.
        MissingDependency: the document is only images and rapidocr is missing.
    """
    import docx

    images = _ImageText(ocr, source)
    builder = SectionBuilder(source, h1_is_title=False)
    try:
        document = docx.Document(str(path))
        builder.title = (document.core_properties.title or "").strip() or None
        for block in document.iter_inner_content():
            if block.__class__.__name__ == "Table":
                builder.table(_docx_rows(block))
            else:
                _add_paragraph(block, builder, images)
    except parse_errors() as exc:
        raise corrupt(source, "docx", exc) from None
    return images.finish(builder.documents(PurePath(source).stem))


def _add_paragraph(paragraph: Any, builder: SectionBuilder, images: _ImageText) -> None:
    text = paragraph.text.strip()
    style = paragraph.style.name if paragraph.style is not None else ""
    level = _heading_level(paragraph, style or "")
    if text and style.lower() == "title":
        builder.title = text
        builder.line(text, body=False)
    elif text and level is not None:
        builder.heading(level, text)
    else:
        builder.line(text)
    for rid in paragraph._p.xpath(".//a:blip/@r:embed"):
        part = paragraph.part.related_parts.get(rid)
        blob = getattr(part, "blob", None)
        if blob:
            recognised = images(blob)
            if recognised:
                builder.line(recognised)


def _heading_level(paragraph: Any, style: str) -> int | None:
    found = _HEADING_STYLE.match(style.strip())
    if found:
        return int(found.group(1))
    outline = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    if outline and outline[0].isdigit() and int(outline[0]) < 9:
        return int(outline[0]) + 1
    return None


def _docx_rows(table: Any) -> Iterator[list[str]]:
    """Rows on the table's grid: a cell spanning columns (gridSpan) fills each of them, and a
    vertically merged cell (vMerge) repeats the text of the cell that starts the merge."""
    from docx.oxml.ns import qn

    above: list[str] = []
    for tr in table._tbl.tr_lst:
        row = [""] * tr.grid_before
        for tc in tr.tc_lst:
            column = len(row)
            if tc.vMerge == "continue":
                text = above[column] if column < len(above) else ""
            else:
                runs = (p.iter(qn("w:t")) for p in tc.iter(qn("w:p")))
                text = " ".join("".join(t.text or "" for t in run) for run in runs)
            row += [text] * max(1, tc.grid_span)
        above = row
        yield row


def _pptx_rows(table: Any) -> list[list[str]]:
    """Rows of a slide table; a merged cell's text fills every cell it spans."""
    grid = [[cell.text for cell in row.cells] for row in table.rows]
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            if not cell.is_merge_origin:
                continue
            end = c + cell.span_width
            for spanned in grid[r : r + cell.span_height]:
                spanned[c:end] = [cell.text] * len(spanned[c:end])
    return grid


def load_pptx(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """One Document per slide (``slide`` = 1-based): title, text, tables, pictures, notes.

    Raises:
        BadInput: the file is not a readable presentation.
        MissingDependency: the slides are only pictures and rapidocr is missing.
    """
    from pptx import Presentation

    images = _ImageText(ocr, source)
    title = PurePath(source).stem
    documents = []
    try:
        presentation = Presentation(str(path))
        for number, slide in enumerate(presentation.slides, 1):
            heading = _slide_title(slide)
            lines = [heading] if heading else []
            for shape in _reading_order(slide.shapes):
                if not (heading and shape.shape_id == _title_id(slide)):
                    lines += _shape_lines(shape, images)
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                lines += ["", slide.notes_slide.notes_text_frame.text.replace("\v", "\n")]
            documents.append(
                Document(
                    text="\n".join(lines).strip(),
                    source=source,
                    slide=number,
                    headings=(heading,) if heading else (),
                    title=title,
                )
            )
    except parse_errors() as exc:
        raise corrupt(source, "pptx", exc) from None
    return images.finish(documents)


def _slide_title(slide: Any) -> str:
    shape = slide.shapes.title
    if shape is None or not shape.has_text_frame:
        return ""
    return " ".join(shape.text_frame.text.split())


def _title_id(slide: Any) -> int | None:
    shape = slide.shapes.title
    return shape.shape_id if shape is not None else None


def _reading_order(shapes: Any) -> list[Any]:
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def _shape_lines(shape: Any, images: _ImageText) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        children = _reading_order(shape.shapes)
        return [line for child in children for line in _shape_lines(child, images)]
    if getattr(shape, "has_table", False) and shape.has_table:
        return table_lines(_pptx_rows(shape.table))
    if shape.has_text_frame:
        return [shape.text_frame.text.replace("\v", "\n")]
    if shape.shape_type == MSO_SHAPE_TYPE.PICTURE:
        return [images(shape.image.blob)]
    return []
