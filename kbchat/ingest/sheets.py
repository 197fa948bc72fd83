"""xlsx/xlsm workbooks: one table Document per sheet, merged ranges filled, formulas as values.

A merged range keeps its value only in its top-left cell; every cell it covers gets that
value here, so each row of a merged "department" or "date" block carries it into whatever
chunk the row lands in. Formula cells give the value Excel cached when it last saved the
file; a sheet with formulas and no cached values (written by a library, never opened in a
spreadsheet program) gets a note on its Document instead of silently empty cells.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from kbchat.ingest.structure import table_lines
from kbchat.types import Document

if TYPE_CHECKING:
    from kbchat.ingest.ocr import OcrReader

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_MAX_MERGED_CELLS = 1_000_000
"""Cells a sheet's merged ranges may cover in total before they are left unfilled."""

Box = tuple[int, int, int, int]
"""A merged range: (first row, first column, last row, last column), 1-based, inclusive."""


def load_xlsx(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """One table Document per non-empty worksheet; the first non-empty row is the header.

    Raises:
        BadInput: the file is not a readable workbook.
    """
    from openpyxl import load_workbook

    from kbchat.ingest.office import corrupt, parse_errors

    title = PurePath(source).stem
    documents = []
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            for sheet in workbook.worksheets:
                merged, formulas, uncached = _scan_sheet(sheet)
                sheet.reset_dimensions()
                rows = ([_cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True))
                lines = table_lines(fill_merged(rows, merged))
                notes = _formula_notes(source, sheet.title, formulas, uncached)
                if lines:
                    documents.append(
                        Document(
                            text="\n".join(lines),
                            source=source,
                            sheet=sheet.title,
                            title=title,
                            kind="table",
                            notes=notes,
                        )
                    )
        finally:
            workbook.close()
    except parse_errors() as exc:
        raise corrupt(source, "xlsx", exc) from None
    return documents


def fill_merged(rows: Iterable[Sequence[str]], merged: Sequence[Box]) -> Iterator[list[str]]:
    """Give every cell of each merged range the value of its top-left cell.

    Args:
        rows: the sheet's rows from row 1, cells from column 1.
        merged: the merged ranges.
    """
    starts: dict[int, list[Box]] = {}
    for box in merged:
        starts.setdefault(box[0], []).append(box)
    active: list[tuple[Box, str]] = []
    for number, raw in enumerate(rows, 1):
        row = list(raw)
        for box in starts.pop(number, ()):
            first_column = box[1]
            value = row[first_column - 1] if first_column <= len(row) else ""
            if value:
                active.append((box, value))
        active = [(box, value) for box, value in active if box[2] >= number]
        for (_, first_column, _, last_column), value in active:
            if len(row) < last_column:
                row += [""] * (last_column - len(row))
            for column in range(first_column, last_column + 1):
                row[column - 1] = row[column - 1] or value
        yield row


def _scan_sheet(sheet: Any) -> tuple[list[Box], int, int]:
    """The sheet's merged ranges, its formula cells and those with no cached value.

    Streams the sheet's XML once (openpyxl's read-only mode keeps neither).
    """
    from lxml import etree
    from openpyxl.utils.cell import range_boundaries

    merged: list[Box] = []
    formulas = uncached = covered = 0
    with sheet._get_source() as source:
        for _, element in etree.iterparse(source, resolve_entities=False, no_network=True):
            if element.tag == f"{_MAIN}c":
                if element.find(f"{_MAIN}f") is not None:
                    formulas += 1
                    value = element.find(f"{_MAIN}v")
                    uncached += value is None or not (value.text or "")
                element.clear()
            elif element.tag == f"{_MAIN}row":
                element.clear()
            elif element.tag == f"{_MAIN}mergeCell":
                min_col, min_row, max_col, max_row = range_boundaries(element.get("ref", ""))
                if None in (min_col, min_row, max_col, max_row):
                    continue
                covered += (max_row - min_row + 1) * (max_col - min_col + 1)
                if covered <= _MAX_MERGED_CELLS:
                    merged.append((min_row, min_col, max_row, max_col))
    return merged, formulas, uncached


def _formula_notes(source: str, sheet: str, formulas: int, uncached: int) -> tuple[str, ...]:
    if not uncached:
        return ()
    return (
        f"{source}: sheet {sheet!r} has {uncached} of {formulas} formula cells without a saved "
        "value (the file was written by a program that does not calculate); those cells are "
        "empty here. Open and save it in Excel or LibreOffice to index their values.",
    )


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)
